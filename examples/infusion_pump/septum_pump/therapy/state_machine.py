"""The infusion controller run by pump_control: states, clinician actions, PCA demands, and the wanted
motor rate for each control period.

States: IDLE -> PROGRAMMED -> RUNNING <-> PAUSED, any active state -> ALARM -> PAUSED, RUNNING -> COMPLETE.

Human-factors rules (PUMP.md):
  * two-step start: ``request_start`` shows what will run, ``confirm_start`` within
    ``start_confirm_timeout_s`` starts it; otherwise nothing starts;
  * a change to a running (or paused) infusion is held as a pending edit until the clinician confirms it
    within ``edit_confirm_timeout_s``; if the confirmation does not come, the running values stay;
  * a rejected programming request changes nothing at all.

The controller's wanted rate is advisory to the safety monitor, which limits it again independently.
The controller keeps its own dose ledger from the rates it asked for (an over-estimate of what the
monitor let through), so its own PCA decisions are never more permissive than the monitor's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from septum.errors import InvariantBroken

from .alarms import AlarmAction
from .drug_library import DrugLibrary
from .errors import require_positive_fields, require_time
from .ledger import DeliveryLedger
from .pca import (
    BolusDenial,
    BolusSource,
    PcaTracker,
    clinician_bolus_denial,
    clinician_bolus_ml,
    kvo_rate_ml_h,
    plan_period,
    window_headroom_ml,
)
from .program import (
    Issue,
    Origin,
    Principal,
    Program,
    ProgramDecision,
    ProgramRequest,
    Severity,
    Verdict,
    is_local_clinician,
    titration_issue,
    validate_program,
)
from .titration import RateHistory
from .units import SECONDS_PER_HOUR

_VOLUME_EPS_ML = 1e-9


class InfusionState(StrEnum):
    IDLE = "idle"
    PROGRAMMED = "programmed"
    RUNNING = "running"
    PAUSED = "paused"
    ALARM = "alarm"
    COMPLETE = "complete"


@dataclass(frozen=True)
class ControllerConfig:
    period_s: float = 1.0
    start_confirm_timeout_s: float = 30.0
    edit_confirm_timeout_s: float = 60.0
    paused_too_long_s: float = 120.0  # a paused infusion shows the "paused too long" notice after this

    def __post_init__(self) -> None:
        require_positive_fields(self, "period_s", "start_confirm_timeout_s", "edit_confirm_timeout_s",
                                "paused_too_long_s")


@dataclass(frozen=True)
class RateCommand:
    """What pump_control asks safety_monitor for, once per period; its arrival is also the heartbeat."""

    seq: int
    time: float
    rate_ml_h: float
    bolus: bool
    state: InfusionState
    at_limit: bool


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


@dataclass(frozen=True)
class BolusDecision:
    granted: bool
    denial: BolusDenial | None = None

    @property
    def message(self) -> str:
        return "bolus granted" if self.granted else f"bolus denied: {self.denial}"


@dataclass
class _Lease:
    """The rate asked for at ``start`` and still running until ``end`` (or the next command)."""

    start: float
    end: float
    rate_ml_h: float
    bolus: bool


class Controller:
    def __init__(self, library: DrugLibrary, config: ControllerConfig | None = None, now: float = 0.0) -> None:
        self.library = library
        self.config = config or ControllerConfig()
        self._now = require_time(now, None)
        self.state = InfusionState.IDLE
        self.program: Program | None = None
        self.ledger = DeliveryLedger()
        self.pca = PcaTracker()
        self.rates = RateHistory()  # programmed rates, for the titration limit
        self.delivered_ml = 0.0  # under the current program (since it was started or last edited)
        self.paused_since: float | None = None
        self._start_pending_until: float | None = None
        self._pending_edit: tuple[Program, float] | None = None
        self._bolus_requested = False
        self._clinician_ml = 0.0  # the requested bolus is a clinician's, of this volume (0: the patient's)
        self._lease: _Lease | None = None
        self._seq = 0

    # ------------------------------------------------------------------------------------ bookkeeping

    def _clock(self, now: float) -> float:
        self._now = require_time(now, self._now)
        self._catch_up(self._now)
        self._expire(self._now)
        return self._now

    def _catch_up(self, now: float) -> None:
        """Book what the current lease delivered up to ``now`` (never beyond its end)."""
        lease = self._lease
        if lease is None or self.program is None:
            return
        end = min(now, lease.end)
        if end > lease.start:
            self.ledger.record(
                self.program.drug_id,
                lease.start,
                end,
                lease.rate_ml_h,
                self.program.canonical_per_ml,
                bolus=lease.bolus,
            )
            volume = lease.rate_ml_h * (end - lease.start) / SECONDS_PER_HOUR
            self.delivered_ml += volume
            if lease.bolus:
                self.pca.add_delivered(volume)
            lease.start = end

    def _expire(self, now: float) -> None:
        if self._start_pending_until is not None and now > self._start_pending_until:
            self._start_pending_until = None
        if self._pending_edit is not None and now > self._pending_edit[1]:
            self._pending_edit = None  # unconfirmed edit timed out: the running values stay

    def _halt_motor(self) -> None:
        """Stop asking for delivery now (the lease is cut short) and end any bolus."""
        if self._lease is not None:
            self._lease.end = self._lease.start
        self.pca.end_bolus()
        self._bolus_requested = False
        self._clinician_ml = 0.0

    @property
    def pending_edit(self) -> Program | None:
        return self._pending_edit[0] if self._pending_edit else None

    @property
    def start_pending(self) -> bool:
        return self._start_pending_until is not None

    # --------------------------------------------------------------------------------- programming

    def program_infusion(self, request: ProgramRequest, now: float) -> ProgramDecision:
        """Validate and, if accepted, install (idle) or hold as a pending edit (running/paused)."""
        now = self._clock(now)
        decision = validate_program(self.library, request)
        if decision.verdict is not Verdict.ACCEPTED or decision.program is None:
            return decision
        new = decision.program
        raised = titration_issue(new, self.rates, now)
        if raised is not None:
            return ProgramDecision(Verdict.REJECTED, None, (raised,))
        if self.state in (InfusionState.IDLE, InfusionState.PROGRAMMED, InfusionState.COMPLETE):
            self._install(new)
            self.state = InfusionState.PROGRAMMED
            self._start_pending_until = None
            return decision
        if self.state is InfusionState.ALARM:
            return _refused("program", "clear the alarm before changing the program")
        current = self.program
        if current is None:  # RUNNING and PAUSED always have a program
            raise InvariantBroken("internal invariant broken: current is not None")
        if (new.drug_id, new.care_area) != (current.drug_id, current.care_area) or not (
            new.concentration.matches(current.concentration)
        ):
            return _refused("drug_id", "stop the infusion before changing drug, concentration or care area")
        self._pending_edit = (new, now + self.config.edit_confirm_timeout_s)
        return decision

    def _install(self, program: Program) -> None:
        self.program = program
        self.rates.record(self._now, program.drug_id, program.rate)
        self.delivered_ml = 0.0
        self._lease = None
        self.pca.new_prescription()

    def confirm_edit(self, principal: Principal | None, now: float, origin: Origin = Origin.LOCAL_KEYPAD) -> Outcome:
        now = self._clock(now)
        if not is_local_clinician(principal, origin):
            return Outcome(False, "confirming a change needs an authenticated clinician at the pump")
        if self._pending_edit is None:
            return Outcome(False, "no change is waiting for confirmation (it may have timed out)")
        new, _ = self._pending_edit
        self._pending_edit = None
        self.program = new
        self.rates.record(now, new.drug_id, new.rate)
        self.delivered_ml = 0.0  # the new volume to be infused counts from now
        self.pca.new_prescription()  # a confirmed change is a new prescription, with its own bolus count
        return Outcome(True, "change confirmed")

    def cancel_edit(self, now: float) -> Outcome:
        self._clock(now)
        self._pending_edit = None
        return Outcome(True, "change cancelled; running values unchanged")

    # ------------------------------------------------------------------------------ start and stop

    def request_start(self, principal: Principal | None, now: float, origin: Origin = Origin.LOCAL_KEYPAD) -> Outcome:
        """Step one of two: arm the start (or resume) for ``start_confirm_timeout_s``."""
        now = self._clock(now)
        if not is_local_clinician(principal, origin):
            return Outcome(False, "starting needs an authenticated clinician at the pump")
        if self.state not in (InfusionState.PROGRAMMED, InfusionState.PAUSED) or self.program is None:
            return Outcome(False, f"cannot start from state {self.state}")
        self._start_pending_until = now + self.config.start_confirm_timeout_s
        return Outcome(True, "confirm to start")

    def confirm_start(self, principal: Principal | None, now: float, origin: Origin = Origin.LOCAL_KEYPAD) -> Outcome:
        """Step two of two."""
        now = self._clock(now)
        if not is_local_clinician(principal, origin):
            return Outcome(False, "starting needs an authenticated clinician at the pump")
        if self._start_pending_until is None:
            return Outcome(False, "no start is waiting for confirmation (it may have timed out)")
        if self.state not in (InfusionState.PROGRAMMED, InfusionState.PAUSED):
            self._start_pending_until = None
            return Outcome(False, f"cannot start from state {self.state}")
        self._start_pending_until = None
        self.state = InfusionState.RUNNING
        self.paused_since = None
        return Outcome(True, "running")

    def pause(self, principal: Principal | None, now: float, origin: Origin = Origin.LOCAL_KEYPAD) -> Outcome:
        now = self._clock(now)
        if not is_local_clinician(principal, origin):
            return Outcome(False, "pausing needs an authenticated clinician at the pump")
        if self.state not in (InfusionState.RUNNING, InfusionState.COMPLETE):
            return Outcome(False, f"cannot pause from state {self.state}")
        self._to_paused(now)
        return Outcome(True, "paused")

    def emergency_stop(self, now: float) -> Outcome:
        """Break glass: anyone at the pump, no login. Always allowed; the caller audits and alerts."""
        now = self._clock(now)
        if self.state in (InfusionState.RUNNING, InfusionState.COMPLETE):
            self._to_paused(now)
        else:
            self._halt_motor()
        return Outcome(True, "emergency stop: motor stopped")

    def _to_paused(self, now: float) -> None:
        self._halt_motor()
        self.state = InfusionState.PAUSED
        self.paused_since = now

    def stop(self, principal: Principal | None, now: float, origin: Origin = Origin.LOCAL_KEYPAD) -> Outcome:
        """End the infusion and forget the program; the dose history is kept (same patient)."""
        self._clock(now)
        if not is_local_clinician(principal, origin):
            return Outcome(False, "stopping the infusion needs an authenticated clinician at the pump")
        self._halt_motor()
        self.state = InfusionState.IDLE
        self.program = None
        self._lease = None
        self._pending_edit = None
        self._start_pending_until = None
        self.paused_since = None
        return Outcome(True, "stopped")

    def new_patient(self, principal: Principal | None, now: float, origin: Origin = Origin.LOCAL_KEYPAD) -> Outcome:
        """Forget the dose history. Only when idle, so a window can never be reset under a running drug."""
        self._clock(now)
        if not is_local_clinician(principal, origin):
            return Outcome(False, "a new patient needs an authenticated clinician at the pump")
        if self.state is not InfusionState.IDLE:
            return Outcome(False, "stop the infusion before starting a new patient")
        self.ledger = DeliveryLedger()
        self.pca = PcaTracker()
        self.rates = RateHistory()
        return Outcome(True, "dose history cleared for a new patient")

    # --------------------------------------------------------------------------------------- alarms

    def on_alarm(self, action: AlarmAction, now: float) -> None:
        """The safety monitor reports an alarm action; a stop stops delivery and enters ALARM."""
        now = self._clock(now)
        if action >= AlarmAction.STOP and self.state in (
            InfusionState.RUNNING,
            InfusionState.PAUSED,
            InfusionState.COMPLETE,
        ):
            self._halt_motor()
            self.state = InfusionState.ALARM
            self._start_pending_until = None
            self.paused_since = None

    def clear_alarm(self, principal: Principal | None, now: float, origin: Origin = Origin.LOCAL_KEYPAD) -> Outcome:
        """After the monitor cleared its alarms, go to PAUSED: a restart needs the two-step start."""
        now = self._clock(now)
        if not is_local_clinician(principal, origin):
            return Outcome(False, "clearing an alarm needs an authenticated clinician at the pump")
        if self.state is not InfusionState.ALARM:
            return Outcome(False, "no alarm to clear")
        self.state = InfusionState.PAUSED
        self.paused_since = now
        return Outcome(True, "alarm cleared; infusion paused")

    # ------------------------------------------------------------------------------------------ PCA

    def request_bolus(self, source: BolusSource, now: float, hold_off_until: float | None = None,
                      reservoir_ml: float | None = None) -> BolusDecision:
        """A patient demand. Checked here, before the motor moves; the bolus starts at the next tick.
        ``reservoir_ml`` is the safety monitor's last reading (boluses are inhibited when nearly empty)."""
        now = self._clock(now)
        self.pca.demands += 1
        denial = self._bolus_denial(source, now, hold_off_until, reservoir_ml)
        if denial is not None:
            self.pca.denied += 1
            return BolusDecision(False, denial)
        self._bolus_requested = True
        return BolusDecision(True)

    def _bolus_denial(self, source: object, now: float, hold_off_until: float | None,
                      reservoir_ml: float | None = None) -> BolusDenial | None:
        if source is not BolusSource.PCA_BUTTON:
            return BolusDenial.NOT_PATIENT_BUTTON
        if self.program is None or self.program.pca is None:
            return BolusDenial.NOT_PCA
        if self.state is not InfusionState.RUNNING:
            return BolusDenial.NOT_RUNNING
        if self._bolus_requested:
            return BolusDenial.IN_PROGRESS
        return self.pca.check(self.program.pca, self.ledger, self.program, now, hold_off_until,
                              reservoir_ml=reservoir_ml)

    def request_clinician_bolus(self, dose: float, principal: Principal | None, now: float,
                                hold_off_until: float | None = None, reservoir_ml: float | None = None,
                                origin: Origin = Origin.LOCAL_KEYPAD) -> Outcome:
        """A clinician bolus of ``dose`` (the drug's amount unit); it starts at the next tick."""
        now = self._clock(now)
        if not is_local_clinician(principal, origin):
            return Outcome(False, "a clinician bolus needs an authenticated clinician at the pump")
        program = self.program
        if program is None or self.state is not InfusionState.RUNNING:
            return Outcome(False, "a clinician bolus needs a running infusion")
        if self._bolus_requested:
            return Outcome(False, str(BolusDenial.IN_PROGRESS))
        why = clinician_bolus_denial(program, self.ledger, self.pca, dose, now, hold_off_until, reservoir_ml)
        if why is not None:
            return Outcome(False, f"clinician bolus refused: {why}")
        self._bolus_requested = True
        self._clinician_ml = clinician_bolus_ml(program, dose)
        return Outcome(True, f"clinician bolus of {dose:g} {program.amount_unit} started")

    def paused_too_long(self, now: float) -> bool:
        """Paused (by a clinician, or after an alarm was cleared) for ``paused_too_long_s`` or more."""
        return (self.state is InfusionState.PAUSED and self.paused_since is not None
                and now - self.paused_since >= self.config.paused_too_long_s)

    @property
    def bolus_exceeded(self) -> bool:
        """The prescription's patient-bolus count is used up: the pump shows "Bolus Exceeded"."""
        program = self.program
        return program is not None and program.pca is not None and self.pca.count_exceeded(program.pca)

    # ----------------------------------------------------------------------------------------- tick

    def tick(self, now: float) -> RateCommand:
        """The wanted rate for [now, now + period_s). Call once per control period."""
        now = self._clock(now)
        period = self.config.period_s
        rate, bolus, at_limit = 0.0, False, False
        program = self.program
        if self.state is InfusionState.RUNNING and program is not None:
            remaining = program.vtbi_ml - self.delivered_ml
            if remaining <= _VOLUME_EPS_ML:
                self.state = InfusionState.COMPLETE
                self.pca.end_bolus()
            else:
                if self._bolus_requested and program.pca is not None and self._clinician_ml > 0:
                    self._bolus_requested = False
                    if self.pca.active is None:
                        self.pca.start_clinician(now, self._clinician_ml)  # the dose windows still cap it below
                    self._clinician_ml = 0.0
                elif self._bolus_requested and program.pca is not None:
                    self._bolus_requested = False
                    # Re-checked at the moment the motor would move: the state may have changed.
                    if self.pca.check(program.pca, self.ledger, program, now) is None:
                        self.pca.start(now, program.pca)
                plan = plan_period(program, self.ledger, self.pca, now, period, volume_cap_ml=remaining)
                rate, bolus, at_limit = plan.rate_ml_h, plan.bolus, plan.at_limit
        if self.state is InfusionState.COMPLETE and program is not None:
            # Keep the vein open, still within the dose windows.
            room = window_headroom_ml(program, self.ledger, now) * SECONDS_PER_HOUR / period
            rate = min(kvo_rate_ml_h(program), room)
        self._lease = _Lease(now, now + period, rate, bolus) if program is not None else None
        self._seq += 1
        return RateCommand(self._seq, now, rate, bolus, self.state, at_limit)


def _refused(field_name: str, message: str) -> ProgramDecision:
    return ProgramDecision(Verdict.REJECTED, None, (Issue(field_name, Severity.INVALID, message),))
