import itertools
from dataclasses import replace

import pytest
from septum_pump.therapy.alarms import AlarmAction, AlarmKind
from septum_pump.therapy.monitor import MonitorConfig, SafetyMonitor
from septum_pump.therapy.program import Principal, validate_program
from septum_pump.therapy.state_machine import InfusionState, RateCommand

from .conftest import NURSE, Rig, heparin, morphine_pca


def kinds(decision):
    return {a.kind for a in decision.alarms}


def test_normal_running_passes_the_controller_rate(library):
    rig = Rig(library)
    rig.start(heparin())
    d = rig.run(10)
    assert d.rate_ml_h == pytest.approx(10.0) and d.duration_s == 1 and d.action is AlarmAction.NONE


def test_missing_heartbeats_latch_a_fault_that_needs_a_clinician_restart(library):
    rig = Rig(library)
    rig.start(heparin())
    rig.run(10)
    before = rig.monitor.ledger.amount_in_window("heparin", rig.now, 3600)
    rig.controller_alive = False
    first = rig.period_step()
    assert first.rate_ml_h == 0  # a missing command stops the motor for that period at once
    d = rig.run(5)
    assert d.latched_fault and AlarmKind.CONTROLLER_SILENT in kinds(d)
    rig.controller_alive = True
    assert rig.run(5).rate_ml_h == 0  # heartbeats are back, but the fault stays latched
    patient = Principal("pt", "patient", authenticated=True)
    assert not rig.monitor.clinician_restart(patient, rig.now).ok
    assert rig.monitor.clinician_restart(NURSE, rig.now).ok
    # the dose history survives the restart
    assert rig.monitor.ledger.amount_in_window("heparin", rig.now, 3600) >= before
    assert rig.run(2).rate_ml_h == 0  # nothing restarts by itself
    assert rig.controller.clear_alarm(NURSE, rig.now).ok
    assert rig.controller.request_start(NURSE, rig.now).ok
    assert rig.controller.confirm_start(NURSE, rig.now).ok
    assert rig.run(2).rate_ml_h == pytest.approx(10.0)


def test_monitor_watchdog_latches(library):
    rig = Rig(library)
    rig.start(heparin())
    rig.run(3)
    rig.now += 10  # the monitor was starved for 10 periods
    d = rig.period_step()
    assert d.rate_ml_h == 0 and AlarmKind.WATCHDOG in kinds(d) and d.latched_fault


def test_a_clock_that_goes_back_latches(library):
    rig = Rig(library)
    rig.start(heparin())
    rig.run(3)
    d = rig.monitor.step(rig.now - 100, None, rig.sensors())
    assert d.rate_ml_h == 0 and d.latched_fault


def test_lying_controller_is_clamped_to_the_program(library):
    monitor = SafetyMonitor(library, MonitorConfig(period_s=1), now=0)
    program = validate_program(library, heparin()).program
    assert monitor.accept_program(program, 0) == ()
    from .conftest import Rig as _Rig

    sensors = _Rig(library).sensors()
    d = monitor.step(1, RateCommand(1, 1, 999.0, False, InfusionState.RUNNING, False), sensors)
    assert d.rate_ml_h == pytest.approx(10.0)
    assert any("programmed rate" in r for r in d.reasons)


def test_replayed_and_malformed_commands_are_ignored(library):
    monitor = SafetyMonitor(library, MonitorConfig(period_s=1), now=0)
    monitor.accept_program(validate_program(library, heparin()).program, 0)
    sensors = Rig(library).sensors()
    good = RateCommand(5, 1, 10.0, False, InfusionState.RUNNING, False)
    assert monitor.step(1, good, sensors).rate_ml_h == pytest.approx(10.0)
    assert monitor.step(2, good, sensors).rate_ml_h == 0  # same sequence number again
    for bad in (
        RateCommand(6, 3, float("nan"), False, InfusionState.RUNNING, False),
        RateCommand(7, 3, -5.0, False, InfusionState.RUNNING, False),
        RateCommand(True, 3, 5.0, False, InfusionState.RUNNING, False),
        "rate=999",
    ):
        d = monitor.step(3, bad, sensors)  # type: ignore[arg-type]
        assert d.rate_ml_h == 0 and "malformed or replayed command ignored" in d.reasons


def test_lying_controller_cannot_bolus_past_lockout_or_windows(library):
    monitor = SafetyMonitor(library, MonitorConfig(period_s=1), now=0)
    program = validate_program(library, morphine_pca(rate=0)).program
    monitor.accept_program(program, 0)
    sensors = Rig(library).sensors()
    volume = 0.0
    for t in range(1, 7200):
        cmd = RateCommand(t, t, 500.0, True, InfusionState.RUNNING, False)  # "bolus forever"
        d = monitor.step(t, cmd, replace(sensors, motor_volume_ml=volume))
        volume += d.rate_ml_h / 3600
        assert d.rate_ml_h <= 60.0 + 1e-9  # never above the library bolus rate
    starts = monitor.pca.bolus_starts
    assert all(b - a >= 600 - 1 for a, b in itertools.pairwise(starts))
    for t in range(0, 7200, 30):
        assert monitor.ledger.amount_in_window("morphine-pca", t, 3600) <= 8 + 1e-9


def test_monitor_rebuilds_the_program_and_refuses_tampering(library):
    monitor = SafetyMonitor(library, now=0)
    program = validate_program(library, heparin()).program
    assert program is not None
    assert monitor.accept_program(replace(program, rate=2600), 0)  # beyond the hard max
    assert monitor.accept_program(replace(program, rate=2000), 0)  # soft excess, no confirmation
    assert monitor.accept_program(replace(program, library_version=1), 0)
    assert monitor.accept_program("program", 0)  # type: ignore[arg-type]
    # a controller that computed the wrong mL/h does not get its number used
    assert monitor.accept_program(replace(program, rate_ml_h=100.0), 0) == ()
    assert monitor.program is not None and monitor.program.rate_ml_h == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("hazard", "kind"),
    [
        ({"pressure": 700}, AlarmKind.OCCLUSION),
        ({"bubble_ul": 80}, AlarmKind.AIR_IN_LINE),
        ({"door_open": True}, AlarmKind.DOOR_OPEN),
        ({"reservoir_ml": 0.1}, AlarmKind.RESERVOIR_EMPTY),
    ],
)
def test_a_hazard_stops_the_motor_in_the_period_it_is_seen(library, hazard, kind):
    rig = Rig(library)
    rig.start(heparin())
    rig.run(5)
    for name, value in hazard.items():
        setattr(rig, name, value)
    d = rig.period_step()
    assert d.rate_ml_h == 0 and kind in kinds(d) and d.action is AlarmAction.STOP
    assert rig.controller.state is InfusionState.ALARM


def test_occlusion_cleared_then_no_bolus_for_the_hold_off(library):
    rig = Rig(library)
    rig.start(morphine_pca())
    rig.pressure = 700
    rig.run(2)
    rig.pressure = 20
    rig.run(1)
    assert rig.monitor.clear_alarms(NURSE, rig.now) == [AlarmKind.OCCLUSION]
    assert rig.controller.clear_alarm(NURSE, rig.now).ok
    rig.controller.request_start(NURSE, rig.now)
    rig.controller.confirm_start(NURSE, rig.now)
    assert rig.press().denial.name == "HOLD_OFF"
    rig.run(300)
    assert rig.press().granted


def test_sensor_fault_stops(library):
    rig = Rig(library)
    rig.start(heparin())
    rig.run(2)
    d = rig.monitor.step(rig.now, rig.controller.tick(rig.now), None)
    assert d.rate_ml_h == 0 and AlarmKind.SENSOR_FAULT in kinds(d)


def test_over_infusion_stops_and_under_infusion_is_advisory(library):
    rig = Rig(library)
    rig.start(heparin())
    rig.motor_factor = 0.5  # the mechanism slips: half of what was permitted reaches the line
    d = rig.run(600)
    assert AlarmKind.UNDER_INFUSION in kinds(d) and d.action is AlarmAction.ADVISORY and d.rate_ml_h > 0
    rig.motor_factor = 3.0  # runaway motor
    d = rig.run(300)
    assert AlarmKind.OVER_INFUSION in kinds(d) and d.rate_ml_h == 0


def test_paused_too_long(library):
    rig = Rig(library)
    rig.start(heparin())
    rig.controller.pause(NURSE, rig.now)
    d = rig.run(119)
    assert AlarmKind.PAUSED_TOO_LONG not in kinds(d)
    d = rig.run(2)
    assert AlarmKind.PAUSED_TOO_LONG in kinds(d) and d.action is AlarmAction.ADVISORY


def test_only_a_local_clinician_clears_alarms(library):
    rig = Rig(library)
    rig.start(heparin())
    rig.door_open = True
    rig.run(1)
    rig.door_open = False
    rig.run(1)
    assert rig.monitor.clear_alarms(None, rig.now) == []
    assert rig.monitor.clear_alarms(NURSE, rig.now) == [AlarmKind.DOOR_OPEN]
