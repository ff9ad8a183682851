"""Issue 13 pump behaviours at the therapy level: start gate, low reservoir, bolus count, paused too long."""

from __future__ import annotations

from dataclasses import replace

import pytest
from septum_pump.therapy.alarms import ALARM_RULES, AlarmAction, AlarmKind, Priority
from septum_pump.therapy.gates import start_refusal
from septum_pump.therapy.pca import BOLUS_MIN_RESERVOIR_ML, BolusDenial, BolusSource
from septum_pump.therapy.program import PcaRequest, Verdict, validate_program
from septum_pump.therapy.state_machine import InfusionState

from .conftest import NURSE, Rig, morphine_pca

PCA = PcaRequest(demand_dose=1, lockout_min=10, max_boluses_per_hour=4, limit_1h=8, limit_4h=25)


def kinds(decision) -> set[AlarmKind]:
    return {a.kind for a in decision.alarms}


# ------------------------------------------------------------------ door open: no start
def test_the_start_gate_refuses_while_the_monitor_holds_the_motor():
    assert "door-open" in (start_refusal("door-open", "high", False) or "")
    assert start_refusal("occlusion", "high", False) is not None
    assert start_refusal("", "none", True) is not None  # a latched fault
    assert start_refusal("some-new-stop-alarm", "high", False) is not None  # unknown: fail safe
    assert start_refusal("reservoir-low", "high", False) is None  # an advisory does not stop a start
    assert start_refusal("", "none", False) is None


def test_the_monitor_grants_nothing_when_started_with_the_door_open(library):
    rig = Rig(library)
    rig.door_open = True
    rig.start(morphine_pca())  # the controller was told to run
    d = rig.run(1)
    assert d.rate_ml_h == 0 and AlarmKind.DOOR_OPEN in kinds(d) and d.action is AlarmAction.STOP
    rig.door_open = False
    d = rig.run(5)
    assert d.rate_ml_h == 0  # latched until a clinician has seen it
    assert rig.controller.state is InfusionState.ALARM
    # the gate pump_control applies to the monitor's report refuses the restart while the alarm is up
    top = d.alarms[0]
    assert start_refusal(top.kind.value, top.rule.priority.name.lower(), d.latched_fault) is not None


# ------------------------------------------------------------------ low reservoir
def test_low_reservoir_is_high_priority_and_never_hides_a_stop_alarm(library):
    assert ALARM_RULES[AlarmKind.RESERVOIR_LOW].priority is Priority.HIGH
    rig = Rig(library)
    rig.start(morphine_pca())
    rig.reservoir_ml = 5.0
    d = rig.run(2)
    assert AlarmKind.RESERVOIR_LOW in kinds(d) and d.rate_ml_h > 0
    rig.door_open = True
    d = rig.run(1)
    assert d.alarms[0].kind is AlarmKind.DOOR_OPEN  # the governing alarm is reported first


def test_boluses_are_inhibited_below_the_reservoir_threshold(library):
    rig = Rig(library)
    rig.start(morphine_pca())
    rig.reservoir_ml = BOLUS_MIN_RESERVOIR_ML - 0.1
    rig.run(2)
    d = rig.controller.request_bolus(BolusSource.PCA_BUTTON, rig.now, reservoir_ml=rig.reservoir_ml)
    assert not d.granted and d.denial is BolusDenial.RESERVOIR_LOW
    # a lying controller asks for the bolus anyway: the monitor refuses it from its own reading
    cmd = replace(rig.controller.tick(rig.now), bolus=True, rate_ml_h=60.0)
    dec = rig.monitor.step(rig.now, cmd, rig.sensors())
    assert not dec.bolus and dec.rate_ml_h <= 0.5 + 1e-9
    assert any("reservoir" in r for r in dec.reasons), dec.reasons
    rig.reservoir_ml = 50.0
    rig.now += 1
    d = rig.controller.request_bolus(BolusSource.PCA_BUTTON, rig.now, reservoir_ml=rig.reservoir_ml)
    assert d.granted


def test_a_running_bolus_ends_when_the_reservoir_drops_below_the_threshold(library):
    rig = Rig(library)
    rig.start(morphine_pca())
    rig.run(2)
    assert rig.press().granted
    d = rig.run(2)
    assert d.bolus
    rig.reservoir_ml = 0.9
    d = rig.run(1)
    assert not d.bolus and d.rate_ml_h <= 0.5 + 1e-9


# ------------------------------------------------------------------ per-prescription bolus count
def test_the_bolus_count_must_be_within_the_library_bounds(library):
    ok = validate_program(library, morphine_pca(pca=replace(PCA, boluses_per_program=20)))
    assert ok.verdict is Verdict.ACCEPTED and ok.program is not None and ok.program.pca is not None
    assert ok.program.pca.boluses_per_program == 20
    hard = validate_program(library, morphine_pca(pca=replace(PCA, boluses_per_program=500)))
    assert hard.verdict is Verdict.REJECTED
    assert any(i.field == "pca.boluses_per_program" and "hard maximum" in i.message for i in hard.issues)
    zero = validate_program(library, morphine_pca(pca=replace(PCA, boluses_per_program=0)))
    assert zero.verdict is Verdict.REJECTED


def test_bolus_exceeded_when_the_prescription_count_is_used_up(library):
    rig = Rig(library)
    rig.reservoir_ml = 1000.0
    rig.start(morphine_pca(pca=replace(PCA, boluses_per_program=2)))
    for _ in range(2):
        assert rig.press().granted
        rig.run(11 * 60)
    d = rig.press()
    assert not d.granted and d.denial is BolusDenial.BOLUS_EXCEEDED
    assert "Bolus Exceeded" in d.message
    assert rig.controller.bolus_exceeded
    dec = rig.run(1)
    assert AlarmKind.BOLUS_EXCEEDED in kinds(dec) and dec.action is AlarmAction.ADVISORY and dec.rate_ml_h > 0
    # the monitor counts too: a controller that asks for a third bolus gets none
    cmd = replace(rig.controller.tick(rig.now), bolus=True, rate_ml_h=60.0)
    assert not rig.monitor.step(rig.now, cmd, rig.sensors()).bolus
    # a new prescription starts its own count
    new = morphine_pca(pca=replace(PCA, boluses_per_program=3))
    assert rig.controller.program_infusion(new, rig.now).accepted
    assert rig.controller.confirm_edit(NURSE, rig.now).ok
    assert rig.controller.program is not None
    assert rig.monitor.accept_program(rig.controller.program, rig.now) == ()
    rig.run(1)
    assert rig.press().granted


# ------------------------------------------------------------------ paused too long
@pytest.mark.parametrize("limit_s", [120.0, 30.0])
def test_paused_too_long_notice(library, limit_s):
    from septum_pump.therapy.state_machine import Controller, ControllerConfig

    ctl = Controller(library, ControllerConfig(period_s=1.0, paused_too_long_s=limit_s), now=0.0)
    assert ctl.program_infusion(morphine_pca(), 0.0).accepted
    assert ctl.request_start(NURSE, 0.0).ok and ctl.confirm_start(NURSE, 0.0).ok
    assert ctl.pause(NURSE, 1.0).ok
    assert not ctl.paused_too_long(1.0 + limit_s - 0.5)
    assert ctl.paused_too_long(1.0 + limit_s)
    assert ctl.request_start(NURSE, 1.0 + limit_s).ok and ctl.confirm_start(NURSE, 2.0 + limit_s).ok
    assert not ctl.paused_too_long(3.0 + limit_s)


# ------------------------------------------------------------------ clinician bolus
def test_clinician_bolus_within_the_library_bounds(library):
    rig = Rig(library)
    rig.reservoir_ml = 1000.0
    rig.start(morphine_pca(pca=replace(PCA, boluses_per_program=1)))
    rig.run(2)
    ctl, mon = rig.controller, rig.monitor
    assert not ctl.request_clinician_bolus(2.0, None, rig.now).ok  # not authenticated
    refused = ctl.request_clinician_bolus(5.0, NURSE, rig.now)  # morphine bolus hard maximum: 4 mg
    assert not refused.ok and "above-hard-max of 4 mg" in refused.message, refused
    assert "above-hard-max" in mon.authorise_clinician_bolus(NURSE, 5.0, rig.now).message
    assert mon.authorise_clinician_bolus(NURSE, 2.0, rig.now).ok
    assert ctl.request_clinician_bolus(2.0, NURSE, rig.now).ok
    before = sum(d.rate_ml_h for d in rig.decisions)
    for _ in range(300):
        rig.run(1)
    delivered_bolus = sum(d.rate_ml_h for d in rig.decisions if d.bolus) / 3600
    assert abs(delivered_bolus - 2.0) < 0.02, delivered_bolus  # 2 mg at 1 mg/mL, not the 1 mg demand dose
    assert sum(d.rate_ml_h for d in rig.decisions) > before
    # distinct from the patient's bolus: the patient's count (1 per prescription) is still unused
    assert rig.press().granted


def test_the_monitor_gives_no_clinician_sized_bolus_without_the_authorisation(library):
    rig = Rig(library)
    rig.reservoir_ml = 1000.0
    rig.start(morphine_pca())
    rig.run(2)
    assert rig.controller.request_clinician_bolus(2.0, NURSE, rig.now).ok  # pump_control's word only
    for _ in range(300):
        rig.run(1)
    delivered_bolus = sum(d.rate_ml_h for d in rig.decisions if d.bolus) / 3600
    assert delivered_bolus <= 1.0 + 1e-6, delivered_bolus  # at most the patient's demand dose
