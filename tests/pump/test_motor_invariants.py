"""Property test (hypothesis): no sequence of keypad, network and sensor events makes the motor run above the
drug's hard limit, with the door open, or with a stop alarm active.

The controller and the safety monitor run as the partitions wire them (conftest.Rig); events are the
clinician's keys (program at any rate, PCA prescriptions in and out of bounds, start, confirm, pause, stop,
clear), the network (a remote order: only ever pre-filled; a compromised controller's commands), the patient's
button and the sensors (door, occlusion, air, reservoir, a fast or runaway motor, garbage readings). The
oracle checks every motor decision against values taken from the drug library, not from the monitor.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from septum_pump.therapy.alarms import AlarmAction, SensorReading
from septum_pump.therapy.program import Origin, ProgramRequest
from septum_pump.therapy.state_machine import InfusionState
from septum_pump.therapy.units import AmountUnit, Concentration, DoseUnit
from septum_pump.therapy_io import program_request

from .conftest import NURSE, Rig

PERIOD = 5.0
AREA = "adult-med-surg"

keypad = st.one_of(
    st.tuples(st.just("program-saline"), st.sampled_from([50.0, 120.0, 249.0, 400.0, 500.0, 501.0, 900.0])),
    st.tuples(st.just("program-morphine"), st.sampled_from([0.0, 0.5, 1.0, 2.0, 2.5]),
              st.sampled_from([(0, 0, 0, 0, 0, 0), (1, 6, 4, 8, 25, 2), (3, 5, 10, 12, 40, 48),
                               (3.5, 6, 4, 8, 25, 0), (1, 4, 4, 8, 25, 0), (1, 6, 4, 13, 25, 0)])),
    st.tuples(st.just("start")), st.tuples(st.just("confirm")), st.tuples(st.just("pause")),
    st.tuples(st.just("stop")), st.tuples(st.just("clear")), st.tuples(st.just("restart")),
)
network = st.one_of(
    st.tuples(st.just("remote-order"), st.sampled_from([100.0, 600.0])),
    st.tuples(st.just("rogue"), st.sampled_from([0.5, 60.0, 900.0, 5000.0]), st.booleans(), st.integers(1, 20)),
)
sensors = st.one_of(
    st.tuples(st.just("door"), st.booleans()),
    st.tuples(st.just("pressure"), st.sampled_from([20.0, 900.0])),
    st.tuples(st.just("bubble"), st.sampled_from([0.0, 200.0])),
    st.tuples(st.just("reservoir"), st.sampled_from([0.3, 0.9, 5.0, 1000.0])),
    st.tuples(st.just("gain"), st.sampled_from([1.0, 1.08, 1.2, 3.0])),
    st.tuples(st.just("garbage"), st.booleans()),
)
events = st.one_of(keypad, network, network, sensors, sensors, st.tuples(st.just("press")),
                   st.tuples(st.just("wait"), st.integers(1, 60)))


class Checked(Rig):
    def __init__(self, library):
        super().__init__(library, period_s=PERIOD)
        self.reservoir_ml = 1000.0
        self.garbage = False
        self.library = library
        self.steps = 0

    def sensors(self):
        reading = super().sensors()
        return replace(reading, line_pressure_mmhg=float("nan")) if self.garbage else reading

    def hard_ceiling_ml_h(self) -> float:
        """The fastest the library allows any drug to run in this care area (bolus rates included)."""
        ceilings = []
        for drug in self.library.drugs:
            try:
                entry = self.library.entry(drug, AREA)
            except Exception:  # not available in this care area
                continue
            ceilings.append(entry.max_rate_ml_h)
            if entry.pca is not None:
                ceilings.append(entry.pca.bolus_rate_ml_h)
        return max(ceilings)

    def check(self, decision, reading: SensorReading) -> None:
        self.steps += 1
        program = self.monitor.program
        assert decision.rate_ml_h <= self.hard_ceiling_ml_h() + 1e-9, decision
        if program is not None:
            entry = self.library.entry(program.drug_id, AREA)
            hard = entry.rate.hard_max
            assert hard is not None
            # the drug's own hard maximum (as mL/h), or its bolus rate during a bolus
            rate_ceiling = hard / program.canonical_per_ml * program.amount_unit.to_canonical
            if decision.bolus:
                assert entry.pca is not None
                rate_ceiling = max(rate_ceiling, entry.pca.bolus_rate_ml_h)
            assert decision.rate_ml_h <= rate_ceiling + 1e-9, (decision, rate_ceiling)
        if reading.door_open:
            assert decision.rate_ml_h == 0, decision
        if decision.action >= AlarmAction.STOP:
            assert decision.rate_ml_h == 0, decision

    def period_step(self, command_override=None):
        reading = self.sensors()
        if command_override is None:
            decision = super().period_step()
        else:
            decision = self.monitor.step(self.now, command_override, reading)
            self.motor_ml += decision.rate_ml_h * PERIOD / 3600 * self.motor_factor
            self.now += PERIOD
        self.check(decision, reading)
        return decision


def saline(rate: float, origin: Origin = Origin.LOCAL_KEYPAD) -> ProgramRequest:
    return ProgramRequest(drug_id="normal-saline", care_area=AREA, concentration=Concentration(1, AmountUnit.ML, 1),
                          dose_unit=DoseUnit.ML_H, rate=rate, vtbi_ml=1000, principal=NURSE, origin=origin)


def install(rig: Checked, request: ProgramRequest) -> None:
    """What pump_control does: program the controller, and hand an installed program to the monitor."""
    decision = rig.controller.program_infusion(request, rig.now)
    if decision.accepted and rig.controller.pending_edit is None and rig.controller.program is not None:
        rig.monitor.accept_program(rig.controller.program, rig.now)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["saline", "morphine"]), st.lists(events, min_size=1, max_size=30))
def test_no_event_sequence_runs_the_motor_above_the_hard_limit_door_open_or_in_alarm(library, first, sequence):
    rig = Checked(library)
    # every sequence starts from a running infusion (most hazards matter only then)
    rig.start(saline(100.0) if first == "saline" else program_request(
        library, drug="morphine-pca", care_area=AREA, concentration=1.0, dose_rate=0.5, vtbi_ml=50, weight_kg=0,
        principal=NURSE))
    for event in sequence:
        kind = event[0]
        ctl = rig.controller
        if kind == "program-saline":
            install(rig, saline(event[1]))
        elif kind == "program-morphine":
            try:
                request = program_request(library, drug="morphine-pca", care_area=AREA, concentration=1.0,
                                          dose_rate=event[1], vtbi_ml=50, weight_kg=0, principal=NURSE,
                                          pca=tuple(float(v) for v in event[2]))
            except Exception:  # refused before it is a request (e.g. an incomplete prescription)
                continue
            install(rig, request)
        elif kind == "start":
            ctl.request_start(NURSE, rig.now)
        elif kind == "confirm":
            if ctl.pending_edit is not None:
                if ctl.confirm_edit(NURSE, rig.now).ok and ctl.program is not None:
                    rig.monitor.accept_program(ctl.program, rig.now)
            else:
                ctl.confirm_start(NURSE, rig.now)
        elif kind == "pause":
            ctl.pause(NURSE, rig.now)
        elif kind == "stop":
            if ctl.stop(NURSE, rig.now).ok:
                rig.monitor.clear_program(rig.now)
        elif kind == "clear":
            rig.monitor.clear_alarms(NURSE, rig.now)
            if rig.monitor.latched_fault:
                rig.monitor.clinician_restart(NURSE, rig.now)
            if ctl.state is InfusionState.ALARM:
                ctl.clear_alarm(NURSE, rig.now)
        elif kind == "restart":  # a clinician deals with the alarm and restarts with the two steps
            rig.monitor.clear_alarms(NURSE, rig.now)
            if rig.monitor.latched_fault:
                rig.monitor.clinician_restart(NURSE, rig.now)
            if ctl.state is InfusionState.ALARM:
                ctl.clear_alarm(NURSE, rig.now)
            ctl.request_start(NURSE, rig.now)
            ctl.confirm_start(NURSE, rig.now)
        elif kind == "remote-order":
            assert not ctl.program_infusion(saline(event[1], Origin.NETWORK), rig.now).accepted
        elif kind == "rogue":
            _, rate, bolus, periods = event
            for _ in range(periods):
                honest = ctl.tick(rig.now)
                rig.period_step(replace(honest, rate_ml_h=rate, bolus=bolus, state=InfusionState.RUNNING))
            continue
        elif kind == "door":
            rig.door_open = event[1]
        elif kind == "pressure":
            rig.pressure = event[1]
        elif kind == "bubble":
            rig.bubble_ul = event[1]
        elif kind == "reservoir":
            rig.reservoir_ml = event[1]
        elif kind == "gain":
            rig.motor_factor = event[1]
        elif kind == "garbage":
            rig.garbage = event[1]
        elif kind == "press":
            rig.press()
        elif kind == "wait":
            rig.run(event[1] * PERIOD)
            continue
        rig.run(PERIOD)
    assert rig.steps > 0
