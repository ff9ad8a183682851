"""Killing each partition: non-safety ones are restarted and therapy goes on within limits; pump_control
dying or going silent stops the motor (the monitor latches first) and the device goes to its safe state."""

from __future__ import annotations

import pytest
from septum_pump.rig import PumpRig

RESTARTED = ["ui", "network", "auth", "audit", "update"]


@pytest.mark.parametrize("partition", RESTARTED)
def test_non_safety_partition_killed_therapy_continues(running_rig: PumpRig, partition: str) -> None:
    rig = running_rig
    after = rig.seq()
    rig.kill(partition)
    ev = rig.wait_event(lambda e: e.kind == "ready" and e.partition == partition, timeout=15, after=after)
    assert ev is not None, f"{partition} was not restarted"
    assert not rig.events("safe_state")
    before = rig.delivered_ml()
    assert rig.wait_until(lambda: rig.delivered_ml() > before + 0.3, timeout=10), "therapy stopped"
    assert rig.motor_running()
    # the delivered rate stays the programmed 100 mL/h: the restart changed nothing about therapy
    assert rig.sim.snapshot()["commanded_rate_ml_h"] == pytest.approx(100.0)


def test_pump_control_killed_motor_stops_and_device_goes_safe(running_rig: PumpRig) -> None:
    rig = running_rig
    before = rig.seq()  # the safe state may be reported before the wait starts
    rig.kill("pump_control")
    assert rig.wait_event(lambda e: e.kind == "safe_state" and e.partition == "pump_control", timeout=10,
                          after=before)
    assert rig.wait_until(lambda: not rig.motor_running(), timeout=5)
    stopped = rig.delivered_ml()
    assert rig.supervisor.partition_state("pump_control") == "failed"  # never restarted
    if rig.services == "real":  # the supervisor keeps the partition whose `service:` is audit (not a double)
        assert "audit" in rig.supervisor.partition_pids()
    assert rig.delivered_ml() == pytest.approx(stopped, abs=1e-9)


def test_pump_control_silent_monitor_latches_before_safe_state(running_rig: PumpRig) -> None:
    rig = running_rig
    before = rig.seq()
    t = rig.kill("pump_control", how="hang")
    latched = rig.wait_event(lambda e: e.kind == "latched_fault" and e.partition == "safety_monitor", timeout=5,
                             after=before)
    assert latched is not None
    assert rig.wait_until(lambda: not rig.motor_running(), timeout=1)
    stop = rig.sim.last_stop_after(t)
    assert stop is not None
    safe = rig.wait_event(lambda e: e.kind == "safe_state", timeout=10, after=0)
    assert safe is not None
    # the motor was already stopped by the monitor when the supervisor declared the safe state
    assert stop.at_real < t + (safe.time - latched.time) + 10  # sanity: both happened
    assert latched.seq < safe.seq
    assert "controller-silent" in rig.alarms()
