"""Patient-controlled analgesia: who may ask, when a demand is granted, and how each period is planned.

Rules (PUMP.md, "PCA"):
  * only the physical PCA button makes a patient bolus (never the keypad, never the network);
  * a demand is denied *before the motor moves* if it falls in the lockout interval (measured from the
    start of the previous bolus), if the hourly bolus count is used up, or if one more demand dose would
    exceed the 1-hour or 4-hour limit given what was already delivered in those sliding windows (basal,
    KVO and boluses, at their delivery times);
  * while a bolus runs the motor runs at the library's bolus rate instead of the basal rate, and the
    bolus stops early if a window limit is reached (what was delivered is what counts);
  * at a limit the pump drops to KVO (never above the basal rate, and never beyond the window either).

``PcaTracker`` holds the bolus history; ``plan_period`` turns a wanted delivery into the rate for the next
control period. The controller and the safety monitor each use their own instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from .ledger import FOUR_HOURS_S, ONE_HOUR_S
from .program import PcaSettings, Program
from .units import SECONDS_PER_HOUR

_VOLUME_EPS_ML = 1e-9


class DoseHistory(Protocol):
    """What the PCA rules read of a dose history: the controller passes its ``ledger.DeliveryLedger``, the
    safety monitor its own ``monitor_ledger.MonitorLedger`` (no accounting code in common)."""

    def amount_in_window(self, drug_id: str, now: float, window_s: float) -> float: ...


class BolusSource(StrEnum):
    PCA_BUTTON = "pca-button"
    KEYPAD = "keypad"
    NETWORK = "network"


class BolusDenial(StrEnum):
    NOT_PCA = "no PCA program"
    NOT_RUNNING = "the infusion is not running"
    NOT_PATIENT_BUTTON = "only the patient's PCA button can request a patient bolus"
    IN_PROGRESS = "a bolus is already being delivered"
    LOCKOUT = "lockout interval not over"
    MAX_PER_HOUR = "maximum number of boluses in the last hour reached"
    LIMIT_1H = "the demand dose would exceed the 1-hour limit"
    LIMIT_4H = "the demand dose would exceed the 4-hour limit"
    HOLD_OFF = "boluses are held after an occlusion was cleared"
    BOLUS_EXCEEDED = "Bolus Exceeded: this prescription's bolus count is used up"
    RESERVOIR_LOW = "the reservoir holds less than 1 mL (BOLUS_MIN_RESERVOIR_ML): boluses are inhibited"


# Below this volume left in the reservoir no bolus starts and a running one ends (the pump keeps the basal
# rate until the reservoir-empty alarm stops it): a bolus must not be what empties the bag into air.
BOLUS_MIN_RESERVOIR_ML = 1.0


@dataclass
class ActiveBolus:
    started: float
    target_ml: float
    delivered_ml: float = 0.0

    @property
    def remaining_ml(self) -> float:
        return max(0.0, self.target_ml - self.delivered_ml)


@dataclass
class PcaTracker:
    bolus_starts: list[float] = field(default_factory=list)
    active: ActiveBolus | None = None
    demands: int = 0  # every press, granted or not: clinicians compare demands with deliveries
    denied: int = 0
    program_boluses: int = 0  # boluses started under the current prescription (reset when one is accepted)

    def new_prescription(self) -> None:
        self.program_boluses = 0

    def count_exceeded(self, settings: PcaSettings) -> bool:
        """The prescription's patient-bolus count is used up ("Bolus Exceeded")."""
        return settings.boluses_per_program is not None and self.program_boluses >= settings.boluses_per_program

    def check(
        self,
        settings: PcaSettings,
        ledger: DoseHistory,
        program: Program,
        now: float,
        hold_off_until: float | None = None,
        lockout_tolerance_s: float = 0.0,
        reservoir_ml: float | None = None,
    ) -> BolusDenial | None:
        """Why a demand at ``now`` must be denied, or None if it may start.

        ``lockout_tolerance_s`` is only for the safety monitor, which timestamps a bolus when the command
        reaches it, up to one period after the controller did (see monitor.py).
        """
        if self.active is not None:
            return BolusDenial.IN_PROGRESS
        if hold_off_until is not None and now < hold_off_until:
            return BolusDenial.HOLD_OFF
        if reservoir_ml is not None and not reservoir_ml >= BOLUS_MIN_RESERVOIR_ML:
            return BolusDenial.RESERVOIR_LOW
        if self.count_exceeded(settings):
            return BolusDenial.BOLUS_EXCEEDED
        if self.bolus_starts and now - self.bolus_starts[-1] < settings.lockout_s - lockout_tolerance_s:
            return BolusDenial.LOCKOUT
        if self.boluses_in_last_hour(now) >= settings.max_boluses_per_hour:
            return BolusDenial.MAX_PER_HOUR
        demand = settings.demand_ml * program.canonical_per_ml
        used_1h = ledger.amount_in_window(program.drug_id, now, ONE_HOUR_S)
        if used_1h + demand > settings.limit_1h_canonical * (1 + 1e-9):
            return BolusDenial.LIMIT_1H
        used_4h = ledger.amount_in_window(program.drug_id, now, FOUR_HOURS_S)
        if used_4h + demand > settings.limit_4h_canonical * (1 + 1e-9):
            return BolusDenial.LIMIT_4H
        return None

    def boluses_in_last_hour(self, now: float) -> int:
        # A bolus started exactly one hour ago has left the window.
        return sum(1 for t in self.bolus_starts if now - t < ONE_HOUR_S)

    def start(self, now: float, settings: PcaSettings) -> None:
        self.bolus_starts.append(now)
        self.program_boluses += 1
        # Older starts can matter neither for the lockout nor for the hourly count.
        self.bolus_starts = [t for t in self.bolus_starts if now - t < ONE_HOUR_S]
        self.active = ActiveBolus(started=now, target_ml=settings.demand_ml)

    def start_clinician(self, now: float, volume_ml: float) -> None:
        """A clinician bolus: delivered like a patient bolus, but it neither counts as a demand nor moves the
        patient's lockout or counts (the dose windows still count every mL of it)."""
        self.active = ActiveBolus(started=now, target_ml=volume_ml)

    def add_delivered(self, volume_ml: float) -> None:
        if self.active is None:
            return
        self.active.delivered_ml += volume_ml
        if self.active.remaining_ml <= _VOLUME_EPS_ML:
            self.active = None

    def end_bolus(self) -> None:
        """Stop the bolus now; what was delivered stays counted in the ledger and the start in the count."""
        self.active = None


def clinician_bolus_denial(program: Program, ledger: DoseHistory, tracker: PcaTracker, dose: float, now: float,
                           hold_off_until: float | None = None, reservoir_ml: float | None = None) -> str | None:
    """Why a clinician bolus of ``dose`` (the drug's amount unit) must be refused now, or None.

    Only for PCA programs (they have a bolus rate and dose windows); the dose must be within the library's
    bolus limits (soft and hard: a bolus has no override), fit in the 1-hour and 4-hour limits, and the
    occlusion hold-off and the reservoir rule apply as for a patient bolus."""
    settings = program.pca
    if settings is None:
        return "a clinician bolus is available for PCA programs only"
    if not (isinstance(dose, int | float) and dose > 0 and dose == dose and dose != float("inf")):
        return "a clinician bolus needs a dose above zero"
    outcome = program.bolus_limits.check(dose)
    if outcome.value != "within":
        bound = program.bolus_limits.bound_for(outcome)
        return f"a bolus of {dose:g} {program.amount_unit} is {outcome.value} of {bound:g} {program.amount_unit}"
    if tracker.active is not None:
        return str(BolusDenial.IN_PROGRESS)
    if hold_off_until is not None and now < hold_off_until:
        return str(BolusDenial.HOLD_OFF)
    if reservoir_ml is not None and not reservoir_ml >= BOLUS_MIN_RESERVOIR_ML:
        return str(BolusDenial.RESERVOIR_LOW)
    amount = dose * program.amount_unit.to_canonical
    if ledger.amount_in_window(program.drug_id, now, ONE_HOUR_S) + amount > settings.limit_1h_canonical * (1 + 1e-9):
        return str(BolusDenial.LIMIT_1H)
    if ledger.amount_in_window(program.drug_id, now, FOUR_HOURS_S) + amount > settings.limit_4h_canonical * (1 + 1e-9):
        return str(BolusDenial.LIMIT_4H)
    return None


def clinician_bolus_ml(program: Program, dose: float) -> float:
    return dose * program.amount_unit.to_canonical / program.canonical_per_ml


def window_headroom_ml(program: Program, ledger: DoseHistory, now: float) -> float:
    """Volume that may still be delivered before either PCA window limit is reached (inf without PCA).

    Conservative over the next period: it ignores delivery that will slide out of the window during the
    period, so the limit holds at every instant, not just at the period boundaries.
    """
    settings = program.pca
    if settings is None:
        return float("inf")
    used_1h = ledger.amount_in_window(program.drug_id, now, ONE_HOUR_S)
    used_4h = ledger.amount_in_window(program.drug_id, now, FOUR_HOURS_S)
    room = min(settings.limit_1h_canonical - used_1h, settings.limit_4h_canonical - used_4h)
    return max(0.0, room / program.canonical_per_ml)


def kvo_rate_ml_h(program: Program) -> float:
    """Keep-vein-open rate: the library's KVO rate, but never above the programmed rate."""
    return min(program.kvo_rate_ml_h, program.rate_ml_h)


@dataclass(frozen=True)
class PeriodPlan:
    rate_ml_h: float
    bolus: bool
    at_limit: bool  # a dose window limited delivery (KVO or a bolus cut short)


def plan_period(
    program: Program,
    ledger: DoseHistory,
    tracker: PcaTracker,
    now: float,
    period_s: float,
    volume_cap_ml: float = float("inf"),
) -> PeriodPlan:
    """Rate for [now, now + period_s): bolus if one is active, else basal, within the dose windows and
    ``volume_cap_ml`` (e.g. what is left of the volume to be infused)."""
    window = window_headroom_ml(program, ledger, now)
    cap = max(0.0, volume_cap_ml)
    hours = period_s / SECONDS_PER_HOUR
    active = tracker.active
    if active is not None and program.pca is not None:
        wanted = min(program.pca.bolus_rate_ml_h * hours, active.remaining_ml)
        if wanted <= window:
            return PeriodPlan(min(wanted, cap) / hours, bolus=True, at_limit=False)
        # A window limit is reached during this bolus: deliver what still fits, and the bolus is over.
        tracker.end_bolus()
        return PeriodPlan(min(window, cap) / hours, bolus=True, at_limit=True)
    basal = program.rate_ml_h * hours
    if basal <= window:
        return PeriodPlan(min(basal, cap) / hours, bolus=False, at_limit=False)
    return PeriodPlan(min(kvo_rate_ml_h(program) * hours, window, cap) / hours, bolus=False, at_limit=True)
