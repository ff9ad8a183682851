"""A soft-limit excess runs only with a clinician's authenticated approval (keypad -> ui -> auth -> monitor).

Normal saline in adult-med-surg: soft maximum 250 mL/h, hard maximum 500 mL/h. The real pump runs 300 mL/h
only after the logged-in clinician confirms it with a reason; a compromised pump_control that "confirms" it
on its own word (``soft_limit_confirmed=True``) never gets the motor above 250 mL/h.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from septum_pump.rig import DOUBLES, PUMP_DIR, PumpRig, real_services_available

from .conftest import TIME_SCALE, _require_root

SOFT_MAX = 250.0
RATE = 300.0
HOSTILE = "pump_test_doubles.hostile_pump_control:main"


def _recent(rig: PumpRig, n: int = 30) -> list[tuple[int, str | None, str, dict[str, object]]]:
    """The last events, for the failure message of a step that got no outcome."""
    return [(e.seq, e.partition, e.kind, dict(e.fields)) for e in rig.supervisor.events.history[-n:]]


def _monitor_events(rig: PumpRig, kind: str, after: int) -> list[dict[str, object]]:
    return [dict(e.fields) for e in rig.events(kind, "safety_monitor") if e.seq > after]


def test_soft_limit_excess_runs_after_the_clinicians_confirmation(rig: PumpRig) -> None:
    assert rig.login(), _recent(rig)
    ok, text = rig.program("normal-saline", rate=RATE, vtbi=500)
    assert not ok and "soft limit" in text, text  # pump_control asks for the confirmation
    before = rig.seq()
    ok, text = rig.override("fluid challenge ordered by the ward doctor")
    assert ok, text
    applied = rig.wait_event(lambda e: e.kind == "soft_limit_override_applied" and e.partition == "safety_monitor",
                             timeout=10, after=before)
    assert applied is not None, [(e.kind, e.fields) for e in rig.events(partition="safety_monitor")][-10:]
    assert applied.fields.get("principal") == "nurse1"
    assert "fluid challenge" in str(applied.fields.get("reason"))
    ok, text = rig.start()
    assert ok, text
    assert rig.wait_until(lambda: rig.sim.snapshot()["commanded_rate_ml_h"] == pytest.approx(RATE), timeout=10), (
        rig.sim.snapshot(), rig.alarms())
    # the approval is in the audit log: auth allowed it, the monitor received and applied it
    assert rig.wait_until(lambda: any(r["event"] == "soft_limit_override_applied" for r in rig.audit_records()),
                          timeout=10)
    if rig.services == "real":
        assert any(r["event"] == "auth.allowed" and "approve_soft_limit" in str(r) for r in rig.audit_records())


class CompromisedControlRig(PumpRig):
    """The real pump (real services when installed) whose pump_control runs ``HOSTILE``."""

    def _variant(self, model_path: Path) -> Path:
        work = self._mkdtemp("septum-pump-hostile-")
        os.chmod(work, 0o755)  # the partitions import code from here: they must list it
        raw = yaml.safe_load(model_path.read_text())
        code_dirs = {str(PUMP_DIR.resolve()): "r", str(DOUBLES.parent.resolve()): "r"}
        for name, part in raw["partitions"].items():
            if name == "pump_control":
                part["runs"] = HOSTILE
            if "runs" in part:
                part.setdefault("allow", {}).setdefault("files", {}).update(code_dirs)
        (work / "model.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        (work / "septum_pump").symlink_to(PUMP_DIR / "septum_pump")
        (work / "pump_test_doubles").symlink_to(DOUBLES)
        return work / "model.yaml"

    def _real_setup(self) -> tuple[Path, dict[str, Path], bool]:
        model, prov, _check = super()._real_setup()
        return self._variant(model), prov, False  # a test variant: the analysis gate is for the real model

    def _doubles_setup(self) -> tuple[Path, dict[str, Path], bool]:
        model, prov, check = super()._doubles_setup()
        raw = yaml.safe_load(model.read_text())
        raw["partitions"]["pump_control"]["runs"] = HOSTILE
        model.write_text(yaml.safe_dump(raw, sort_keys=False))
        return model, prov, check


@pytest.fixture
def hostile_rig() -> Iterator[PumpRig]:
    _require_root()
    with CompromisedControlRig(time_scale=TIME_SCALE, services="real" if real_services_available() else "doubles") as r:
        yield r


def test_compromised_pump_control_cannot_confirm_a_soft_limit_on_its_own_word(hostile_rig: PumpRig) -> None:
    rig = hostile_rig
    forged = rig.wait_event(lambda e: e.kind == "hostile_forge_approval", timeout=10, after=0)
    assert forged is not None and str(forged.fields.get("outcome", "")).startswith("refused"), forged
    assert rig.login(), _recent(rig)
    before = rig.seq()
    ok, text = rig.program("normal-saline", rate=RATE, vtbi=500)
    assert ok, text  # the compromised controller "confirmed" it and says it is programmed
    claim = rig.wait_event(lambda e: e.kind == "soft_limit_claim_refused" and e.partition == "safety_monitor",
                           timeout=10, after=before)
    assert claim is not None, [(e.kind, e.fields) for e in rig.events(partition="safety_monitor")][-10:]
    ok, text = rig.start()
    assert ok, text  # pump_control runs its state machine and asks the monitor for 300 mL/h every period
    # bounded observation of the motor while pump_control keeps asking: it never runs above the soft limit
    seen: list[float] = []

    def watch() -> bool:
        seen.append(float(rig.sim.snapshot()["commanded_rate_ml_h"]))
        return rig.device_time() - started > 120.0  # two device minutes of asking

    started = rig.device_time()
    assert rig.wait_until(watch, timeout=30)
    assert max((c.rate_ml_h for c in rig.sim.motor_log), default=0.0) <= SOFT_MAX
    assert max(seen) <= SOFT_MAX, max(seen)
    assert rig.delivered_ml() < 0.1, rig.delivered_ml()
    assert not _monitor_events(rig, "program_accepted", before)
    assert rig.wait_until(lambda: any(r["event"] == "soft_limit_claim_refused" for r in rig.audit_records()),
                          timeout=10), "the refused claim is not in the audit log"
