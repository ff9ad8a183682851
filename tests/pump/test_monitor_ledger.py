"""The safety monitor's dose account (therapy/monitor_ledger.py) against the controller's (ledger.py): written
apart, they agree on every honest history and come apart when the controller's accounting is broken.

The loop below is pump_control's controller and the safety monitor on one device clock that the history moves
in uneven steps; the motor does what the monitor grants, for as long as the grant lasts. The controller books
what it asked for, the monitor what it granted, each with its own code.

Tolerance. Without a clock fault the two accounts agree to ``ROUNDING_ML`` (1e-9 mL): the monitor's rate
passes through mL per period and back, so it may differ from the asked one in the last bit. A clock that
steps back makes the monitor book the whole grant in force (it may all have run) while the controller books
only until it is told of the fault, so each clock fault may add up to one lease at the granted rate
(``PERIOD`` s x the highest rate granted) to the monitor's side; that is all the tolerance allows.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from septum_pump.therapy import monitor_ledger
from septum_pump.therapy.alarms import AlarmAction, SensorReading
from septum_pump.therapy.drug_library import load_drug_library
from septum_pump.therapy.ledger import DeliveryLedger
from septum_pump.therapy.monitor import MonitorConfig, MotorDecision, SafetyMonitor
from septum_pump.therapy.pca import BolusSource
from septum_pump.therapy.program import PcaRequest
from septum_pump.therapy.state_machine import Controller, ControllerConfig, InfusionState

from .conftest import LIBRARY_PATH, NURSE, morphine_pca

THERAPY = Path(monitor_ledger.__file__).resolve().parent
PERIOD = 10.0
DRUG = "morphine-pca"  # 1 mg/mL: mg and mL are the same number
LIMIT_1H = 3.0
PCA = PcaRequest(demand_dose=1, lockout_min=6, max_boluses_per_hour=6, limit_1h=LIMIT_1H, limit_4h=8)
ROUNDING_ML = 1e-9
LIBRARY = load_drug_library(LIBRARY_PATH.read_bytes())  # not a fixture: hypothesis would print it per example
WINDOWS = (3600.0, 4 * 3600.0)


class Loop:
    def __init__(self, library: object, rate: float = 0.5) -> None:
        self.now = 0.0
        self.controller = Controller(library, ControllerConfig(period_s=PERIOD), now=0.0)  # type: ignore[arg-type]
        self.monitor = SafetyMonitor(library, MonitorConfig(  # type: ignore[arg-type]
            period_s=PERIOD, heartbeat_timeout_s=3 * PERIOD, watchdog_timeout_s=3 * PERIOD), now=0.0)
        self.motor_ml = 0.0
        self._motor_grant = (0.0, 0.0, 0.0)  # (run up to, grant ends, rate) of the grant the motor is running
        self.peak_rate = 0.0
        self._last_read = 0.0  # the monitor's clock at its last step
        self.clock_faults = 0
        self.decisions: list = []
        self.asked: list[float] = []  # the controller's rate standing at each step
        self._standing = (0.0, 0.0)  # (until, rate) of the controller's last request
        self.worst = 0.0  # the largest disagreement seen at a step
        self.failures: list[str] = []  # steps where it was beyond the tolerance
        self.withheld = False  # the monitor has granted less than the controller asked (without a stop)
        assert self.program(rate)
        self.start()

    # ---------------------------------------------------------------------------------- actions
    def program(self, rate: float, pca: PcaRequest = PCA) -> bool:
        """Programme ``rate`` (confirmed if running); False if the controller refused it (e.g. titration)."""
        ctl = self.controller
        if not ctl.program_infusion(morphine_pca(rate=rate, pca=pca), self.now).accepted:
            return False
        if ctl.state in (InfusionState.RUNNING, InfusionState.PAUSED):
            assert ctl.confirm_edit(NURSE, self.now).ok
        assert ctl.program is not None
        assert self.monitor.accept_program(ctl.program, self.now) == ()  # never refuses what ctl accepted
        return True

    def start(self) -> None:
        assert self.controller.request_start(NURSE, self.now).ok
        assert self.controller.confirm_start(NURSE, self.now).ok

    def _motor_runs_until(self, wall: float) -> None:
        since, end, rate = self._motor_grant
        until = max(since, min(wall, end))
        self.motor_ml += rate * (until - since) / 3600
        self._motor_grant = (until, end, rate)

    def step(self, dt: float = PERIOD, *, speaks: bool = True, clock_back_s: float = 0.0) -> None:
        """One step at ``now``, then ``dt`` of device time; with ``clock_back_s`` the monitor's clock reads that much
        before its previous step (a clock fault: the controller's clock is fine)."""
        self._motor_runs_until(self.now)
        command = self.controller.tick(self.now) if speaks else None
        sensors = SensorReading(line_pressure_mmhg=20.0, largest_bubble_ul=0.0, air_ul=0.0, reservoir_ml=1000.0,
                                door_open=False, motor_volume_ml=self.motor_ml)
        if clock_back_s:
            self.clock_faults += 1
            decision = self.monitor.step(self._last_read - clock_back_s, command, sensors)
        else:
            decision = self.monitor.step(self.now, command, sensors)
            self._last_read = self.now
        if decision.action >= AlarmAction.STOP and speaks:
            self.controller.on_alarm(decision.action, self.now)
        self._motor_grant = (self.now, self.now + decision.duration_s, decision.rate_ml_h)
        self.peak_rate = max(self.peak_rate, decision.rate_ml_h)
        self.decisions.append(decision)
        if command is not None:
            self._standing = (self.now + PERIOD, command.rate_ml_h)
        # a silent controller's last request stands until its lease ends (its account books it so far)
        self.asked.append(self._standing[1] if self.now < self._standing[0] else 0.0)
        self.check(decision, self.asked[-1], speaks)
        self.now += dt

    def run(self, periods: int, dt: float = PERIOD, *, speaks: bool = True) -> None:
        for _ in range(periods):
            self.step(dt, speaks=speaks)

    def recover(self) -> None:
        """A clinician clears what stopped the pump and restarts the infusion."""
        self.step()
        self.monitor.clear_alarms(NURSE, self.now)
        if self.monitor.latched_fault:
            assert self.monitor.clinician_restart(NURSE, self.now).ok
        if self.controller.state is InfusionState.ALARM:
            assert self.controller.clear_alarm(NURSE, self.now).ok
        if self.controller.state is InfusionState.PAUSED:
            self.start()

    # --------------------------------------------------------------------------------- the check
    def tolerance(self) -> float:
        return ROUNDING_ML + self.clock_faults * PERIOD * self.peak_rate / 3600

    def gaps(self) -> list[float]:
        """Monitor minus controller: the 1 h and 4 h windows, and the volume under the current program."""
        c, m, t = self.controller, self.monitor, self.now
        gaps = [m.ledger.amount_in_window(DRUG, t, w) - c.ledger.amount_in_window(DRUG, t, w) for w in WINDOWS]
        if c.program is not None and m.program is not None:
            gaps.append(m.delivered_ml - c.delivered_ml)
        return gaps

    def check(self, decision: MotorDecision, asked: float, speaks: bool) -> None:
        """Right after a step both have booked up to ``now`` (between steps the controller books ahead: any
        call reads its clock, while the monitor books at its next step), so that is when they are compared;
        a silent controller reads no clock, so its account is compared when it speaks again."""
        tol = self.tolerance()
        if speaks:
            gaps = self.gaps()
            self.worst = max(self.worst, *gaps)
            if max(gaps) > tol:  # the monitor counts more than the controller asked for: the controller under-counts
                self.failures.append(f"monitor's account above the controller's by {max(gaps):.3g} mL at "
                                     f"t={self.now:g} (tolerance {tol:.3g} mL)")
            if not self.withheld and min(gaps) < -tol:
                self.failures.append(f"controller's account above the monitor's by {-min(gaps):.3g} mL at "
                                     f"t={self.now:g} though the monitor granted every request")
        # from a grant below the request on, without a stop that also halts the controller, the controller's
        # account may lawfully be the larger (it books what it asked for, e.g. a bolus the monitor refused)
        if decision.rate_ml_h < asked - ROUNDING_ML and decision.action < AlarmAction.STOP:
            self.withheld = True
        # the monitor's account is also the motor's: what it granted is what ran (a clock fault books a whole
        # grant the motor may have cut short: more, never less)
        motor = self.monitor.allowed_total_ml - self.motor_ml
        if not -ROUNDING_ML <= motor <= tol:
            self.failures.append(f"monitor allowed {motor:+.3g} mL beyond what the motor ran at t={self.now:g}")


def _agree(loop: Loop) -> None:
    assert not loop.failures, loop.failures[:3]


# ------------------------------------------------------------------------------ random histories
events = st.one_of(
    st.tuples(st.just("run"), st.integers(1, 60), st.sampled_from([1.0, 1.0, 0.5, 0.25, 1.5, 2.0, 3.5])),
    st.tuples(st.just("press"), st.integers(0, 3)),
    st.tuples(st.just("edit"), st.sampled_from([0.0, 0.25, 0.5, 1.0])),
    st.tuples(st.just("pause"), st.integers(1, 20)),
    st.tuples(st.just("silent"), st.integers(1, 6)),  # no command: the grants lapse; > 3 periods latches
    st.tuples(st.just("late"), st.sampled_from([1.5, 2.9, 4.0, 9.0])),  # a step later than its lease
    st.tuples(st.just("clock-back"), st.sampled_from([0.5, 5.0, 9.99])),
    st.tuples(st.just("restart"), st.sampled_from([0.25, 0.5, 1.0])),  # stop, programme again, start
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, min_size=1, max_size=20))
def test_the_two_accounts_agree_on_random_histories(history):
    loop = Loop(LIBRARY)
    for event in history:
        kind = event[0]
        if kind == "run":
            loop.run(event[1], PERIOD * event[2])
        elif kind == "press":
            loop.controller.request_bolus(BolusSource.PCA_BUTTON, loop.now, loop.monitor.bolus_hold_off_until)
            loop.run(event[1])
        elif kind == "edit":
            if loop.controller.state in (InfusionState.RUNNING, InfusionState.PAUSED, InfusionState.COMPLETE):
                if loop.program(event[1]) and loop.controller.state is InfusionState.PROGRAMMED:
                    loop.start()  # from COMPLETE: a new start
            loop.step()
        elif kind == "pause":
            assert loop.controller.pause(NURSE, loop.now).ok or loop.controller.state is not InfusionState.RUNNING
            loop.run(event[1])
            loop.recover()
        elif kind == "silent":
            loop.run(event[1], speaks=False)
            loop.recover()
        elif kind == "late":
            loop.step(PERIOD * event[1])
            loop.recover()
        elif kind == "clock-back":
            loop.step(clock_back_s=event[1])
            loop.recover()
        elif kind == "restart":
            assert loop.controller.stop(NURSE, loop.now).ok
            loop.monitor.clear_program(loop.now)
            loop.step()
            if loop.program(event[1]):
                loop.start()
        _agree(loop)
    loop.run(3)
    _agree(loop)


def test_a_steady_infusion_with_boluses_is_booked_alike(library):
    """The same check on a fixed history, so that it also runs where hypothesis is not wanted."""
    loop = Loop(library, rate=1.0)
    for _ in range(8):
        loop.controller.request_bolus(BolusSource.PCA_BUTTON, loop.now, loop.monitor.bolus_hold_off_until)
        loop.run(40)
        _agree(loop)
    assert loop.monitor.ledger.amount_in_window(DRUG, loop.now, 3600) > 2.0  # boluses did run
    assert loop.worst <= ROUNDING_ML


# ------------------------------------------------------------------ a bug planted in the controller
def _press_every_lockout(loop: Loop, presses: int) -> None:
    for _ in range(presses):
        loop.controller.request_bolus(BolusSource.PCA_BUTTON, loop.now, loop.monitor.bolus_hold_off_until)
        loop.run(round(PCA.lockout_min * 60 / PERIOD))


def _halved_windows(self: DeliveryLedger, drug_id: str, t0: float, t1: float) -> float:
    # the planted bug: the controller's ledger counts half of what was delivered
    return 0.5 * sum(s.volume_between(t0, t1) * s.canonical_per_ml for s in self._segments if s.drug_id == drug_id)


def _catch_up_without_boluses(self: Controller, now: float) -> None:
    # the planted bug: a copy of the controller's _catch_up that forgot to book bolus leases
    lease = self._lease
    if lease is not None and lease.bolus:
        lease.start = max(lease.start, min(now, lease.end))
        return
    _ORIGINAL_CATCH_UP(self, now)


_ORIGINAL_CATCH_UP = Controller._catch_up


@pytest.mark.parametrize("bug", ["halved windows", "boluses not booked"])
def test_a_bug_in_the_controllers_accounting_is_caught_by_the_monitor(library, monkeypatch, bug):
    """The "halved windows" bug is in the ledger class: a monitor that used the controller's ``DeliveryLedger`` (as
    it did) inherits it, lets the boluses through and agrees with the controller. "boluses not booked" is a bug in
    the controller's own ``_catch_up``, which the monitor copied but did not share."""
    if bug == "halved windows":
        monkeypatch.setattr(DeliveryLedger, "amount_between", _halved_windows)
    else:
        monkeypatch.setattr(Controller, "_catch_up", _catch_up_without_boluses)
    loop = Loop(library, rate=0.5)
    _press_every_lockout(loop, 12)  # two hours of presses, one per lockout: far more than 3 mg/h
    # the two accounts disagree beyond the tolerance: the controller's account is wrong, and it shows
    assert loop.failures and loop.worst > 0.1, f"disagreement {loop.worst:g} mL"
    # the monitor kept the patient inside the 1-hour limit, by its own account and by the motor's
    t = 0.0
    while t <= loop.now:
        assert loop.monitor.ledger.amount_in_window(DRUG, t, 3600) <= LIMIT_1H + 1e-6, t
        t += PERIOD
    # it did so by granting less than the controller asked, and said why
    assert any(d.rate_ml_h < asked - 1e-9 for d, asked in zip(loop.decisions, loop.asked, strict=True))
    reasons = {r for d in loop.decisions for r in d.reasons}
    assert any(r.startswith(("bolus refused by monitor", "command limited by")) for r in reasons), reasons


# ----------------------------------------------------------------------------------- no shared code
def _imports(path: Path) -> set[str]:
    """Modules ``path`` imports, relative ones resolved against the therapy package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "septum_pump.therapy." if node.level == 1 else ("septum_pump." if node.level == 2 else "")
            found.add(base + (node.module or ""))
    return found


CONTROLLER_ACCOUNTING = {"septum_pump.therapy.ledger", "septum_pump.therapy.state_machine"}


def test_the_monitor_ledger_imports_nothing_of_the_controllers_accounting():
    imported = _imports(THERAPY / "monitor_ledger.py")
    assert not imported & CONTROLLER_ACCOUNTING, imported
    # and nothing else of the pump that could bring it in: units for the hour, septum for the error only
    assert {m for m in imported if m.startswith("septum_pump")} <= {"septum_pump.therapy.units"}, imported


def test_the_monitor_books_with_its_own_ledger():
    imported = _imports(THERAPY / "monitor.py")
    assert "septum_pump.therapy.ledger" not in imported, imported
    source = (THERAPY / "monitor.py").read_text()
    assert "DeliveryLedger" not in source and "_catch_up" not in source
    # no class or function of the controller's ledger is reused by the monitor's
    from septum_pump.therapy import ledger

    theirs = {id(v) for v in vars(ledger).values()} | {id(v) for v in vars(DeliveryLedger).values()}
    mine = [v for v in vars(monitor_ledger.MonitorLedger).values() if callable(v)]
    assert mine and not any(id(v) in theirs for v in mine)


def test_monitor_ledger_books_a_clock_faults_grant_once():
    """G-6: after a clock fault booked a whole grant, a grant starting inside it books only the rest."""
    led = monitor_ledger.MonitorLedger()
    led.accept_program(DRUG, 1.0)
    led.grant(0.0, 36.0, False, 10.0)
    assert led.book_whole_grant() is None
    led.grant(4.0, 36.0, False, 10.0)  # starts inside [0, 10], already booked
    led.book(14.0)
    assert led.allowed_total_ml == pytest.approx(36.0 * 14.0 / 3600)  # [0, 14] once, not [0, 10] + [4, 14]
    assert led.amount_in_window(DRUG, 14.0, 3600) == pytest.approx(led.allowed_total_ml)
    assert [(s.start, s.end) for s in led.segments()] == [(0.0, 14.0)]  # contiguous and alike: one stretch


def test_monitor_ledger_books_nothing_without_a_program():
    led = monitor_ledger.MonitorLedger()
    led.grant(0.0, 36.0, False, 10.0)
    assert led.book(5.0) is None and led.allowed_total_ml == 0.0 and not led.segments()


def test_rogue_controller_commands_do_not_enter_the_monitors_account(library):
    """The monitor books its grant, never the command: a controller asking for 900 mL/h gets the basal."""
    loop = Loop(library, rate=0.5)
    for _ in range(30):
        honest = loop.controller.tick(loop.now)
        sensors = SensorReading(line_pressure_mmhg=20.0, largest_bubble_ul=0.0, air_ul=0.0, reservoir_ml=1000.0,
                                door_open=False, motor_volume_ml=loop.monitor.allowed_total_ml)
        loop.monitor.step(loop.now, replace(honest, rate_ml_h=900.0, bolus=False), sensors)
        loop.now += PERIOD
    assert loop.monitor.allowed_total_ml == pytest.approx(0.5 * 29 * PERIOD / 3600)
