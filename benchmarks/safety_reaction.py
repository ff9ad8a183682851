"""Time from a hazard (or from pump_control going silent) to motor stop, under the real runtime.

Each trial starts the whole pump through the rig (time scale 1: the model's real periods), runs saline,
then either injects a hazard in the simulator or freezes pump_control (SIGSTOP: it goes silent without
exiting), and measures time.monotonic() from the injection to the motor's stop as recorded by the simulated
motor driver. Prints p50/p99/max per kind. Never asserts on time.

    .venv/bin/python benchmarks/safety_reaction.py [--trials N] [--restarts-every K]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "infusion_pump"))

from septum_pump.rig import PumpRig
from septum_pump.sim import Fault
from septum_pump.therapy_io import (
    HEARTBEATS_MISSED,
    control_period,
    monitor_period,
)

# (an empty reservoir stops the flow physically, so it would not measure the monitor)
HAZARDS = [Fault.OCCLUSION, Fault.AIR, Fault.DOOR_OPEN]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def running(rig: PumpRig) -> None:
    assert rig.login()
    assert rig.program("normal-saline", rate=120, vtbi=1000)[0]
    assert rig.start()[0]
    assert rig.wait_until(rig.motor_running, timeout=10)


def hazard_trials(n: int) -> list[float]:
    """A fresh device per trial: a latched alarm must be cleared by a clinician (and fault_reset is
    rate-limited), so reusing one device would measure the reset path, not the reaction."""
    out: list[float] = []
    for i in range(n):
        fault = HAZARDS[i % len(HAZARDS)]
        with PumpRig(time_scale=1.0) as rig:
            running(rig)
            t = rig.inject(fault)
            if rig.wait_until(lambda: not rig.motor_running(), timeout=2):
                stop = rig.sim.last_stop_after(t)
                if stop is not None:
                    out.append((stop.at_real - t) * 1000)
            else:
                print(f"trial {i}: motor did not stop after {fault}", file=sys.stderr)
    return out


def silence_trials(n: int) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        with PumpRig(time_scale=1.0) as rig:
            running(rig)
            t = rig.kill("pump_control", how="hang")
            if rig.wait_until(lambda: not rig.motor_running(), timeout=2):
                stop = rig.sim.last_stop_after(t)
                if stop is not None:
                    out.append((stop.at_real - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20, help="hazard trials (one device each)")
    ap.add_argument("--silence-trials", type=int, default=8, help="pump_control freezes (one device each)")
    args = ap.parse_args()
    period_ms = monitor_period(1.0) * 1000
    hb_ms = control_period(1.0) * 1000
    for name, xs, goal in (
        ("hazard -> motor stop", hazard_trials(args.trials), f"one control period = {period_ms:.0f} ms"),
        ("pump_control silent -> motor stop", silence_trials(args.silence_trials),
         f"{HEARTBEATS_MISSED} heartbeat periods = {HEARTBEATS_MISSED * hb_ms:.0f} ms"),
    ):
        if not xs:
            print(f"{name}: no successful trials")
            continue
        print(f"{name}: n={len(xs)} p50={statistics.median(xs):.2f} ms p99={pct(xs, 0.99):.2f} ms "
              f"max={max(xs):.2f} ms (goal: {goal})")


if __name__ == "__main__":
    main()
