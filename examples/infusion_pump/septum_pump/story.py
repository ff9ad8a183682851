"""The end-to-end demo story: what `make demo` shows about the pump, as rows of (step, ok, detail).

    from septum_pump.story import run_story
    rows = run_story()            # list[tuple[str, bool, str]]; the demo exits non-zero if any ok is False

Check the model, start the device under enforcement, program saline as a clinician, run PCA boluses
against the lockout, inject each hardware fault, kill each non-safety partition and then pump_control.
Every step is synchronised on device events with bounded waits.
"""

from __future__ import annotations

from collections.abc import Callable

from septum.analysis import check
from septum.model import load

from .rig import MODEL, PumpRig
from .sim import Fault

Row = tuple[str, bool, str]
FAULTS = [Fault.OCCLUSION, Fault.AIR, Fault.DOOR_OPEN, Fault.RESERVOIR_EMPTY, Fault.MOTOR_RUNAWAY,
          Fault.SENSOR_DROPOUT]
NON_SAFETY = ["ui", "network", "auth", "audit", "update"]


def _check_model() -> Row:
    model, source = load(MODEL)
    report = check(model, source)
    return ("model check", not report.findings,
            f"{len(report.findings)} finding(s), {len(report.blocking)} blocking")


def _running(rig: PumpRig, drug: str, rate: float, vtbi: float) -> tuple[bool, str]:
    ok, text = rig.program(drug, rate=rate, vtbi=vtbi)
    if not ok:
        return False, text
    ok, text = rig.start()
    if not ok:
        return False, text
    return rig.wait_until(lambda: rig.motor_running(), timeout=10), text


def run_story(time_scale: float = 60.0, log: Callable[[Row], None] | None = None) -> list[Row]:
    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        if log is not None:
            log(row)

    try:
        add(_check_model())
    except Exception as exc:  # the analysis API is the lead's; report rather than hide
        add(("model check", False, f"{type(exc).__name__}: {exc}"))

    # therapy and PCA on one device
    with PumpRig(time_scale=time_scale) as rig:
        pids = rig.supervisor.partition_pids()
        add(("device started under enforcement", True, f"services={rig.services}, {len(pids)} partitions"))
        add(("clinician login", rig.login(), "PIN from provisioning"))
        add(("wrong PIN refused", not rig.login(pin="000000x"), "auth denies"))
        ok, text = rig.program("normal-saline", rate=600, vtbi=100)
        add(("hard limit refused (saline 600 mL/h)", not ok, text[:80]))
        ok, text = _running(rig, "morphine-pca", rate=1, vtbi=30)
        add(("morphine PCA started", ok, text[:80]))
        granted, why = rig.bolus()
        add(("PCA bolus granted", granted, why[:80]))
        t1 = rig.device_time()  # let the 1 mg bolus finish (1 mL at 60 mL/h), still inside the 6 min lockout
        rig.wait_until(lambda: rig.device_time() - t1 > 2 * 60, timeout=10)
        denied, why2 = rig.bolus()
        add(("second bolus inside the lockout denied", not denied, why2[:80]))
        t0 = rig.device_time()
        got = rig.wait_until(lambda: rig.device_time() - t0 > 6.5 * 60, timeout=30)
        granted3, why3 = rig.bolus() if got else (False, "clock did not advance")
        add(("lockout was the reason", "lockout" in why2, why2[:80]))
        add(("bolus after the lockout granted", granted3, why3[:80]))
        delivered = rig.delivered_ml()
        add(("therapy within limits", delivered < 30.0, f"{delivered:.2f} mL delivered (VTBI 30)"))
        audit = rig.audit_records()
        add(("events audited", len(audit) > 0, f"{len(audit)} audit records"))

    for fault in FAULTS:
        with PumpRig(time_scale=time_scale) as rig:
            rig.login()
            _running(rig, "normal-saline", 100, 500)
            rig.inject(fault)
            stopped = rig.wait_until(lambda: not rig.motor_running(), timeout=5)
            rig.wait_until(lambda: bool(rig.alarms()), timeout=5)
            add((f"fault {fault.value}", stopped and bool(rig.alarms()),
                 f"motor stopped, alarms {','.join(rig.alarms())}"))

    with PumpRig(time_scale=time_scale) as rig:
        rig.login()
        _running(rig, "normal-saline", 100, 500)
        for part in NON_SAFETY:
            after = rig.seq()
            rig.kill(part)
            back = rig.wait_event(lambda e, part=part: e.kind == "ready" and e.partition == part, 15, after=after)
            before = rig.delivered_ml()
            flowing = rig.wait_until(lambda b=before: rig.delivered_ml() > b + 0.2, timeout=10)
            add((f"kill {part}", back is not None and flowing, "restarted; therapy continued"))
        rig.kill("pump_control", how="hang")
        latched = rig.wait_event(lambda e: e.kind == "latched_fault", 5, after=0)
        stopped = rig.wait_until(lambda: not rig.motor_running(), timeout=5)
        safe = rig.wait_event(lambda e: e.kind == "safe_state", 10, after=0)
        add(("pump_control silent", latched is not None and stopped and safe is not None,
             "monitor latched and stopped the motor, then the supervisor went to its safe state"))
    return rows


def main() -> int:
    rows = run_story(log=lambda r: print(f"{'PASS' if r[1] else 'FAIL'}  {r[0]:<45} {r[2]}"))
    return 0 if all(ok for _, ok, _ in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
