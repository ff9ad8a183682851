"""Integrated over-infusion detection (therapy/excess.py) and the restart after a runaway.

The bound under test is the one docs/pump-therapy.md states: a motor that delivers (1 + f) times a steady
granted rate r mL/h, f above the accuracy allowance b, is stopped within (3600 a / r + 2 J) / (f - b)
seconds, plus the age of the sensor reading that shows it and one monitor period to act on it.
"""

from __future__ import annotations

import pytest
from septum_pump.therapy.alarms import AlarmAction, AlarmKind
from septum_pump.therapy.program import ProgramRequest
from septum_pump.therapy.state_machine import InfusionState
from septum_pump.therapy.units import AmountUnit, Concentration, DoseUnit

from .conftest import NURSE, Rig, morphine_pca


def saline(rate: float) -> ProgramRequest:
    return ProgramRequest(drug_id="normal-saline", care_area="adult-med-surg",
                          concentration=Concentration(1, AmountUnit.ML, 1), dose_unit=DoseUnit.ML_H, rate=rate,
                          vtbi_ml=2000, principal=NURSE)


def bound_s(rig: Rig, rate: float, f: float) -> float:
    cfg = rig.monitor.config
    b = rig.monitor.alarms.config.over_infusion_fraction
    jitter = cfg.over_infusion_jitter_s or cfg.period_s
    # plus the reading that shows it (here one period old) and the step that acts on it
    return (3600 * cfg.over_infusion_floor_ml / rate + 2 * jitter) / (f - b) + 2 * cfg.period_s


def seconds_to_stop(rig: Rig, limit_s: float) -> float | None:
    start = rig.now
    while rig.now - start <= limit_s + 5 * rig.period:
        d = rig.period_step()
        if AlarmKind.OVER_INFUSION in {a.kind for a in d.alarms}:
            assert d.rate_ml_h == 0
            return rig.now - start
    return None


@pytest.mark.parametrize("f", [0.08, 0.20, 2.0 + 30 / 10], ids=["+8%", "+20%", "runaway"])
@pytest.mark.parametrize("rate", [10.0, 100.0])
@pytest.mark.parametrize("accurate_first_s", [0, 4 * 3600], ids=["at-start", "after-4h"])
def test_sustained_excess_stops_within_the_stated_bound(library, f, rate, accurate_first_s):
    rig = Rig(library, period_s=1.0)
    rig.reservoir_ml = 2000.0
    rig.start(saline(rate))
    for _ in range(accurate_first_s // 60):  # hours of accurate running earn no credit
        d = rig.run(60)
        assert d.rate_ml_h == rate, d
    rig.motor_factor = 1 + f
    limit = bound_s(rig, rate, f)
    took = seconds_to_stop(rig, limit)
    assert took is not None and took <= limit, (took, limit)


def test_excess_below_the_accuracy_allowance_keeps_running(library):
    rig = Rig(library, period_s=1.0)
    rig.reservoir_ml = 2000.0
    rig.start(saline(100))
    rig.motor_factor = 1.04  # inside the 5 % allowance
    d = rig.run(3600)
    assert d.rate_ml_h == 100 and not d.alarms


class LateMotor(Rig):
    """The driver follows each grant ``lag`` of a period late (a busy link): every rate change looks like a
    little excess or credit, which the detector must absorb."""

    lag = 0.8

    def period_step(self):
        previous = self.decisions[-1].rate_ml_h if self.decisions else 0.0
        before = self.motor_ml
        d = super().period_step()
        volume = (previous * self.lag + d.rate_ml_h * (1 - self.lag)) * self.period / 3600
        self.motor_ml = before + volume
        return d


def test_a_late_driver_with_many_boluses_raises_no_false_alarm(library):
    rig = LateMotor(library, period_s=1.0)
    rig.reservoir_ml = 2000.0
    rig.start(morphine_pca())
    for _ in range(24):  # a bolus at every lockout for 4 hours: a fast-slow rate change each time
        rig.press()
        d = rig.run(600)
        assert AlarmKind.OVER_INFUSION not in {a.kind for a in d.alarms}, d
    assert rig.controller.state is InfusionState.RUNNING


def test_restart_after_a_runaway_over_infusion(library):
    """Once, after a motor runaway, clearing the fault did not let the clinician restart: the cumulative
    excess never shrinks, so the over-infusion condition stayed 'present' and the alarm could not clear."""
    rig = Rig(library, period_s=1.0)
    rig.start(saline(100))
    rig.run(10)
    rig.motor_factor = 3.3  # runaway (3x + 30 mL/h at 100 mL/h)
    d = rig.run(10)
    assert AlarmKind.OVER_INFUSION in {a.kind for a in d.alarms} and d.rate_ml_h == 0
    assert rig.controller.state is InfusionState.ALARM
    rig.motor_factor = 1.0  # the driver was replaced / the fault is gone
    rig.run(2)
    assert rig.monitor.clear_alarms(NURSE, rig.now) == [AlarmKind.OVER_INFUSION]
    assert rig.controller.clear_alarm(NURSE, rig.now).ok
    assert rig.controller.request_start(NURSE, rig.now).ok
    assert rig.controller.confirm_start(NURSE, rig.now).ok
    d = rig.run(30)
    assert d.rate_ml_h == 100 and not d.alarms


def test_a_motor_still_running_away_with_nothing_granted_cannot_be_cleared(library):
    rig = Rig(library, period_s=1.0)
    rig.start(saline(100))
    rig.run(10)
    rig.motor_factor = 3.3
    d = rig.run(10)
    assert d.action is AlarmAction.STOP
    for _ in range(20):  # the mechanism keeps pushing although the monitor grants 0
        rig.motor_ml += 0.05
        rig.run(1)
    assert rig.monitor.clear_alarms(NURSE, rig.now) == []


def test_a_step_after_the_clock_went_back_and_recovered_inside_the_booked_grant_does_not_raise(library):
    """Found by engineer C's differential traces: the clock-fault path books the whole last grant (to its end, in
    the future); a later step before that end used to record an overlapping segment and raise out of step()."""
    from septum_pump.therapy.alarms import AlarmKind as Kind

    rig = Rig(library, period_s=90.0)
    rig.start(saline(100))
    rig.now = 445.29
    rig.period_step()
    sensors = rig.sensors()
    cmd = rig.controller.tick(445.29)
    d = rig.monitor.step(413.21, cmd, sensors)  # the clock went back: latched
    assert Kind.CLOCK_FAULT in {a.kind for a in d.alarms} and d.rate_ml_h == 0
    for t in (450.0, 460.0, 470.0):  # inside the booked grant: no exception
        d = rig.monitor.step(t, rig.controller.tick(t), sensors)
        assert d.rate_ml_h == 0 and d.latched_fault
