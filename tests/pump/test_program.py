import math
from dataclasses import replace

import pytest
from septum_pump.therapy.program import (
    Origin,
    Principal,
    ProgramRequest,
    Severity,
    SoftLimitOverride,
    Verdict,
    validate_program,
)
from septum_pump.therapy.units import AmountUnit, Concentration, DoseUnit

from .conftest import NURSE, dopamine, heparin, morphine_pca

OVERRIDE = SoftLimitOverride(reason="post-operative, approved by Dr. Ng", confirmed_by=NURSE.id)


def test_valid_program_is_accepted_with_derived_values(library):
    decision = validate_program(library, dopamine())
    assert decision.verdict is Verdict.ACCEPTED
    program = decision.program
    assert program is not None
    assert program.rate_ml_h == pytest.approx(15.0)
    assert program.dose_amount == pytest.approx(400_000)  # 250 mL of 1600 mcg/mL, in mcg


def test_pca_program_volumes(library):
    program = validate_program(library, morphine_pca()).program
    assert program is not None and program.pca is not None
    assert program.pca.demand_ml == pytest.approx(1.0)
    assert program.pca.lockout_s == 600
    assert program.kvo_rate_ml_h == 0.5


def test_hard_limit_cannot_be_overridden_by_anyone(library):
    decision = validate_program(library, heparin(rate=2600, override=OVERRIDE))
    assert decision.verdict is Verdict.REJECTED
    assert decision.issues[0].severity is Severity.HARD
    assert "hard maximum of 2500" in decision.summary()


def test_soft_limit_needs_a_local_clinician_confirmation_with_reason(library):
    first = validate_program(library, heparin(rate=2000))
    assert first.verdict is Verdict.NEEDS_CONFIRMATION and first.program is None
    assert [i.severity for i in first.issues] == [Severity.SOFT]
    second = validate_program(library, heparin(rate=2000, override=OVERRIDE))
    assert second.verdict is Verdict.ACCEPTED
    assert second.program is not None and second.program.override_reason == OVERRIDE.reason
    assert second.program.overrides[0].field == "rate"


@pytest.mark.parametrize(
    "changes",
    [
        {"override": SoftLimitOverride(reason="   ", confirmed_by=NURSE.id)},
        {"override": SoftLimitOverride(reason="x" * 201, confirmed_by=NURSE.id)},
        {"override": SoftLimitOverride(reason="ok\x1b[2J", confirmed_by=NURSE.id)},
        {"override": SoftLimitOverride(reason="ok", confirmed_by="someone-else")},
    ],
)
def test_bad_soft_limit_confirmations_are_rejected(library, changes):
    decision = validate_program(library, heparin(rate=2000, **changes))
    assert decision.verdict is Verdict.REJECTED


def test_network_orders_never_program_the_pump(library):
    server = Principal(id="his", role="hospital_server", authenticated=True)
    decision = validate_program(library, heparin(origin=Origin.NETWORK, principal=server))
    assert decision.verdict is Verdict.REJECTED
    assert decision.issues[0].severity is Severity.UNAUTHORISED
    # and a network-borne soft-limit confirmation is refused too, even naming a real clinician
    decision = validate_program(library, heparin(rate=2000, origin=Origin.NETWORK, override=OVERRIDE))
    assert decision.verdict is Verdict.REJECTED


@pytest.mark.parametrize(
    "principal",
    [
        None,
        Principal(id="nurse-7", role="clinician", authenticated=False),
        Principal(id="pt", role="patient", authenticated=True),
    ],
)
def test_programming_needs_an_authenticated_clinician(library, principal):
    assert validate_program(library, heparin(principal=principal)).verdict is Verdict.REJECTED


def test_concentration_not_in_library_is_rejected(library):
    decision = validate_program(library, heparin(concentration=Concentration(5000, AmountUnit.UNITS, 100)))
    assert decision.verdict is Verdict.REJECTED
    assert "does not match the drug library" in decision.summary()
    same_written_differently = Concentration(100, AmountUnit.UNITS, 1)
    assert validate_program(library, heparin(concentration=same_written_differently)).accepted


def test_wrong_dose_unit_is_rejected(library):
    assert not validate_program(library, heparin(dose_unit=DoseUnit.ML_H, rate=10)).accepted


def test_weight_based_drug_needs_a_plausible_weight(library):
    assert "weight is required" in validate_program(library, dopamine(weight_kg=None)).summary()
    assert validate_program(library, dopamine(weight_kg=800)).verdict is Verdict.REJECTED
    assert validate_program(library, dopamine(weight_kg=34)).verdict is Verdict.REJECTED  # drug's hard_min 35
    assert validate_program(library, dopamine(weight_kg=36)).verdict is Verdict.NEEDS_CONFIRMATION


def test_care_area_pump_ceiling_applies(library):
    saline = ProgramRequest(
        drug_id="normal-saline",
        care_area="adult-med-surg",
        concentration=Concentration(1, AmountUnit.ML),
        dose_unit=DoseUnit.ML_H,
        rate=200,
        vtbi_ml=1000,
        principal=NURSE,
    )
    assert validate_program(library, saline).accepted
    assert validate_program(library, replace(saline, rate=501)).verdict is Verdict.REJECTED
    assert validate_program(library, replace(saline, vtbi_ml=3500)).verdict is Verdict.REJECTED  # dose hard max


def test_drug_outside_its_care_areas_is_rejected(library):
    assert "not available" in validate_program(library, dopamine(care_area="adult-med-surg")).summary()


def test_pca_settings_are_checked(library):
    pca = morphine_pca().pca
    assert pca is not None
    cases = {
        "demand above hard max": replace(pca, demand_dose=3.5),
        "lockout below hard min": replace(pca, lockout_min=4),
        "too many boluses": replace(pca, max_boluses_per_hour=11),
        "1 h above hard max": replace(pca, limit_1h=13),
        "1 h above 4 h": replace(pca, limit_1h=8, limit_4h=7),
        "fractional count": replace(pca, max_boluses_per_hour=2.5),
        "not a number": replace(pca, demand_dose=math.nan),
        "zero lockout": replace(pca, lockout_min=0),
    }
    for name, bad in cases.items():
        assert validate_program(library, morphine_pca(pca=bad)).verdict is Verdict.REJECTED, name
    # a basal rate that alone would exceed the 4-hour limit is refused
    tight = replace(pca, limit_1h=2, limit_4h=3)
    assert validate_program(library, morphine_pca(rate=1, pca=tight)).verdict is Verdict.REJECTED
    # PCA on a drug without PCA rules
    assert not validate_program(library, heparin(pca=pca)).accepted


def test_zero_rate_only_for_pca(library):
    assert validate_program(library, morphine_pca(rate=0)).accepted
    assert not validate_program(library, heparin(rate=0)).accepted


@pytest.mark.parametrize(
    "changes",
    [
        {"rate": math.nan},
        {"rate": -1},
        {"rate": "10"},
        {"vtbi_ml": 0},
        {"vtbi_ml": 1e9},
        {"weight_kg": math.inf},
        {"drug_id": None},
        {"drug_id": "x" * 1000},
        {"concentration": "100 units/mL"},
        {"dose_unit": "units/h"},
    ],
)
def test_malformed_requests_are_rejected_not_raised(library, changes):
    decision = validate_program(library, heparin(**changes))
    assert decision.verdict is Verdict.REJECTED
    assert decision.program is None


def test_not_a_request_at_all(library):
    assert validate_program(library, {"drug_id": "heparin"}).verdict is Verdict.REJECTED  # type: ignore[arg-type]
