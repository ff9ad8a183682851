"""The FHIR R4 specification's own MedicationRequest examples, as the pump's FHIR intake sees them.

Each fixture is our own minimal reproduction of one example's structure (the fields the pump reads, with
the example's values), named by the example's id; narrative, dispense, substitution and other fields the
pump does not read are left out. For each, the pump accepts it or refuses it with one precise reason (the
first check that fails, naming the field and what it needs), never a generic "invalid". The examples are
prescriptions written for a pharmacy (tablets, completed orders, RxNorm/SNOMED drug codes), so none is an
order this pump can run as written; the ``as active`` rows change only the status, to show the next reason
a hospital integrator would meet.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from septum_pump.hospital import fhir_orders
from septum_pump.hospital.validate import OrderRejected

from .test_intake import fhir_answer

UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = fhir_orders.RXNORM_SYSTEM
NDC = "http://hl7.org/fhir/sid/ndc"
TAB = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"


def _qty(value: float, unit: str, system: str = UCUM, code: str | None = None) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value, "unit": unit, "system": system}
    if code is not None:
        q["code"] = code
    return q


def _request(ex_id: str, status: str, med: dict[str, Any], dose_and_rate: dict[str, Any],
             supporting: list[str] | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": ex_id, "contained": [med],
        "identifier": [{"use": "official", "system": "http://www.bmc.nl/portal/prescriptions", "value": "12345689"}],
        "status": status, "intent": "order", "medicationReference": {"reference": f"#{med['id']}"},
        "subject": {"reference": "Patient/pat1"},
        "dosageInstruction": [{"sequence": 1, "doseAndRate": [dose_and_rate]}],
    }
    if supporting:
        r["supportingInformation"] = [{"reference": ref} for ref in supporting]
    return r


def _oxycodone() -> dict[str, Any]:  # med0310: coded in SNOMED CT only, no strength
    return {"resourceType": "Medication", "id": "med0310",
            "code": {"coding": [{"system": SNOMED, "code": "430127000"}]}}


def _tablets() -> dict[str, Any]:  # one to two tablets (a doseRange, no rate)
    return {"doseRange": {"low": _qty(1, "TAB", TAB, "TAB"), "high": _qty(2, "TAB", TAB, "TAB")}}


def _dopamine(med_id: str) -> dict[str, Any]:  # dopamine 400 mg in 500 mL D5W: two ingredients, no Medication.code
    return {"resourceType": "Medication", "id": med_id, "ingredient": [
        {"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "1114879"}]},
         "strength": {"numerator": _qty(400, "mg", code="mg"), "denominator": _qty(500, "mL", code="mL")}},
        {"itemCodeableConcept": {"coding": [{"system": NDC, "code": "0264751010"}]},
         "strength": {"numerator": _qty(5, "g", code="g"), "denominator": _qty(100, "mL", code="mL")}},
    ]}


def medrx0301(status: str = "completed") -> dict[str, Any]:
    """Oxycodone as needed (PRN), completed."""
    return _request("medrx0301", status, _oxycodone(), _tablets(), ["Procedure/biopsy"])


def medrx0333(status: str = "active") -> dict[str, Any]:
    """Oxycodone in the morning, active inpatient order."""
    return _request("medrx0333", status, _oxycodone(), _tablets(), ["Procedure/biopsy"])


def medrx0336(status: str = "completed") -> dict[str, Any]:
    """Intravenous dopamine, weight based: rate 4 ug/kg/min (a unit, no UCUM code), weight Observation/example."""
    return _request("medrx0336", status, _dopamine("med0336"), {"rateQuantity": _qty(4, "ug/kg/min")},
                    ["Observation/example"])


def medrx0337(status: str = "completed") -> dict[str, Any]:
    """Intravenous admixture dopamine: rate 200 ug/min (a unit, no UCUM code)."""
    return _request("medrx0337", status, _dopamine("med0337"), {"rateQuantity": _qty(200, "ug/min")})


def medrx0338(status: str = "completed") -> dict[str, Any]:
    """Intravenous admixture dopamine: dose 400 mg and rate 7.5 ml/h (a unit, no UCUM code)."""
    return _request("medrx0338", status, _dopamine("med0338"),
                    {"doseQuantity": _qty(400, "mg", code="mg"), "rateQuantity": _qty(7.5, "ml/h")},
                    ["Observation/example"])


def _with_drug_code(r: dict[str, Any]) -> dict[str, Any]:
    """The dopamine example with one more edit: the Medication coded (RxNorm, as its ingredient is)."""
    r["contained"][0]["code"] = {"coding": [{"system": RXNORM, "code": "1114879"}]}
    return r


def _library_coded(r: dict[str, Any]) -> dict[str, Any]:
    """... and coded in the drug library's own system (the pump's drug names)."""
    r["contained"][0]["code"] = {"coding": [{"system": fhir_orders.DRUG_SYSTEM, "code": "dopamine"}]}
    return r


def _one_ingredient(r: dict[str, Any]) -> dict[str, Any]:
    """... and the dopamine alone as the ingredient (the D5W diluent left out)."""
    r = _library_coded(r)
    del r["contained"][0]["ingredient"][1]
    return r


EXAMPLES: list[tuple[str, Any, str, str]] = [
    # (row, fixture, FHIR issue code, the reason the pump gives)
    ("medrx0301", medrx0301, "value", "status must be 'active', not 'completed'"),
    ("medrx0301 as active", lambda: medrx0301("active"), "code-invalid",
     "Medication coding system 'http://snomed.info/sct' is not known to this pump"),
    ("medrx0333", medrx0333, "code-invalid",
     "Medication coding system 'http://snomed.info/sct' is not known to this pump"),
    ("medrx0336", medrx0336, "value", "status must be 'active', not 'completed'"),
    ("medrx0336 as active", lambda: medrx0336("active"), "required",
     "the Medication's code.coding (the drug) is required (its ingredients are coded, 2 codings"),
    ("medrx0336 as active, drug coded", lambda: _with_drug_code(medrx0336("active")), "code-invalid",
     "RxNorm code(s) 1114879 cannot be matched"),
    ("medrx0336 as active, in the library's codes", lambda: _library_coded(medrx0336("active")), "required",
     "the Medication needs exactly one ingredient with a strength"),
    ("medrx0336 as active, in the library's codes, one ingredient", lambda: _one_ingredient(medrx0336("active")),
     "required", "doseAndRate.rateQuantity has the unit 'ug/kg/min' as text but no code"),
    ("medrx0337", medrx0337, "value", "status must be 'active', not 'completed'"),
    ("medrx0337 as active, in the library's codes, one ingredient", lambda: _one_ingredient(medrx0337("active")),
     "required", "doseAndRate.rateQuantity has the unit 'ug/min' as text but no code"),
    ("medrx0338", medrx0338, "value", "status must be 'active', not 'completed'"),
]


def _verdict(resource: dict[str, Any]) -> OrderRejected | dict[str, Any]:
    try:
        return fhir_orders.order_fields(json.dumps(resource).encode(), {})
    except OrderRejected as exc:
        return exc


@pytest.mark.parametrize(("row", "fixture", "code", "reason"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_spec_example_gets_one_precise_reason(row: str, fixture: Any, code: str, reason: str) -> None:
    got = _verdict(fixture())
    assert isinstance(got, OrderRejected), f"{row} was accepted"
    assert got.reason.startswith(reason), got.reason
    assert got.code == code and got.code != "invalid"


@pytest.mark.parametrize(("row", "fixture", "code", "reason"), EXAMPLES[:3], ids=[e[0] for e in EXAMPLES[:3]])
def test_spec_example_answer_carries_the_reason(pki, order_type, row: str, fixture: Any, code: str,
                                                reason: str) -> None:
    # what the hospital receives: a 422 OperationOutcome whose text is that reason, and nothing forwarded
    status, text, forwarded = fhir_answer(pki, order_type, json.dumps(fixture()).encode(), {})
    assert (status, forwarded) == (422, []) and text.startswith(reason)
