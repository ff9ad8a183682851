"""Validation of a programming request against the drug library and the requester's authority.

Rules (PUMP.md, "Drug library"):
  * hard limits cannot be overridden by anyone;
  * a soft-limit excess needs an authenticated clinician's confirmation, with a reason, at the pump: a
    request that arrives from the network can never carry such a confirmation (and is never a program by
    itself: remote orders only pre-fill the pump);
  * the most restrictive applicable limit wins (resolved in drug_library.DrugEntry);
  * weight-based drugs need a plausible weight; a concentration that is not in the library is rejected.

``validate_program`` is pure: it returns a decision and never changes anything, so "a rejected change
leaves a running infusion as it was" holds by construction as long as callers only install an ACCEPTED
program (state_machine.Controller does exactly that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from septum.errors import InvariantBroken

from .drug_library import DrugEntry, DrugLibrary
from .errors import TherapyError, require_finite
from .limits import LimitOutcome, Limits, within
from .titration import RateHistory, TitrationRule, titration_excess
from .units import (
    AmountUnit,
    Concentration,
    DoseUnit,
    dose_rate_to_ml_h,
    ml_to_amount,
)

CLINICIAN_ROLE = "clinician"
MAX_VTBI_ML = 9999.0  # the largest volume the pump accepts in one program, whatever the drug
MAX_REASON_LEN = 200
MAX_ID_LEN = 64


class Origin(StrEnum):
    """Where a request physically came from, as established by the partition that received it."""

    LOCAL_KEYPAD = "local-keypad"
    NETWORK = "network"


@dataclass(frozen=True)
class Principal:
    """Who asks, as established by the auth partition (never taken from the request body)."""

    id: str
    role: str
    authenticated: bool


@dataclass(frozen=True)
class SoftLimitOverride:
    """A clinician's confirmation, at the pump, that the soft-limit excesses shown are intended."""

    reason: str
    confirmed_by: str  # principal id of the clinician who confirmed


@dataclass(frozen=True)
class PcaRequest:
    demand_dose: float  # in the drug's amount unit
    lockout_min: float
    max_boluses_per_hour: int
    limit_1h: float  # amount unit, including basal
    limit_4h: float  # amount unit, including basal
    boluses_per_program: int | None = None  # patient boluses this prescription may give in all (None: no count)


@dataclass(frozen=True)
class ProgramRequest:
    drug_id: str
    care_area: str
    concentration: Concentration
    dose_unit: DoseUnit
    rate: float  # continuous (basal) rate in dose_unit; 0 is allowed only for a PCA-only program
    vtbi_ml: float  # volume to be infused
    weight_kg: float | None = None
    pca: PcaRequest | None = None
    origin: Origin = Origin.LOCAL_KEYPAD
    principal: Principal | None = None
    override: SoftLimitOverride | None = None


class Severity(StrEnum):
    INVALID = "invalid"  # malformed, unknown drug, wrong concentration or unit...
    UNAUTHORISED = "unauthorised"
    HARD = "hard-limit"
    SOFT = "soft-limit"


@dataclass(frozen=True)
class Issue:
    field: str
    severity: Severity
    message: str
    value: float | None = None
    limit: float | None = None


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    NEEDS_CONFIRMATION = "needs-confirmation"  # only soft-limit excesses; resubmit with an override
    REJECTED = "rejected"


@dataclass(frozen=True)
class PcaSettings:
    """Accepted PCA settings, with volumes for the program's concentration and amounts in canonical units
    (mg, units or mL) so that dose windows stay correct across programs of different concentrations."""

    demand_dose: float
    demand_ml: float
    lockout_s: float
    max_boluses_per_hour: int
    limit_1h: float
    limit_4h: float
    limit_1h_canonical: float
    limit_4h_canonical: float
    bolus_rate_ml_h: float
    boluses_per_program: int | None = None


@dataclass(frozen=True)
class Program:
    """An accepted program. Rates the motor sees are in mL/h; amounts in the drug's amount unit."""

    drug_id: str
    drug_label: str
    care_area: str
    library_version: int
    concentration: Concentration
    dose_unit: DoseUnit
    amount_unit: AmountUnit
    rate: float
    rate_ml_h: float
    vtbi_ml: float
    dose_amount: float
    weight_kg: float | None
    pca: PcaSettings | None
    pca_request: PcaRequest | None
    kvo_rate_ml_h: float
    max_rate_ml_h: float  # the pump-rate ceiling from the device and care area (boluses included)
    dose_hard_max_ml: float | None  # library hard maximum for the total dose, as a volume
    overrides: tuple[Issue, ...] = ()
    override_reason: str | None = None
    programmed_by: str | None = None
    titration: TitrationRule | None = None  # the library's cap on raising this drug's rate (titration.py)
    bolus_limits: Limits = field(default_factory=Limits)  # limits on any single bolus (amount unit)

    @property
    def canonical_per_ml(self) -> float:
        return self.concentration.canonical_per_ml

    def as_request(self) -> ProgramRequest:
        """The values the clinician entered, for an independent re-check (monitor.py)."""
        return ProgramRequest(
            drug_id=self.drug_id,
            care_area=self.care_area,
            concentration=self.concentration,
            dose_unit=self.dose_unit,
            rate=self.rate,
            vtbi_ml=self.vtbi_ml,
            weight_kg=self.weight_kg,
            pca=self.pca_request,
        )


@dataclass(frozen=True)
class ProgramDecision:
    verdict: Verdict
    program: Program | None
    issues: tuple[Issue, ...] = field(default=())

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPTED

    def summary(self) -> str:
        if not self.issues:
            return self.verdict.value
        return f"{self.verdict.value}: " + "; ".join(f"{i.field}: {i.message}" for i in self.issues)


# ------------------------------------------------------------------------------------------ validation


def validate_program(library: DrugLibrary, request: ProgramRequest) -> ProgramDecision:
    """Decide whether ``request`` may become the pump's program. Never raises for bad input."""
    if not isinstance(request, ProgramRequest):
        return _rejected(Issue("request", Severity.INVALID, "not a programming request"))
    authority = _authority_issue(request)
    if authority is not None:
        return _rejected(authority)
    program, issues = evaluate(library, request)
    if any(i.severity is not Severity.SOFT for i in issues) or program is None:
        return ProgramDecision(Verdict.REJECTED, None, tuple(issues))
    if not issues:
        return ProgramDecision(Verdict.ACCEPTED, program, ())
    if request.override is None:
        return ProgramDecision(Verdict.NEEDS_CONFIRMATION, None, tuple(issues))
    override_problem = _override_issue(request)
    if override_problem is not None:
        return ProgramDecision(Verdict.REJECTED, None, (*issues, override_problem))
    accepted = _with_overrides(program, tuple(issues), request.override.reason.strip())
    return ProgramDecision(Verdict.ACCEPTED, accepted, tuple(issues))


def titration_issue(program: Program, history: RateHistory, now: float) -> Issue | None:
    """The titration limit (titration.py) for ``program`` against a rate history, as a hard issue."""
    if program.titration is None:
        return None
    why = titration_excess(program.titration, history, program.drug_id, program.rate, now)
    return None if why is None else Issue("rate", Severity.HARD, why, program.rate, None)


def _rejected(issue: Issue) -> ProgramDecision:
    return ProgramDecision(Verdict.REJECTED, None, (issue,))


def is_local_clinician(principal: object, origin: object) -> bool:
    """An authenticated clinician acting through the pump's own keypad (never the network)."""
    return (
        origin is Origin.LOCAL_KEYPAD
        and isinstance(principal, Principal)
        and principal.authenticated is True
        and principal.role == CLINICIAN_ROLE
    )


def _is_local_clinician(request: ProgramRequest) -> bool:
    return is_local_clinician(request.principal, request.origin)


def _authority_issue(request: ProgramRequest) -> Issue | None:
    if request.origin is Origin.NETWORK:
        return Issue(
            "origin",
            Severity.UNAUTHORISED,
            "an order from the network only pre-fills the pump; a clinician must confirm it at the pump",
        )
    if not _is_local_clinician(request):
        return Issue("principal", Severity.UNAUTHORISED, "programming needs an authenticated clinician")
    return None


def _override_issue(request: ProgramRequest) -> Issue | None:
    override = request.override
    if not _is_local_clinician(request) or not isinstance(override, SoftLimitOverride):
        return Issue(
            "override",
            Severity.UNAUTHORISED,
            "only an authenticated clinician at the pump may confirm a soft-limit excess",
        )
    if request.principal is None:  # guaranteed by _is_local_clinician
        raise InvariantBroken("internal invariant broken: request.principal is not None")
    if override.confirmed_by != request.principal.id:
        return Issue(
            "override", Severity.UNAUTHORISED, "the confirmation must come from the clinician who is programming"
        )
    reason = override.reason.strip() if isinstance(override.reason, str) else ""
    if not reason or len(reason) > MAX_REASON_LEN or not reason.isprintable():
        return Issue(
            "override.reason",
            Severity.INVALID,
            f"a soft-limit excess needs a reason (printable text, 1-{MAX_REASON_LEN} characters)",
        )
    return None


def _with_overrides(program: Program, issues: tuple[Issue, ...], reason: str) -> Program:
    return Program(**{**program.__dict__, "overrides": issues, "override_reason": reason})


def evaluate(library: DrugLibrary, request: ProgramRequest) -> tuple[Program | None, list[Issue]]:
    """Check the clinical values of ``request`` (not who sent it).

    Returns the would-be program (None if the values cannot even be interpreted) and every issue found.
    Also used by the safety monitor to re-check a program independently of the controller.
    """
    issues: list[Issue] = []
    try:
        return _evaluate(library, request, issues), issues
    except TherapyError as exc:
        issues.append(Issue("request", Severity.INVALID, str(exc)))
        return None, issues


def _check(issues: list[Issue], name: str, value: float, limits: Limits, unit: str) -> None:
    outcome = limits.check(value)
    if outcome is LimitOutcome.WITHIN:
        return
    bound = limits.bound_for(outcome)
    words = {
        LimitOutcome.HARD_LOW: "below the hard minimum",
        LimitOutcome.HARD_HIGH: "above the hard maximum",
        LimitOutcome.SOFT_LOW: "below the soft minimum",
        LimitOutcome.SOFT_HIGH: "above the soft maximum",
    }[outcome]
    severity = Severity.HARD if outcome.is_hard else Severity.SOFT
    issues.append(Issue(name, severity, f"{value:g} {unit} is {words} of {bound:g} {unit}", value, bound))


def _text_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LEN:
        raise TherapyError(f"{what} must be text of 1-{MAX_ID_LEN} characters")
    return value


def _evaluate(library: DrugLibrary, request: ProgramRequest, issues: list[Issue]) -> Program | None:
    drug_id = _text_id(request.drug_id, "drug")
    area_id = _text_id(request.care_area, "care area")
    entry: DrugEntry = library.entry(drug_id, area_id)
    drug = entry.drug
    if not isinstance(request.dose_unit, DoseUnit) or request.dose_unit is not drug.dose_unit:
        raise TherapyError(f"{drug.label} is programmed in {drug.dose_unit}, not {request.dose_unit}")
    if not isinstance(request.concentration, Concentration) or not entry.concentration_allowed(request.concentration):
        allowed = ", ".join(c.describe() for c in drug.concentrations)
        raise TherapyError(f"concentration does not match the drug library for {drug.label} ({allowed})")
    amount_unit = drug.amount_unit
    conc = request.concentration

    weight: float | None = None
    if request.weight_kg is not None:
        weight = require_finite(request.weight_kg, "weight")
        _check(issues, "weight_kg", weight, entry.weight_kg, "kg")
    elif drug.dose_unit.weight_based:
        raise TherapyError(f"{drug.label} is dosed per kg: the patient's weight is required")
    if weight is not None and weight <= 0:
        raise TherapyError("weight must be greater than zero")

    rate = require_finite(request.rate, "rate")
    if rate < 0:
        raise TherapyError("rate must not be negative")
    if rate == 0 and request.pca is None:
        raise TherapyError("a continuous infusion needs a rate above zero")
    _check(issues, "rate", rate, entry.rate, str(drug.dose_unit))
    rate_ml_h = dose_rate_to_ml_h(rate, drug.dose_unit, conc, weight)
    if not within(rate_ml_h, entry.max_rate_ml_h):
        issues.append(
            Issue(
                "rate",
                Severity.HARD,
                f"{rate_ml_h:g} mL/h is above the pump limit of {entry.max_rate_ml_h:g} mL/h in this care area",
                rate_ml_h,
                entry.max_rate_ml_h,
            )
        )

    vtbi = require_finite(request.vtbi_ml, "volume to be infused")
    if vtbi <= 0 or vtbi > MAX_VTBI_ML:
        raise TherapyError(f"volume to be infused must be above 0 and at most {MAX_VTBI_ML:g} mL")
    dose_amount = ml_to_amount(vtbi, amount_unit, conc)
    _check(issues, "dose", dose_amount, entry.dose, str(amount_unit))

    pca = _evaluate_pca(entry, request, rate, conc, issues)
    dose_hard_max_ml = None
    if entry.dose.hard_max is not None:
        dose_hard_max_ml = entry.dose.hard_max * amount_unit.to_canonical / conc.canonical_per_ml
    principal = request.principal.id if isinstance(request.principal, Principal) else None
    return Program(
        drug_id=drug_id,
        drug_label=drug.label,
        care_area=area_id,
        library_version=entry.library_version,
        concentration=conc,
        dose_unit=drug.dose_unit,
        amount_unit=amount_unit,
        rate=rate,
        rate_ml_h=rate_ml_h,
        vtbi_ml=vtbi,
        dose_amount=dose_amount,
        weight_kg=weight,
        pca=pca,
        pca_request=request.pca,
        kvo_rate_ml_h=min(entry.kvo_rate_ml_h, entry.max_rate_ml_h),
        max_rate_ml_h=entry.max_rate_ml_h,
        dose_hard_max_ml=dose_hard_max_ml,
        programmed_by=principal,
        titration=entry.titration,
        bolus_limits=entry.bolus,
    )


def _evaluate_pca(
    entry: DrugEntry, request: ProgramRequest, rate: float, conc: Concentration, issues: list[Issue]
) -> PcaSettings | None:
    if request.pca is None:
        return None
    if entry.pca is None:
        raise TherapyError(f"{entry.drug.label} is not set up for PCA in care area {entry.care_area.id}")
    if not isinstance(request.pca, PcaRequest):
        raise TherapyError("PCA settings are malformed")
    if not entry.drug.dose_unit.plain_hourly:
        # 1 h / 4 h limits are "basal x hours + boluses": that arithmetic needs an amount-per-hour unit.
        raise TherapyError("PCA is only available for drugs dosed per hour without weight")
    rules = entry.pca
    unit = str(entry.drug.amount_unit)
    demand = require_finite(request.pca.demand_dose, "demand dose")
    lockout = require_finite(request.pca.lockout_min, "lockout")
    count = request.pca.max_boluses_per_hour
    if isinstance(count, bool) or not isinstance(count, int):
        raise TherapyError("maximum boluses per hour must be a whole number")
    limit_1h = require_finite(request.pca.limit_1h, "1-hour limit")
    limit_4h = require_finite(request.pca.limit_4h, "4-hour limit")
    if demand <= 0 or lockout <= 0 or count < 1 or limit_1h <= 0 or limit_4h <= 0:
        raise TherapyError("demand dose, lockout, boluses per hour and dose limits must be above zero")
    _check(issues, "pca.demand_dose", demand, rules.demand_dose, unit)
    _check(issues, "pca.lockout_min", lockout, rules.lockout_min, "min")
    _check(issues, "pca.max_boluses_per_hour", float(count), rules.max_boluses_per_hour, "boluses")
    _check(issues, "pca.limit_1h", limit_1h, rules.limit_1h, unit)
    _check(issues, "pca.limit_4h", limit_4h, rules.limit_4h, unit)
    per_program = request.pca.boluses_per_program
    if per_program is not None:
        if isinstance(per_program, bool) or not isinstance(per_program, int) or per_program < 1:
            raise TherapyError("the per-prescription bolus count must be a whole number of at least 1")
        if rules.boluses_per_program is not None:
            _check(issues, "pca.boluses_per_program", float(per_program), rules.boluses_per_program, "boluses")
    # Combinations that make a limit meaningless are hard errors: the basal alone must fit in each
    # window, one demand dose must fit in the 1 h limit, and 1 h cannot allow more than 4 h.
    if not within(demand, limit_1h):
        issues.append(
            Issue("pca.demand_dose", Severity.HARD, "the demand dose exceeds the 1-hour limit", demand, limit_1h)
        )
    if not within(limit_1h, limit_4h):
        issues.append(
            Issue("pca.limit_1h", Severity.HARD, "the 1-hour limit exceeds the 4-hour limit", limit_1h, limit_4h)
        )
    if not within(rate * 1.0, limit_1h) or not within(rate * 4.0, limit_4h):
        issues.append(Issue("rate", Severity.HARD, "the basal rate alone would exceed a PCA dose limit", rate, None))
    to_canonical = entry.drug.amount_unit.to_canonical
    return PcaSettings(
        demand_dose=demand,
        demand_ml=demand * to_canonical / conc.canonical_per_ml,
        lockout_s=lockout * 60.0,
        max_boluses_per_hour=count,
        limit_1h=limit_1h,
        limit_4h=limit_4h,
        limit_1h_canonical=limit_1h * to_canonical,
        limit_4h_canonical=limit_4h * to_canonical,
        bolus_rate_ml_h=rules.bolus_rate_ml_h,
        boluses_per_program=per_program,
    )


__all__ = [
    "CLINICIAN_ROLE",
    "Issue",
    "Origin",
    "PcaRequest",
    "PcaSettings",
    "Principal",
    "Program",
    "ProgramDecision",
    "ProgramRequest",
    "Severity",
    "SoftLimitOverride",
    "Verdict",
    "evaluate",
    "is_local_clinician",
    "titration_issue",
    "validate_program",
]
