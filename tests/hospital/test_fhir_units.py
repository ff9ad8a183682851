"""FHIR R4 intake as real orders are written: UCUM by meaning, drug codings by system, weight by reference.

The fixtures are our own MedicationRequests (and Bundles), written to the R4 resource definitions.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hospital_client import orders
from septum_pump.hospital import fhir_orders
from septum_pump.hospital.pki import HospitalPki

from .test_intake import fhir_answer

RXNORM = fhir_orders.RXNORM_SYSTEM
DOPAMINE: dict[str, Any] = dict(order_id="FHIR-2", patient_id="MRN-9", drug="dopamine", concentration=1600.0,
                                concentration_unit="mcg/mL", dose_rate=5.0, dose_unit="mcg/kg/min",
                                vtbi_ml=250.0, care_area="icu", weight_kg=70.0)
HEPARIN: dict[str, Any] = dict(order_id="FHIR-1", patient_id="MRN-9", drug="heparin", concentration=100.0,
                               concentration_unit="units/mL", dose_rate=1000.0, dose_unit="units/h",
                               vtbi_ml=250.0, care_area="icu")


def _signed(pki: HospitalPki, base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    order = orders.make_order(principal="hospital.example", source="fhir", **base)
    body, headers = orders.fhir_request(order, orders.sign(order, pki.hospital_client.key))
    return json.loads(body), headers


def _rate(r: dict[str, Any]) -> dict[str, Any]:
    return r["dosageInstruction"][0]["doseAndRate"][0]


def _med(r: dict[str, Any]) -> dict[str, Any]:
    return r["contained"][0]


def _send(pki: HospitalPki, order_type: Any, resource: dict[str, Any], headers: dict[str, str]
          ) -> tuple[int, str, list[Any]]:
    return fhir_answer(pki, order_type, json.dumps(resource).encode(), headers)


def _bundle(resource: dict[str, Any], weight_ref: str, *, full_url: str = "", obs_id: str = "w1",
            subject: str = "Patient/MRN-9") -> dict[str, Any]:
    """The order with its weight Observation as a separate Bundle entry that the order references."""
    obs = next(c for c in resource["contained"] if c["resourceType"] == "Observation")
    resource["contained"] = [c for c in resource["contained"] if c is not obs]
    obs = {**obs, "id": obs_id, "subject": {"reference": subject}}
    resource["supportingInformation"] = [{"reference": weight_ref}]
    entry: dict[str, Any] = {"resource": obs}
    if full_url:
        entry["fullUrl"] = full_url
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource}, entry]}


@pytest.mark.parametrize(("edit", "concentration"), [
    (lambda r: _rate(r)["rateQuantity"].update(code="U/h"), 100.0),
    (lambda r: _rate(r)["doseQuantity"].update(code="ml"), 100.0),  # UCUM's other litre symbol
    (lambda r: _med(r)["ingredient"][0]["strength"]["denominator"].update(code="ml"), 100.0),
    (lambda r: _med(r)["ingredient"][0]["strength"].update(
        numerator={"value": 25000.0, "system": "http://unitsofmeasure.org", "code": "[iU]"},
        denominator={"value": 250.0, "system": "http://unitsofmeasure.org", "code": "mL"}), 100.0),
    (lambda r: _med(r)["code"]["coding"].append({"system": RXNORM, "code": "5224"}), 100.0),
])
def test_units_compared_by_ucum_meaning(pki, order_type, edit: Any, concentration: float) -> None:
    resource, headers = _signed(pki, HEPARIN)
    edit(resource)
    status, text, fwd = _send(pki, order_type, resource, headers)
    assert status == 201, text
    assert (fwd[0].dose_unit, fwd[0].concentration, fwd[0].vtbi_ml) == ("units/h", concentration, 250.0)


def test_ml_per_hour_is_the_same_unit_as_mL_per_hour(pki, order_type) -> None:
    order = {**HEPARIN, "dose_unit": "mL/h", "dose_rate": 10.0}
    resource, headers = _signed(pki, order)
    _rate(resource)["rateQuantity"]["code"] = "ml/h"
    status, text, fwd = _send(pki, order_type, resource, headers)
    assert status == 201 and fwd[0].dose_unit == "mL/h", text


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda r: _rate(r)["rateQuantity"].update(code="ML/h"), "'ML/h' is not one of"),  # megalitre per hour
    (lambda r: _rate(r)["rateQuantity"].update(code="u/h"), "(UCUM, case-sensitive)"),
    (lambda r: _rate(r)["doseQuantity"].update(code="L"), "doseAndRate.doseQuantity.code 'L'"),
    (lambda r: _med(r)["ingredient"][0]["strength"]["denominator"].update(value=0.0), "volume greater than zero"),
    (lambda r: _med(r)["code"].update(coding=[{"system": RXNORM, "code": "5224"}]),
     "RxNorm code(s) 5224 cannot be matched"),
    (lambda r: _med(r)["code"]["coding"][0].update(system="http://snomed.info/sct"),
     "'http://snomed.info/sct' is not known to this pump"),
    (lambda r: _med(r)["code"]["coding"][0].pop("system"), "None' is not known to this pump"),
    (lambda r: _med(r)["code"]["coding"].append({"system": fhir_orders.DRUG_SYSTEM, "code": "morphine"}),
     "2 different codings"),
])
def test_unit_and_coding_refusals_have_reasons(pki, order_type, edit: Any, reason: str) -> None:
    resource, headers = _signed(pki, HEPARIN)
    edit(resource)
    status, text, fwd = _send(pki, order_type, resource, headers)
    assert (status, fwd) == (422, []) and reason in text, text


@pytest.mark.parametrize(("ref", "full_url"), [("Observation/w1", ""),
                                               ("urn:uuid:6f1c0e9a-weight", "urn:uuid:6f1c0e9a-weight")])
def test_referenced_weight_is_resolved_from_the_bundle(pki, order_type, ref: str, full_url: str) -> None:
    resource, headers = _signed(pki, DOPAMINE)
    status, text, fwd = _send(pki, order_type, _bundle(resource, ref, full_url=full_url), headers)
    assert status == 201 and fwd[0].weight_kg == 70.0, text


@pytest.mark.parametrize(("make", "status", "reason"), [
    (lambda r: _bundle(r, "Observation/other"), 422, "references 'Observation/other', which is not in the Bundle"),
    (lambda r: (b := _bundle(r, "Patient/MRN-9"), b["entry"].append({"resource": {"resourceType": "Patient",
                                                                                 "id": "MRN-9"}}), b)[2],
     400, "but 'Patient/MRN-9' is a Patient"),
    (lambda r: _bundle(r, "Observation/w1", subject="Patient/OTHER"), 422, "about 'Patient/OTHER', not the order"),
    (lambda r: (b := _bundle(r, "Observation/w1"), b["entry"][1]["resource"].update(status="preliminary"), b)[2],
     422, "status is 'preliminary'"),
    (lambda r: (b := _bundle(r, "Observation/w1"), b["entry"].append({"resource": b["entry"][0]["resource"]}), b)[2],
     400, "exactly one MedicationRequest, not 2"),
    (lambda r: (_bundle(r, "Observation/w1"), r)[1], 422, "which is not contained: send the Observation contained or"),
])
def test_unresolvable_weight_references_are_refused(pki, order_type, make: Any, status: int, reason: str) -> None:
    resource, headers = _signed(pki, DOPAMINE)
    got, text, fwd = _send(pki, order_type, make(resource), headers)
    assert (got, fwd) == (status, []) and reason in text, text
