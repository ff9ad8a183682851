import pytest
from septum_pump.therapy.alarms import AlarmAction
from septum_pump.therapy.errors import ClockError
from septum_pump.therapy.program import Origin, Principal, Verdict
from septum_pump.therapy.state_machine import Controller, ControllerConfig, InfusionState

from .conftest import NURSE, dopamine, heparin

CFG = ControllerConfig(period_s=1, start_confirm_timeout_s=30, edit_confirm_timeout_s=60)


def running(library, request=None, now=0.0):
    c = Controller(library, CFG, now=now)
    assert c.program_infusion(request or heparin(), now).accepted
    assert c.request_start(NURSE, now).ok
    assert c.confirm_start(NURSE, now + 1).ok
    return c


def test_two_step_start(library):
    c = Controller(library, CFG)
    assert c.state is InfusionState.IDLE
    assert not c.confirm_start(NURSE, 0).ok  # no first step
    assert c.program_infusion(heparin(), 0).accepted
    assert c.state is InfusionState.PROGRAMMED
    assert c.tick(1).rate_ml_h == 0
    assert c.request_start(NURSE, 2).ok
    assert c.state is InfusionState.PROGRAMMED and c.tick(3).rate_ml_h == 0
    assert c.confirm_start(NURSE, 4).ok
    assert c.state is InfusionState.RUNNING
    assert c.tick(5).rate_ml_h == pytest.approx(10.0)


def test_unconfirmed_start_times_out(library):
    c = Controller(library, CFG)
    c.program_infusion(heparin(), 0)
    c.request_start(NURSE, 0)
    assert not c.confirm_start(NURSE, 31).ok
    assert c.state is InfusionState.PROGRAMMED


@pytest.mark.parametrize(
    ("principal", "origin"),
    [
        (None, Origin.LOCAL_KEYPAD),
        (Principal("nurse-7", "clinician", authenticated=False), Origin.LOCAL_KEYPAD),
        (Principal("pt", "patient", authenticated=True), Origin.LOCAL_KEYPAD),
        (NURSE, Origin.NETWORK),
    ],
)
def test_clinician_actions_need_a_local_authenticated_clinician(library, principal, origin):
    c = running(library)
    assert not c.pause(principal, 5, origin).ok
    assert not c.stop(principal, 5, origin).ok
    assert c.state is InfusionState.RUNNING
    c.program_infusion(heparin(rate=1200), 6)
    assert not c.confirm_edit(principal, 7, origin).ok
    assert c.program is not None and c.program.rate == 1000


def test_an_edit_takes_effect_only_when_confirmed(library):
    c = running(library)
    assert c.program_infusion(heparin(rate=1200), 10).accepted
    assert c.pending_edit is not None
    assert c.tick(11).rate_ml_h == pytest.approx(10.0)  # still the running value
    assert c.confirm_edit(NURSE, 12).ok
    assert c.tick(13).rate_ml_h == pytest.approx(12.0)


def test_an_unconfirmed_edit_times_out_and_the_running_value_stays(library):
    c = running(library)
    c.program_infusion(heparin(rate=1200), 10)
    assert not c.confirm_edit(NURSE, 71).ok
    assert c.pending_edit is None
    assert c.tick(72).rate_ml_h == pytest.approx(10.0)


def test_a_rejected_change_leaves_the_running_infusion_as_it_was(library):
    c = running(library)
    before = (c.state, c.program, c.tick(5))
    for bad in (heparin(rate=5000), heparin(rate=2000), heparin(principal=None), dopamine(), heparin(rate="x")):
        decision = c.program_infusion(bad, 6)
        assert decision.verdict is not Verdict.ACCEPTED or decision.program is None or c.pending_edit is None
    assert c.pending_edit is None
    assert (c.state, c.program) == before[:2]
    assert c.tick(7).rate_ml_h == before[2].rate_ml_h


def test_changing_the_drug_of_a_running_infusion_is_refused(library):
    from .conftest import morphine_pca

    c = running(library)
    decision = c.program_infusion(morphine_pca(), 5)
    assert decision.verdict is Verdict.REJECTED
    assert "stop the infusion" in decision.summary()


def test_pause_resume_and_stop(library):
    c = running(library)
    assert c.pause(NURSE, 5).ok
    assert c.state is InfusionState.PAUSED and c.paused_since == 5
    assert c.tick(6).rate_ml_h == 0
    assert c.request_start(NURSE, 7).ok and c.confirm_start(NURSE, 8).ok
    assert c.state is InfusionState.RUNNING
    assert c.stop(NURSE, 9).ok
    assert c.state is InfusionState.IDLE and c.program is None
    assert c.tick(10).rate_ml_h == 0


def test_emergency_stop_needs_no_login(library):
    c = running(library)
    assert c.emergency_stop(5).ok
    assert c.state is InfusionState.PAUSED
    assert c.tick(6).rate_ml_h == 0


def test_alarm_stops_and_restart_goes_through_paused(library):
    c = running(library)
    c.on_alarm(AlarmAction.STOP, 5)
    assert c.state is InfusionState.ALARM and c.tick(6).rate_ml_h == 0
    assert c.program_infusion(heparin(rate=1200), 7).verdict is Verdict.REJECTED
    assert c.clear_alarm(NURSE, 8).ok
    assert c.state is InfusionState.PAUSED
    c.on_alarm(AlarmAction.ADVISORY, 9)
    assert c.state is InfusionState.PAUSED


def test_completes_at_vtbi_then_kvo(library):
    c = Controller(library, ControllerConfig(period_s=60), now=0)
    c.program_infusion(heparin(rate=1000, vtbi_ml=1), 0)  # 10 mL/h: 1 mL takes 6 minutes
    c.request_start(NURSE, 0)
    c.confirm_start(NURSE, 0)
    t = 0.0
    while c.state is InfusionState.RUNNING and t < 3600:
        c.tick(t)
        t += 60
    assert c.state is InfusionState.COMPLETE
    assert c.delivered_ml == pytest.approx(1.0)
    assert c.tick(t).rate_ml_h == pytest.approx(1.0)  # KVO 1 mL/h (below the 10 mL/h rate)


def test_time_going_backwards_is_an_error(library):
    c = running(library, now=100)
    with pytest.raises(ClockError):
        c.tick(50)
    with pytest.raises(ClockError):
        c.tick(float("nan"))


def test_new_patient_only_when_idle(library):
    c = running(library)
    c.tick(2)
    c.tick(3)
    assert not c.new_patient(NURSE, 4).ok
    c.stop(NURSE, 5)
    assert c.ledger.segments()
    assert c.new_patient(NURSE, 6).ok
    assert not c.ledger.segments()


def test_config_is_checked():
    with pytest.raises(Exception, match="greater than zero"):
        ControllerConfig(period_s=0)
