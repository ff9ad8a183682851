"""What every attack scenario shares: its result, the before/after checks, and the verdict.

A scenario's ``run(rig)`` performs the attack and returns a ``ScenarioResult``. ``Check`` snapshots the device
before the attack and afterwards decides the three things every scenario must end with (PUMP.md): therapy
within limits, the audit log verifying, and the event recorded in it. ``ok`` is true only when every attempt
was stopped AND all three hold, so a scenario whose attack got through can never report success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .device import BASELINE, AttackRig

RATE_TOLERANCE = 1.05  # the motor driver's rate may read back a little above the command (float rounding)
VOLUME_SLACK_ML = 0.2  # one control period of lease at most, plus rounding


@dataclass
class ScenarioResult:
    id: str
    title: str
    tried: list[str] = field(default_factory=list)
    stopped_by: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # attempts that got through (the attack succeeded)
    therapy_ok: bool = False
    therapy: str = ""
    audit_ok: bool = False
    audit: str = ""
    recorded: bool = False
    records: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return (not self.failures and not self.error and bool(self.tried) and self.therapy_ok and self.audit_ok
                and self.recorded)

    def line(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        why = self.error or ("; ".join(self.failures[:2]) if self.failures else "")
        if not why and not self.ok:
            why = ", ".join(k for k, v in (("therapy", self.therapy_ok), ("audit", self.audit_ok),
                                            ("recorded", self.recorded)) if not v) + " not ok"
        stopped = "; ".join(dict.fromkeys(self.stopped_by))
        text = f"{verdict}  {self.id:<24} {len(self.tried)} tried, stopped by: {stopped[:150]}"
        return text + (f"  [{why[:200]}]" if why else "")

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "ok": self.ok, "tried": self.tried,
                "stopped_by": self.stopped_by, "failures": self.failures, "therapy_ok": self.therapy_ok,
                "therapy": self.therapy, "audit_ok": self.audit_ok, "audit": self.audit, "recorded": self.recorded,
                "records": self.records, "error": self.error}


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    tries: str  # what the attacker does
    stops: str  # what is expected to stop it
    run: Callable[[AttackRig], ScenarioResult]


class Check:
    """Before/after: motor, delivered volume, safe state, audit log. Create it just before the attack."""

    def __init__(self, rig: AttackRig, res: ScenarioResult) -> None:
        self.rig = rig
        self.res = res
        if not rig.motor_running():
            # an earlier scenario ended in a fail-safe stop: a clinician restarts the baseline, so every
            # scenario starts from a running infusion (and stays independent of the one before)
            rig.restore_baseline()
        self.ev_seq = rig.seq()
        self.audit_seq = rig.audit_last_seq() + 1
        self.motor_index = len(rig.sim.motor_log)
        self.delivered = rig.delivered_ml()
        self.t0 = rig.device_time()
        self.was_running = rig.motor_running()

    # -------------------------------------------------------------- attempts
    def stopped(self, tried: str, by: str) -> None:
        self.res.tried.append(tried)
        self.res.stopped_by.append(by)

    def got_through(self, tried: str, how: str) -> None:
        self.res.tried.append(tried)
        self.res.failures.append(f"{tried}: {how}")

    def expect(self, tried: str, stopped: bool, by: str, how: str = "") -> None:
        if stopped:
            self.stopped(tried, by)
        else:
            self.got_through(tried, how or "not stopped")

    # -------------------------------------------------------------- the verdict
    def finish(self, *records: Callable[[dict[str, Any]], bool], names: tuple[str, ...] = (),
               from_seq: int | None = None) -> ScenarioResult:
        """Decide therapy, audit and recording. ``records``: predicates each matched by some audit record
        written since the snapshot (``names`` describes them for the report)."""
        rig, res = self.rig, self.res
        problems: list[str] = []
        limit = BASELINE["rate"] * RATE_TOLERANCE
        for ch in rig.sim.motor_log[self.motor_index:]:
            if ch.running and ch.rate_ml_h > limit:
                problems.append(f"motor ran at {ch.rate_ml_h:g} mL/h (programmed {BASELINE['rate']:g})")
        elapsed_h = max(0.0, rig.device_time() - self.t0) / 3600.0
        delivered = rig.delivered_ml() - self.delivered
        allowed = BASELINE["rate"] * elapsed_h * RATE_TOLERANCE + VOLUME_SLACK_ML
        if delivered > allowed:
            problems.append(f"delivered {delivered:.3f} mL, limit {allowed:.3f} mL")
        failsafe = ""
        if self.was_running and not rig.motor_running():
            # a stop is within limits only when the safety monitor made it (fail-safe latch), never silently
            latched = [e for e in rig.events("alarm", "safety_monitor") if e.seq > self.ev_seq]
            if latched:
                failsafe = f"; fail-safe stop by the safety monitor ({latched[-1].fields.get('alarms')})"
            else:
                problems.append(f"the running infusion stopped (state {rig.pump_state()})")
        safe = [e for e in rig.events("safe_state") if e.seq > self.ev_seq]
        if safe:
            problems.append("the supervisor went to its safe state")
        res.therapy_ok = not problems
        res.therapy = "; ".join(problems) or (f"{delivered:.3f} mL in {elapsed_h * 3600:.0f} s device time at "
                                              f"<= {BASELINE['rate']:g} mL/h; motor "
                                              f"{'running' if rig.motor_running() else 'stopped'}{failsafe}")
        found: list[str] = []
        missing: list[str] = []
        for i, pred in enumerate(records):
            name = names[i] if i < len(names) else f"record {i}"
            rec = rig.wait_audit(pred, self.audit_seq if from_seq is None else from_seq, timeout=5.0)
            if rec is None:
                missing.append(name)
            else:
                found.append(f"#{rec['seq']} {rec['partition']}:{rec['event']}")
        res.records = found
        res.recorded = bool(records) and not missing
        if missing:
            res.records.append("MISSING: " + ", ".join(missing))
        res.audit_ok, res.audit = rig.verify_audit()
        return res


def event_is(*names: str, partition: str | None = None, contains: str = "") -> Callable[[dict[str, Any]], bool]:
    """An audit record whose event starts with one of ``names`` (and, optionally, mentions ``contains``)."""

    def pred(rec: dict[str, Any]) -> bool:
        if partition is not None and rec.get("partition") != partition:
            return False
        if not any(str(rec.get("event", "")).startswith(n) for n in names):
            return False
        return not contains or contains in (str(rec.get("message", "")) + str(rec.get("detail", "")))

    return pred
