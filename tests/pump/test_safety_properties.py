"""Property-based test: random clinician, patient, fault and silence sequences never break the safety
invariants.

The oracle is independent of the code under test: it recomputes dose windows from the motor decisions
the monitor actually issued (time, rate, duration), not from the monitor's own ledger.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from septum_pump.therapy.program import PcaRequest
from septum_pump.therapy.state_machine import InfusionState

from .conftest import NURSE, Rig, morphine_pca

PERIOD = 10.0
LIMIT_1H = 3.0  # mg, morphine 1 mg/mL: also mL; tight so that random runs hit it often
LIMIT_4H = 8.0
BOLUS_RATE = 60.0
PCA = PcaRequest(demand_dose=1, lockout_min=6, max_boluses_per_hour=6, limit_1h=LIMIT_1H, limit_4h=LIMIT_4H)

actions = st.one_of(
    st.tuples(st.just("wait"), st.integers(1, 400)),
    st.tuples(st.just("press"), st.integers(0, 3)),
    st.tuples(st.just("edit"), st.sampled_from([0.0, 0.5, 1.0]), st.sampled_from([1.0, 2.0]), st.booleans()),
    st.tuples(st.just("bad-edit"), st.sampled_from(["rate", "demand", "lockout", "limit", "network", "drug"])),
    st.tuples(st.just("fault"), st.sampled_from(["pressure", "bubble_ul", "door_open", "reservoir_ml"])),
    st.tuples(st.just("silence"), st.integers(1, 8)),
    st.tuples(st.just("rogue"), st.integers(1, 400)),
    st.tuples(st.just("pause"), st.integers(1, 30)),
)

HAZARD_VALUES = {"pressure": 900.0, "bubble_ul": 200.0, "door_open": True, "reservoir_ml": 0.0}
NORMAL_VALUES = {"pressure": 20.0, "bubble_ul": 0.0, "door_open": False, "reservoir_ml": 1000.0}


class Checked(Rig):
    """A rig that checks the per-period invariants on every step and records what was delivered."""

    def __init__(self, library):
        super().__init__(library, period_s=PERIOD)
        self.reservoir_ml = 1000.0
        self.delivered: list[tuple[float, float]] = []  # (start time, mL in this period)
        self.silent_since: float | None = None

    def period_step(self, command_override=None):
        hazard = self.pressure >= 600 or self.bubble_ul >= 50 or self.door_open or self.reservoir_ml <= 0.5
        start = self.now
        if command_override is not None:
            decision = self.monitor.step(self.now, command_override, self.sensors())
            volume = decision.rate_ml_h * PERIOD / 3600
            self.motor_ml += volume
            self.now += PERIOD
        else:
            decision = super().period_step()
            volume = decision.rate_ml_h * PERIOD / 3600
        program = self.monitor.program
        # The motor stops in the very period a hazard is first seen.
        if hazard:
            assert decision.rate_ml_h == 0, decision
        # Silence past the heartbeat timeout: stopped, and latched.
        if self.silent_since is not None and start - self.silent_since > 3 * PERIOD:
            assert decision.rate_ml_h == 0 and decision.latched_fault
        # Never above the library bolus rate or the programmed basal when no bolus runs.
        if program is not None:
            ceiling = BOLUS_RATE if decision.bolus else program.rate_ml_h
            assert decision.rate_ml_h <= ceiling + 1e-9, (decision, program.rate_ml_h)
        self.delivered.append((start, volume))
        return decision

    def window(self, t: float, span: float) -> float:
        # Each period's volume is spread evenly over [start, start + PERIOD).
        total = 0.0
        for start, volume in self.delivered:
            lo, hi = max(start, t - span), min(start + PERIOD, t)
            if hi > lo:
                total += volume * (hi - lo) / PERIOD
        return total

    def recover(self):
        """A clinician deals with whatever stopped the pump and restarts the infusion."""
        for name, value in NORMAL_VALUES.items():
            setattr(self, name, value)
        self.period_step()
        self.monitor.clear_alarms(NURSE, self.now)
        if self.monitor.latched_fault:
            assert self.monitor.clinician_restart(NURSE, self.now).ok
        if self.controller.state is InfusionState.ALARM:
            self.controller.clear_alarm(NURSE, self.now)
        if self.controller.state is InfusionState.PAUSED:
            self.controller.request_start(NURSE, self.now)
            self.controller.confirm_start(NURSE, self.now)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions, min_size=1, max_size=25))
def test_random_sequences_keep_the_safety_invariants(library, sequence):
    rig = Checked(library)
    rig.start(morphine_pca(rate=0.5, pca=PCA))
    for action in sequence:
        kind = action[0]
        if kind == "wait":
            rig.run(action[1] * PERIOD)
        elif kind == "press":
            rig.press()
            rig.run(action[1] * PERIOD)
        elif kind == "edit":
            _, rate, demand, confirm = action
            request = morphine_pca(rate=rate, pca=replace(PCA, demand_dose=demand))
            if rig.controller.program_infusion(request, rig.now).accepted and confirm:
                if rig.controller.confirm_edit(NURSE, rig.now).ok:
                    assert rig.controller.program is not None
                    assert rig.monitor.accept_program(rig.controller.program, rig.now) == ()
            rig.run(PERIOD)
        elif kind == "bad-edit":
            # an unconfirmed edit expires lazily, when the controller next reads the clock: let it expire
            # first, so that only the refused request itself is judged
            rig.controller._expire(rig.now)
            before = (rig.controller.state, rig.controller.program, rig.controller.pending_edit)
            bad = {
                "rate": morphine_pca(rate=3.0, pca=PCA),
                "demand": morphine_pca(pca=replace(PCA, demand_dose=3.5)),
                "lockout": morphine_pca(pca=replace(PCA, lockout_min=1)),
                "limit": morphine_pca(pca=replace(PCA, limit_1h=20)),
                "network": morphine_pca(origin="network"),
                "drug": morphine_pca(drug_id="heparin"),
            }[action[1]]
            assert not rig.controller.program_infusion(bad, rig.now).accepted
            assert (rig.controller.state, rig.controller.program, rig.controller.pending_edit) == before
            rig.run(PERIOD)
        elif kind == "fault":
            setattr(rig, action[1], HAZARD_VALUES[action[1]])
            rig.run(2 * PERIOD)
            rig.recover()
        elif kind == "silence":
            rig.controller_alive = False
            rig.silent_since = rig.now
            rig.run(action[1] * PERIOD)
            rig.controller_alive = True
            rig.silent_since = None
            rig.recover()
        elif kind == "rogue":
            # A broken controller: its commands ask for a huge bolus every period, whatever its state.
            for _ in range(action[1]):
                honest = rig.controller.tick(rig.now)
                cmd = replace(honest, rate_ml_h=900.0, bolus=True, state=InfusionState.RUNNING)
                rig.period_step(command_override=cmd)
        elif kind == "pause":
            rig.controller.pause(NURSE, rig.now)
            rig.run(action[1] * PERIOD)
            rig.recover()

    end = rig.now
    t = 0.0
    while t <= end:
        assert rig.window(t, 3600) <= LIMIT_1H + 1e-6, t
        assert rig.window(t, 4 * 3600) <= LIMIT_4H + 1e-6, t
        t += PERIOD
    assert sum(v for _, v in rig.delivered) <= 100 + 1e-6  # dose hard maximum, 100 mg at 1 mg/mL
