"""Per-patient PCA prescription (demand dose, lockout, 1 h / 4 h limits, counts) from the message fields
(therapy_io.prescribed_pca), checked against the drug library's bounds with the reason when refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from septum_pump.therapy.approvals import Prescription
from septum_pump.therapy.errors import TherapyError
from septum_pump.therapy.program import Verdict, validate_program
from septum_pump.therapy_io import PCA_FIELDS, pca_fields, program_request, standard_pca

from .conftest import NURSE

# demand 1.5 mg, lockout 8 min, 5/h, 6 mg/1 h, 20 mg/4 h, 20 boluses in all (within adult-med-surg's bounds)
GOOD = (1.5, 8.0, 5.0, 6.0, 20.0, 20.0)


def request(library, pca, rate=0.5):
    return program_request(library, drug="morphine-pca", care_area="adult-med-surg", concentration=1.0,
                           dose_rate=rate, vtbi_ml=50, weight_kg=0, principal=NURSE, pca=pca)


def test_a_prescription_within_the_library_bounds_is_what_runs(library):
    decision = validate_program(library, request(library, GOOD))
    assert decision.verdict is Verdict.ACCEPTED and decision.program is not None
    pca = decision.program.pca
    assert pca is not None
    assert (pca.demand_dose, pca.lockout_s, pca.max_boluses_per_hour, pca.limit_1h, pca.limit_4h,
            pca.boluses_per_program) == (1.5, 480.0, 5, 6.0, 20.0, 20)


def test_no_prescription_means_the_library_standard(library):
    assert request(library, (0.0,) * 6).pca == standard_pca(library, "morphine-pca", "adult-med-surg")


@pytest.mark.parametrize("index, value, field, words", [
    (0, 3.5, "pca.demand_dose", "above the hard maximum of 3 mg"),
    (1, 4.0, "pca.lockout_min", "below the hard minimum of 5 min"),
    (2, 11.0, "pca.max_boluses_per_hour", "above the hard maximum of 10"),
    (3, 13.0, "pca.limit_1h", "above the hard maximum of 12 mg"),
    (4, 41.0, "pca.limit_4h", "above the hard maximum of 40 mg"),
    (5, 49.0, "pca.boluses_per_program", "above the hard maximum of 48"),
])
def test_outside_the_hard_bounds_is_refused_with_the_reason(library, index, value, field, words):
    fields = list(GOOD)
    fields[index] = value
    decision = validate_program(library, request(library, tuple(fields)))
    assert decision.verdict is Verdict.REJECTED
    assert any(i.field == field and words in i.message for i in decision.issues), decision.summary()


def test_outside_a_soft_bound_needs_confirmation(library):
    decision = validate_program(library, request(library, (2.5, 8.0, 5.0, 6.0, 20.0, 20.0)))
    assert decision.verdict is Verdict.NEEDS_CONFIRMATION
    assert [i.field for i in decision.issues] == ["pca.demand_dose"]


@pytest.mark.parametrize("fields, words", [
    ((1.5, 0.0, 5.0, 6.0, 20.0, 0.0), "incomplete"),
    ((1.5, 8.0, 4.5, 6.0, 20.0, 0.0), "whole numbers"),
])
def test_a_partial_or_malformed_prescription_is_refused(library, fields, words):
    with pytest.raises(TherapyError, match=words):
        request(library, fields)


def test_pca_fields_on_a_drug_without_pca_are_refused(library):
    with pytest.raises(TherapyError, match="not set up for PCA"):
        program_request(library, drug="heparin", care_area="adult-med-surg", concentration=100.0,
                        dose_rate=1000, vtbi_ml=250, weight_kg=0, principal=NURSE, pca=GOOD)


def test_a_soft_limit_approval_binds_the_pca_prescription_too():
    msg = SimpleNamespace(**dict(zip(PCA_FIELDS, GOOD, strict=True)))
    approved = Prescription("morphine-pca", 1.0, 0.5, 50.0, 0.0, pca_fields(msg))
    assert approved.matches(Prescription("morphine-pca", 1.0, 0.5, 50.0, 0.0, GOOD))
    assert not approved.matches(Prescription("morphine-pca", 1.0, 0.5, 50.0, 0.0, (3.0, *GOOD[1:])))
    assert pca_fields(SimpleNamespace()) == (0.0,) * 6  # a message without the fields carries none
