"""The safety monitor run by safety_monitor: the only code that sets the motor rate.

Once per control period ``SafetyMonitor.step`` takes the time, the controller's latest ``RateCommand``
(or None if none arrived) and the sensor reading, and returns a ``MotorDecision``: the rate the motor may
run at, and for how long (a lease of one period: if the monitor does not renew it, the motor stops).

It does not trust the controller:
  * a program is re-checked against the drug library and rebuilt from the values the clinician entered;
    the monitor uses its own rebuilt copy (its own mL/h, ceilings, PCA volumes), never the controller's;
  * it keeps its own account of the volume it actually allowed (monitor_ledger.py: its own grants on its own
    clock, no code shared with the controller's ledger), and its own bolus history, and applies the rate
    ceiling, the PCA lockout, count and 1 h / 4 h windows, the dose hard maximum and the volume to be
    infused to every command, whatever the controller asked for;
  * a command that is malformed, replayed (sequence number not increasing) or missing stops the motor for
    that period; commands missing for ``heartbeat_timeout_s`` latch a fault that only a clinician restart
    clears. So does its own watchdog (a step later than ``watchdog_timeout_s`` after the previous one) and
    a clock that goes backwards;
  * any stop alarm (air, occlusion, empty reservoir, door, over-infusion, bad sensor data) stops the motor
    in the same step that first sees the hazard, i.e. within one control period.

The lockout is checked with a tolerance of one period, because the monitor timestamps a bolus when the
command reaches it, up to one period after the controller (which applies the exact lockout); the dose
windows, which are what protect the patient, are applied exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from septum.errors import InvariantBroken

from .alarms import (
    ALARM_RULES,
    ActiveAlarm,
    AirInLineDetector,
    AlarmAction,
    AlarmConfig,
    AlarmKind,
    AlarmManager,
    SensorReading,
    sensor_conditions,
)
from .drug_library import DrugLibrary
from .errors import ClockError, TherapyError, require_finite, require_positive_fields, require_time
from .excess import ExcessConfig, ExcessDetector
from .monitor_ledger import MonitorLedger
from .pca import (
    BOLUS_MIN_RESERVOIR_ML,
    PcaTracker,
    clinician_bolus_denial,
    clinician_bolus_ml,
    kvo_rate_ml_h,
    window_headroom_ml,
)
from .program import Issue, Origin, Principal, Program, Severity, evaluate, is_local_clinician, titration_issue
from .state_machine import InfusionState, Outcome, RateCommand
from .titration import RateHistory
from .units import SECONDS_PER_HOUR

_VOLUME_EPS_ML = 1e-9


@dataclass(frozen=True)
class MonitorConfig:
    period_s: float = 1.0
    heartbeat_timeout_s: float = 3.0
    watchdog_timeout_s: float = 3.0
    # integrated over-infusion (excess.py): encoder noise floor, and how late the driver may follow a grant
    # (None: one lease, ``period_s``)
    over_infusion_floor_ml: float = 0.01
    over_infusion_jitter_s: float | None = None
    clinician_bolus_s: float = 60.0  # a clinician's bolus authorisation is good for this long (device time)

    def __post_init__(self) -> None:
        require_positive_fields(self, "period_s", "heartbeat_timeout_s", "watchdog_timeout_s",
                                "over_infusion_floor_ml")
        if self.over_infusion_jitter_s is not None:
            require_positive_fields(self, "over_infusion_jitter_s")


@dataclass(frozen=True)
class MotorDecision:
    time: float
    rate_ml_h: float
    duration_s: float  # the motor stops by itself when this lease runs out
    bolus: bool
    action: AlarmAction
    latched_fault: bool
    alarms: tuple[ActiveAlarm, ...]
    reasons: tuple[str, ...] = field(default=())

    @property
    def stopped(self) -> bool:
        return self.rate_ml_h == 0.0


class SafetyMonitor:
    def __init__(
        self,
        library: DrugLibrary,
        config: MonitorConfig | None = None,
        alarm_config: AlarmConfig | None = None,
        now: float = 0.0,
    ) -> None:
        self.library = library
        self.config = config or MonitorConfig()
        self.alarms = AlarmManager(alarm_config or AlarmConfig())
        self._air = AirInLineDetector(self.alarms.config)
        self._now = require_time(now, None)
        self.program: Program | None = None
        self.ledger = MonitorLedger()  # what this monitor granted; never the controller's account
        self.pca = PcaTracker()
        self.rates = RateHistory()  # accepted rates, for the titration limit
        self._motor_baseline: float | None = None
        cfg = self.config
        self._excess = ExcessDetector(ExcessConfig(
            fraction=self.alarms.config.over_infusion_fraction, floor_ml=cfg.over_infusion_floor_ml,
            jitter_s=cfg.over_infusion_jitter_s if cfg.over_infusion_jitter_s is not None else cfg.period_s))
        self._measured_ml = 0.0  # motor counter minus baseline at the last good reading
        self._reservoir_ml = 0.0  # at the last good reading (none yet: no bolus)
        self._clinician_grant: tuple[float, str, float] | None = None  # (dose, clinician, received at)
        self._last_step: float | None = None
        self._last_heartbeat = self._now
        self._last_seq: int | None = None
        self._paused_since: float | None = None
        self._advisories: set[AlarmKind] = set()
        self._held: dict[AlarmKind, float] = {}  # advisories raised from outside the step, shown until then

    # ------------------------------------------------------------------------------------- helpers

    @property
    def latched_fault(self) -> bool:
        return self.alarms.action() is AlarmAction.LATCHED_FAULT

    @property
    def bolus_hold_off_until(self) -> float | None:
        return self.alarms.bolus_hold_off_until

    @property
    def delivered_ml(self) -> float:
        """Volume allowed under the accepted program."""
        return self.ledger.delivered_ml

    @property
    def allowed_total_ml(self) -> float:
        """Everything allowed since the monitor started (the motor counter is compared with it)."""
        return self.ledger.allowed_total_ml

    def _book(self, now: float) -> None:
        """Book the grant in force up to ``now``; a bolus's share goes to the bolus in progress."""
        self._count_bolus(self.ledger.book(now))

    def _book_whole_grant(self) -> None:
        self._count_bolus(self.ledger.book_whole_grant())

    def _count_bolus(self, bolus_ml: float | None) -> None:
        if bolus_ml is not None:
            self.pca.add_delivered(bolus_ml)

    def _latch(self, kind: AlarmKind, now: float) -> None:
        self.alarms.update(now, {kind, *self._present_conditions()})

    def _present_conditions(self) -> set[AlarmKind]:
        return {a.kind for a in self.alarms.active() if a.condition_present}

    # ---------------------------------------------------------------------------------- programming

    def accept_program(self, program: Program, now: float) -> tuple[Issue, ...]:
        """Re-check a program the controller installed; () means the monitor will run it.

        The monitor rebuilds the program from the entered values with the library it holds, so a
        controller that computed a wrong mL/h, ceiling or PCA volume cannot pass it on.
        """
        try:
            self._now = require_time(now, self._now)
        except ClockError as exc:
            return (Issue("time", Severity.INVALID, str(exc)),)
        if not isinstance(program, Program):
            return (Issue("program", Severity.INVALID, "not a program"),)
        if program.library_version != self.library.version:
            return (
                Issue(
                    "library_version",
                    Severity.INVALID,
                    f"program made with drug library {program.library_version}, monitor has {self.library.version}",
                ),
            )
        rebuilt, issues = evaluate(self.library, program.as_request())
        blocking = [i for i in issues if i.severity is not Severity.SOFT]
        soft_fields = {i.field for i in issues if i.severity is Severity.SOFT}
        confirmed = {i.field for i in program.overrides} if program.override_reason else set()
        if soft_fields - confirmed:
            blocking.append(
                Issue(
                    "override",
                    Severity.UNAUTHORISED,
                    "soft-limit excess without a recorded clinician confirmation: "
                    + ", ".join(sorted(soft_fields - confirmed)),
                )
            )
        if blocking or rebuilt is None:
            return tuple(blocking) or (Issue("program", Severity.INVALID, "program cannot be interpreted"),)
        raised = titration_issue(rebuilt, self.rates, self._now)
        if raised is not None:
            return (raised,)
        self.rates.record(self._now, rebuilt.drug_id, rebuilt.rate)
        self._book(self._now)
        self.program = rebuilt
        self.ledger.accept_program(rebuilt.drug_id, rebuilt.canonical_per_ml)
        self.pca.end_bolus()
        self.pca.new_prescription()
        return ()

    def clear_program(self, now: float) -> None:
        """The infusion was stopped: nothing may run until a new program is accepted."""
        try:
            self._now = require_time(now, self._now)
        except ClockError:
            self._latch(AlarmKind.CLOCK_FAULT, self._now)
            return
        self._book(self._now)
        self.program = None
        self.ledger.clear_program()
        self.pca.end_bolus()

    # ---------------------------------------------------------------------------------------- step

    def step(self, now: float, command: RateCommand | None, sensors: SensorReading | None) -> MotorDecision:
        reasons: list[str] = []
        try:
            now = require_time(now, self._now)
        except ClockError as exc:
            self._book_whole_grant()  # the last grant may all have run
            self.pca.end_bolus()
            self._latch(AlarmKind.CLOCK_FAULT, self._now)
            return self._decision(self._now, 0.0, False, [str(exc)])
        self._now = now
        self._book(now)

        conditions: set[AlarmKind] = set(self._advisories)
        self._held = {k: until for k, until in self._held.items() if now < until}
        conditions |= set(self._held)
        if self._last_step is not None and now - self._last_step > self.config.watchdog_timeout_s:
            conditions.add(AlarmKind.WATCHDOG)
            reasons.append("monitor step came too late")
        self._last_step = now

        valid = self._valid_command(command)
        if valid:
            if command is None:
                raise InvariantBroken("internal invariant broken: command is not None")
            self._last_heartbeat = now
            self._last_seq = command.seq
        elif command is not None:
            reasons.append("malformed or replayed command ignored")
        if now - self._last_heartbeat > self.config.heartbeat_timeout_s:
            conditions.add(AlarmKind.CONTROLLER_SILENT)
            reasons.append("controller heartbeat missing")

        conditions |= self._sensor_conditions(now, sensors, reasons)
        if valid and command is not None and command.state is InfusionState.PAUSED:
            self._paused_since = self._paused_since if self._paused_since is not None else now
            if now - self._paused_since >= self.alarms.config.paused_too_long_s:
                conditions.add(AlarmKind.PAUSED_TOO_LONG)
        elif valid:
            self._paused_since = None
        self.alarms.update(now, conditions)
        action = self.alarms.action()

        rate, bolus = 0.0, False
        self._advisories = set()  # recomputed below while delivering; stale ones must not linger
        if action >= AlarmAction.STOP:
            self.pca.end_bolus()
            reasons.append("stopped by alarm")
        elif self.program is None:
            reasons.append("no accepted program")
        elif not valid or command is None:
            reasons.append("no valid command this period")
        elif command.state not in (InfusionState.RUNNING, InfusionState.COMPLETE):
            self.pca.end_bolus()
        else:
            rate, bolus = self._permitted(now, command, reasons)
        self.ledger.grant(now, rate, bolus, self.config.period_s)
        self._excess.granted(now, rate, self.config.period_s)
        return self._decision(now, rate, bolus, reasons)

    def _decision(self, now: float, rate: float, bolus: bool, reasons: list[str]) -> MotorDecision:
        return MotorDecision(
            time=now,
            rate_ml_h=rate,
            duration_s=self.config.period_s,
            bolus=bolus,
            action=self.alarms.action(),
            latched_fault=self.latched_fault,
            alarms=self.alarms.active(),
            reasons=tuple(reasons),
        )

    def _valid_command(self, command: object) -> bool:
        if not isinstance(command, RateCommand):
            return False
        seq, rate = command.seq, command.rate_ml_h
        if isinstance(seq, bool) or not isinstance(seq, int):
            return False
        if self._last_seq is not None and seq <= self._last_seq:
            return False  # replayed or reordered
        if not isinstance(command.bolus, bool) or not isinstance(command.state, InfusionState):
            return False
        try:
            return require_finite(rate, "rate") >= 0
        except TherapyError:
            return False

    def _sensor_conditions(self, now: float, sensors: SensorReading | None, reasons: list[str]) -> set[AlarmKind]:
        self._reservoir_ml = 0.0  # unknown until this reading proves otherwise: no bolus on a guess
        if not isinstance(sensors, SensorReading):
            reasons.append("sensor reading missing")
            return {AlarmKind.SENSOR_FAULT}
        problems = sensors.problems()
        if self._motor_baseline is not None and not problems:
            if sensors.motor_volume_ml - self._motor_baseline < self._measured_ml - _VOLUME_EPS_ML:
                problems.append("motor volume counter went backwards")
        if problems:
            reasons.extend(problems)
            return {AlarmKind.SENSOR_FAULT}
        found = sensor_conditions(self.alarms.config, sensors) | self._air.conditions(now, sensors)
        self._reservoir_ml = sensors.reservoir_ml
        if self._motor_baseline is None:
            self._motor_baseline = sensors.motor_volume_ml - self.allowed_total_ml
        measured = sensors.motor_volume_ml - self._motor_baseline
        self._measured_ml = measured
        expected = self.allowed_total_ml
        cfg = self.alarms.config
        gross = measured - expected > cfg.over_infusion_tolerance_ml + cfg.over_infusion_fraction * expected
        if self._excess.update(measured, expected, self.alarms.is_active(AlarmKind.OVER_INFUSION), gross):
            found.add(AlarmKind.OVER_INFUSION)
        if expected - measured > cfg.under_infusion_tolerance_ml + cfg.under_infusion_fraction * expected:
            found.add(AlarmKind.UNDER_INFUSION)
        return found

    def _permitted(self, now: float, command: RateCommand, reasons: list[str]) -> tuple[float, bool]:
        program = self.program
        if program is None:
            raise InvariantBroken("internal invariant broken: program is not None")
        hours = self.config.period_s / SECONDS_PER_HOUR
        settings = program.pca
        grant = self._clinician_grant
        if grant is not None and not grant[2] <= now <= grant[2] + self.config.clinician_bolus_s:
            grant = self._clinician_grant = None  # a clinician bolus is given now or not at all
        if command.bolus and settings is not None and self.pca.active is None and grant is not None:
            # the bolus the controller asks for is the one a clinician authorised through auth
            self._clinician_grant = None
            why = clinician_bolus_denial(program, self.ledger, self.pca, grant[0], now,
                                         self.alarms.bolus_hold_off_until, self._reservoir_ml)
            if why is None:
                self.pca.start_clinician(now, clinician_bolus_ml(program, grant[0]))
            else:
                reasons.append(f"clinician bolus refused by monitor: {why}")
        elif command.bolus and settings is not None and self.pca.active is None:
            denial = self.pca.check(
                settings,
                self.ledger,
                program,
                now,
                self.alarms.bolus_hold_off_until,
                lockout_tolerance_s=self.config.period_s,
                reservoir_ml=self._reservoir_ml,
            )
            if denial is None:
                self.pca.start(now, settings)
            else:
                reasons.append(f"bolus refused by monitor: {denial}")
        elif not command.bolus and self.pca.active is not None:
            self.pca.end_bolus()  # the controller ended it; what was delivered stays counted
        if self.pca.active is not None and not self._reservoir_ml >= BOLUS_MIN_RESERVOIR_ML:
            self.pca.end_bolus()  # nearly empty: a bolus must not be what runs the bag dry
            reasons.append("bolus ended: reservoir nearly empty")
        if settings is not None and self.pca.count_exceeded(settings):
            self._advisories.add(AlarmKind.BOLUS_EXCEEDED)

        bolus = self.pca.active is not None and settings is not None
        if bolus and settings is not None and self.pca.active is not None:
            ceiling = min(settings.bolus_rate_ml_h * hours, self.pca.active.remaining_ml)
        elif self.delivered_ml >= program.vtbi_ml - _VOLUME_EPS_ML:
            ceiling = kvo_rate_ml_h(program) * hours
        else:
            ceiling = program.rate_ml_h * hours
        limits = {
            "the programmed rate": ceiling,
            "the pump's maximum rate": program.max_rate_ml_h * hours,
            "a PCA dose window": window_headroom_ml(program, self.ledger, now),
        }
        if program.dose_hard_max_ml is not None:
            limits["the dose hard limit"] = max(0.0, program.dose_hard_max_ml - self.delivered_ml)
        if self.delivered_ml < program.vtbi_ml - _VOLUME_EPS_ML:
            limits["the volume to be infused"] = program.vtbi_ml - self.delivered_ml
        requested = command.rate_ml_h * hours
        volume = min(requested, *limits.values())
        if volume < requested - _VOLUME_EPS_ML:
            binding = min(limits, key=lambda k: limits[k])
            reasons.append(f"command limited by {binding}")
        window_bound = limits["a PCA dose window"] < ceiling - _VOLUME_EPS_ML
        if window_bound:
            self._advisories.add(AlarmKind.DOSE_LIMIT)
            if bolus:
                self.pca.end_bolus()  # a bolus stops when a limit is reached
        if self.delivered_ml >= program.vtbi_ml - _VOLUME_EPS_ML:
            self._advisories.add(AlarmKind.INFUSION_COMPLETE)
        return max(0.0, volume) / hours, bolus

    # ----------------------------------------------------------------------------- device failures

    def device_fault(self, kind: AlarmKind, now: float, reason: str) -> MotorDecision:
        """A motor write or sensor read failed: latch ``kind`` (a latched fault) and stop.

        The grant in force is booked up to now and then withdrawn: from here on the monitor permits nothing
        until a clinician restart, whatever the controller asks. What already ran stays counted.
        """
        if ALARM_RULES[kind].action is not AlarmAction.LATCHED_FAULT:
            raise TherapyError(f"{kind.value} is not a device fault")
        try:
            self._now = require_time(now, self._now)
        except ClockError:
            kind = AlarmKind.CLOCK_FAULT
        self._book(self._now)
        self.ledger.withdraw()
        self.pca.end_bolus()
        self._latch(kind, self._now)
        return self._decision(self._now, 0.0, False, [reason])

    def authorise_clinician_bolus(self, principal: Principal | None, dose: float, now: float,
                                  origin: Origin = Origin.LOCAL_KEYPAD) -> Outcome:
        """A clinician's bolus of ``dose`` (amount unit), as auth forwarded it: the next bolus the controller
        asks for within ``clinician_bolus_s`` is this one (checked again when it starts)."""
        if not is_local_clinician(principal, origin):
            return Outcome(False, "a clinician bolus needs an authenticated clinician at the pump")
        try:
            now = require_time(now, self._now)
        except ClockError as exc:
            return Outcome(False, str(exc))
        program = self.program
        if program is None:
            return Outcome(False, "no accepted program")
        why = clinician_bolus_denial(program, self.ledger, self.pca, dose, now, self.alarms.bolus_hold_off_until,
                                     self._reservoir_ml)
        if why is not None:
            return Outcome(False, why)
        self._clinician_grant = (float(dose), principal.id if isinstance(principal, Principal) else "", now)
        return Outcome(True, f"clinician bolus of {dose:g} {program.amount_unit} authorised")

    def hold_advisory(self, kind: AlarmKind, now: float, hold_s: float) -> None:
        """Show advisory ``kind`` from the next step for ``hold_s`` (e.g. records that were lost)."""
        if ALARM_RULES[kind].action is not AlarmAction.ADVISORY:
            raise TherapyError(f"{kind.value} is not an advisory")
        self._held[kind] = max(self._held.get(kind, now), now + hold_s)

    # -------------------------------------------------------------------------------------- people

    def clear_alarms(
        self, principal: Principal | None, now: float, origin: Origin = Origin.LOCAL_KEYPAD
    ) -> list[AlarmKind]:
        """A clinician at the pump clears stop alarms whose condition has gone."""
        if not is_local_clinician(principal, origin):
            return []
        try:
            self._now = require_time(now, self._now)
        except ClockError:
            return []
        cleared = self.alarms.clear(self._now)
        if AlarmKind.AIR_IN_LINE in cleared or AlarmKind.AIR_CUMULATIVE in cleared:
            self._air.reset()
        if AlarmKind.OVER_INFUSION in cleared or AlarmKind.SENSOR_FAULT in cleared:
            self._motor_baseline = None  # re-baseline the motor counter after the fault was dealt with
            self._measured_ml = 0.0
            self._excess.reset()
        return cleared

    def silence(self, now: float) -> None:
        self.alarms.silence(now)

    def clinician_restart(
        self, principal: Principal | None, now: float, origin: Origin = Origin.LOCAL_KEYPAD
    ) -> Outcome:
        """Clear a latched fault. The dose history is kept: a restart never reopens a dose window."""
        if not is_local_clinician(principal, origin):
            return Outcome(False, "restarting after a fault needs an authenticated clinician at the pump")
        try:
            now = require_time(now, self._now)
        except ClockError as exc:
            return Outcome(False, str(exc))
        if not self.latched_fault:
            return Outcome(False, "no latched fault")
        self._now = now
        self._book(now)
        self.ledger.withdraw()
        self.alarms.clear_faults()
        self._last_heartbeat = now
        self._last_step = now
        return Outcome(True, "fault cleared; the infusion must be restarted at the pump")
