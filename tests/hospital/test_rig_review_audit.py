"""What a reviewer must be able to reconstruct, from the real pump's audit log (real services, time scale 60):

* refused keypad actions: a change without login, a "bolus" key on the keypad (who, what, why);
* the clinician's reason for a soft-limit override;
* operational records at each mode change and every 5 minutes of device time, with UTC time, the patient id
  (from the confirmed hospital order), the prescription, the mode and the rate;
* the alarm record with the remaining volume (to be infused and in the reservoir).

Each check looks only at records written after the action that should cause them."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from septum.runtime.sandbox.probe import probe

PUMP = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump"
if str(PUMP) not in sys.path:
    sys.path.insert(0, str(PUMP))

from septum_pump.rig import PumpRig  # noqa: E402

SCALE = 60.0  # 5 minutes of device time in 5 s


@pytest.fixture(scope="module")
def rig() -> Iterator[PumpRig]:
    if not probe().root:
        print("SKIP: the pump runs partitions under their own uids and needs root")
        pytest.skip("needs root (partitions run under their own uids)")
    with PumpRig(time_scale=SCALE, services="real") as r:
        yield r


def _client(rig: PumpRig) -> Any:
    from hospital_client.client import HospitalClient

    d = rig.hospital_dir
    assert d is not None
    return HospitalClient("127.0.0.1", https_port=rig.ports["hospital_https"], mllp_port=rig.ports["hospital_mllp"],
                          ca=d / "hospital-ca.pem", cert=d / "client.pem", key=d / "client.key",
                          server_name="127.0.0.1", timeout=10.0)


def _records(rig: PumpRig, after: int, event: str, partition: str | None = None) -> list[dict[str, Any]]:
    return [r for r in rig.audit_records() if r["seq"] > after and r["event"] == event
            and (partition is None or r["partition"] == partition)]


def _fields(detail: str) -> dict[str, str]:
    """The ``k=v, k=v`` detail a pump partition writes (values here contain no ', ')."""
    out: dict[str, str] = {}
    for part in detail.split(", "):
        k, _, v = part.partition("=")
        out[k] = v
    return out


def _last_seq(rig: PumpRig) -> int:
    recs = rig.audit_records()
    return recs[-1]["seq"] if recs else -1


def _wait(rig: PumpRig, after: int, event: str, pred: Any = lambda f: True, partition: str | None = None,
          timeout: float = 15.0) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []

    def check() -> bool:
        found[:] = [f for f in (_fields(r["detail"]) for r in _records(rig, after, event, partition)) if pred(f)]
        return bool(found)

    # reading the whole log is work: poll it a few times a second, not at every simulator step, or the test
    # itself starves the pump's partitions of the two cores (the monitor then rightly raises sensor-fault)
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert found, (event, [(r["partition"], r["event"], r["detail"][:120])
                                                            for r in rig.audit_records() if r["seq"] > after][-15:])
    return found


def test_refused_keypad_actions_are_audited(rig: PumpRig) -> None:
    after = _last_seq(rig)
    rig.press("program")  # nobody is logged in
    got = _wait(rig, after, "keypad_refused", lambda f: f.get("action") == "program_infusion", "ui")
    assert got[0]["principal"] == "unauthenticated" and "not logged in" in got[0]["reason"]
    rig.press("bolus")  # a patient bolus is only ever the PCA button's
    got = _wait(rig, after, "keypad_refused", lambda f: f.get("key") == "bolus", "ui")
    assert "PCA button" in got[0]["reason"]


def test_order_infusion_is_recorded_with_patient_mode_and_rate_and_alarm_with_remaining_volume(rig: PumpRig) -> None:
    c = _client(rig)
    try:
        reply = c.send_hl7(c.order("hl7v2", order_id="ORD-REV-1", patient_id="MRN-77", drug="normal-saline",
                                   concentration=1.0, concentration_unit="mL/mL", dose_rate=60.0, dose_unit="mL/h",
                                   vtbi_ml=200.0, care_area="adult-med-surg"))
    finally:
        c.close()
    assert "MSA|AA" in reply, reply
    assert rig.login()
    ok, why = rig._act("confirm_order", [("order_id", "ORD-REV-1"), ("confirm_order", "")])
    assert ok, why
    after = _last_seq(rig)
    # every 5 minutes of device time, whatever the mode (here: the confirmed order, not started yet)
    periodic = _wait(rig, after, "operational",
                     lambda f: f.get("why") == "periodic" and f.get("patient_id") == "MRN-77",
                     "pump_control", timeout=300 / SCALE + 15)[0]
    assert periodic["drug"] == "normal-saline" and periodic["dose_rate"] == "60.0" and periodic["vtbi_ml"] == "200.0"
    assert periodic["utc"].endswith("+00:00")
    after = _last_seq(rig)
    assert rig.login()  # the 5 minutes outlived the session (session_timeout_s 300 of device time)
    ok, why = rig.start()
    assert ok, why
    # the change of mode is recorded at once, with the patient from the confirmed order and the motor rate
    running = _wait(rig, after, "operational", lambda f: f.get("mode") == "running", "pump_control")[0]
    assert running["patient_id"] == "MRN-77" and running["drug"] == "normal-saline" and running["why"] == "mode-change"
    assert running["dose_rate"] == "60.0" and running["dose_unit"] == "mL/h" and running["vtbi_ml"] == "200.0"
    assert float(running["rate_ml_h"]) == pytest.approx(60.0) and running["utc"].endswith("+00:00")
    assert rig.wait_until(lambda: rig.delivered_ml() > 0.5, timeout=15)
    after = _last_seq(rig)
    rig.inject("occlusion")
    alarm = _wait(rig, after, "alarm_raised", lambda f: f.get("alarm") == "occlusion", "pump_control")[0]
    remaining = float(alarm["remaining_vtbi_ml"])
    assert 0 < remaining < 200.0 and float(alarm["reservoir_ml"]) > 0 and alarm["patient_id"] == "MRN-77"
    rig.clear("occlusion")


def test_soft_limit_override_records_the_clinicians_reason(rig: PumpRig) -> None:
    rig.clear_fault("line unkinked")
    rig.stop_infusion()
    assert rig.login()
    ok, why = rig.program("normal-saline", rate=300.0, vtbi=100.0)  # soft maximum 250 mL/h in adult-med-surg
    assert not ok and "soft limit" in why, why
    after = _last_seq(rig)
    reason = "fluid challenge ordered by Dr Grey"
    ok, why = rig.override(reason)
    assert ok, why
    got = _wait(rig, after, "command", lambda f: f.get("action") == "override_soft_limit", "pump_control")[0]
    assert got["reason"] == reason and got["principal"] and got["ok"] == "True"
