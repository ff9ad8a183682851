"""The FHIR R4 specification's own MedicationRequest examples, as the pump's FHIR intake sees them.

Each fixture is our own minimal reproduction of one example's structure (the fields the pump reads, with
the example's values), named by the example's id; narrative, dispense, substitution and other fields the
pump does not read are left out. For each, the pump accepts it or refuses it with one precise reason (the
first check that fails, naming the field and what it needs), never a generic "invalid". The examples are
prescriptions written for a pharmacy (tablets, completed orders, RxNorm/SNOMED drug codes), so none is an
order this pump can run as written; the ``as active`` rows change only the status, to show the next reason
a hospital integrator would meet. All 40 examples the R4 page (medicationrequest-examples.html) lists are
covered: medrx002 (the page's "example2"), medrx0301-medrx0339 (medrx0311 is its "example1").
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


def _coded(med_id: str, system: str, code: str, ingredients: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A contained Medication coded in one system (the examples' own system and code)."""
    med: dict[str, Any] = {"resourceType": "Medication", "id": med_id,
                           "code": {"coding": [{"system": system, "code": code}]}}
    if ingredients:
        med["ingredient"] = ingredients
    return med


def _ingredient(system: str, code: str, num: tuple[float, str] | None = None,
                den: tuple[float, str] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"itemCodeableConcept": {"coding": [{"system": system, "code": code}]}}
    if num and den:
        item["strength"] = {"numerator": _qty(num[0], num[1], code=num[1]),
                            "denominator": _qty(den[0], den[1], code=den[1])}
    return item


def _dose(value: float, unit: str, system: str = UCUM) -> dict[str, Any]:
    return {"doseQuantity": _qty(value, unit, system, unit)}


def _rx(ex_id: str, status: str, dose_and_rate: dict[str, Any], *, med: dict[str, Any] | None = None,
        codeable: tuple[str, str] | None = None, reference: str | None = None,
        identifier: str = "12345689") -> dict[str, Any]:
    """One example's MedicationRequest: its medication as the example gives it (a contained Medication,
    a medicationCodeableConcept, or a reference to a Medication not sent with it)."""
    r: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": ex_id,
        "identifier": [{"use": "official", "system": "http://www.bmc.nl/portal/prescriptions", "value": identifier}],
        "status": status, "intent": "order", "subject": {"reference": "Patient/pat1"},
        "dosageInstruction": [{"sequence": 1, "doseAndRate": [dose_and_rate]}],
    }
    if med is not None:
        r["contained"] = [med]
        r["medicationReference"] = {"reference": f"#{med['id']}"}
    elif codeable is not None:
        r["medicationCodeableConcept"] = {"coding": [{"system": codeable[0], "code": codeable[1]}]}
    else:
        r["medicationReference"] = {"reference": reference}
    return r


TAB1 = _dose(1, "TAB", TAB)
EA1 = _dose(1, "ea")

# One fixture per example of the R4 page medicationrequest-examples.html (its id, then its title, shortened).
SPEC: dict[str, Any] = {
    # medrx002: "Order for a medication that includes the dosage of a prescription in text" (example2);
    # references Medication/med0316, which is not sent with the order
    "medrx002": lambda s="active": _rx("medrx002", s, {}, reference="Medication/med0316", identifier="12345"),
    # medrx0302: "Active order ... Azithromycin" (SNOMED CT coded contained Medication, tablets)
    "medrx0302": lambda s="active": _rx("medrx0302", s, _dose(2, "TAB", TAB), med=_coded("med0320", SNOMED,
                                                                                         "324252006")),
    # medrx0303: "Order for Tapering Dose - Prednisone - active" (SNOMED CT)
    "medrx0303": lambda s="active": _rx("medrx0303", s, _dose(4, "TAB", TAB), med=_coded("med0311", SNOMED,
                                                                                         "373994007")),
    # medrx0304: "Order for Oral Drops - Nystatin Suspension - completed" (SNOMED CT, 10 drops)
    "medrx0304": lambda s="completed": _rx("medrx0304", s, _dose(10, "drop"), med=_coded("med0312", SNOMED,
                                                                                         "324689003")),
    # medrx0305: "Order with Dosage with a Pre-Condition - Alprazolam" (completed; RxNorm)
    "medrx0305": lambda s="completed": _rx("medrx0305", s, TAB1, med=_coded("med0314", RXNORM, "308047")),
    # medrx0306: "Oral Chemotherapy Order - Myleran" (active; NDC coded, 6 mg)
    "medrx0306": lambda s="active": _rx("medrx0306", s, _dose(6, "mg"), med=_coded("med0304", NDC, "76388-713-25")),
    # medrx0307: "Order with as needed (PRN) dosage - Percocet - completed" (NDC)
    "medrx0307": lambda s="completed": _rx("medrx0307", s, TAB1, med=_coded("med0308", NDC, "16590-619-30")),
    # medrx0308: "Order for as needed (PRN) dosage - Vicodin - completed" (medicationCodeableConcept, RxNorm)
    "medrx0308": lambda s="completed": _rx("medrx0308", s, TAB1, codeable=(RXNORM, "856907")),
    # medrx0309: "Oral Chemotherapy Order - Capecitabine - active ... (mg/m2)" (SNOMED CT)
    "medrx0309": lambda s="active": _rx("medrx0309", s, _dose(1000, "mg/m2"), med=_coded("med0321", SNOMED,
                                                                                         "108761006")),
    # medrx0310: "Request for Over the Counter Medication - Tylenol PM" (active; NDC; 1-2 tablets)
    "medrx0310": lambda s="active": _rx("medrx0310", s, _tablets(), med=_coded("med0309", NDC, "50580-506-02")),
    # medrx0311: "Fully populated example ... Chlorthalidone - active" (example1; SNOMED CT)
    "medrx0311": lambda s="active": _rx("medrx0311", s, TAB1, med=_coded("med0316", SNOMED, "317935006")),
    # medrx0312: "Liquid Medication - Phenytoin" (active; medicationCodeableConcept, RxNorm; 100 mg)
    "medrx0312": lambda s="active": _rx("medrx0312", s, _dose(100, "mg"), codeable=(RXNORM, "1313112")),
    # medrx0313: "Request with a single dosage line - Azithromycin - completed" (medicationCodeableConcept)
    "medrx0313": lambda s="completed": _rx("medrx0313", s, _dose(500, "mg"), codeable=(SNOMED, "324252006")),
    # medrx0314: "Request - Levothyroxine - completed" (medicationCodeableConcept, SNOMED CT; 75 mcg)
    "medrx0314": lambda s="completed": _rx("medrx0314", s, _dose(75, "mcg"), codeable=(SNOMED, "376988009")),
    # medrx0315: "Request for an injectable medication - Lorazepam - active" (SNOMED CT; 2 mg/mL strength)
    "medrx0315": lambda s="active": _rx("medrx0315", s, {"doseRange": {"low": _qty(0.05, "mg/kg", code="mg/kg"),
                                                                       "high": _qty(0.1, "mg/kg", code="mg/kg")}},
                                        med=_coded("med0313", SNOMED, "400621001",
                                                   [_ingredient(SNOMED, "387106007", (2, "mg"), (1, "mL"))])),
    # medrx0316: "Request for Intravenous Chemotherapy - Brentuximab Vedotin - completed" (NDC; rateRatio)
    "medrx0316": lambda s="completed": _rx("medrx0316", s, {**_dose(1.8, "mg/kg"), "rateRatio": {
        "numerator": _qty(1.8, "mg/kg", code="mg/kg"), "denominator": _qty(20, "min", code="min")}},
        med=_coded("med0306", NDC, "51144-050-01")),
    # medrx0317: "Request for Intravenous Chemotherapy - Alemtuzumab - completed" (RxNorm)
    "medrx0317": lambda s="completed": _rx("medrx0317", s, _dose(3, "mg"), med=_coded("med0303", RXNORM, "1594660")),
    # medrx0318: "Request for Intravenous Antibiotic - Vancomycin - active" (NDC; 500 mg)
    "medrx0318": lambda s="active": _rx("medrx0318", s, _dose(500, "mg"), med=_coded("med0301", NDC, "0069-2587-10")),
    # medrx0319: "Request for Intravenous Antibiotic with a Dosage Rate - Piperacillin - completed" (NDC;
    # rate 50 with the code 'ml/hr')
    "medrx0319": lambda s="completed": _rx("medrx0319", s, {**_dose(4.5, "g"), "rateQuantity": {
        "value": 50, "system": UCUM, "code": "ml/hr"}}, med=_coded("med0302", NDC, "0206-8862-02")),
    # medrx0320: "Request for Subcutaneous injection - Insulin - Lantus - completed" (codeable, RxNorm)
    "medrx0320": lambda s="completed": _rx("medrx0320", s, _dose(20, "U"), codeable=(RXNORM, "285018")),
    # medrx0321: "Request for Subcutaneous injection ... Insulin - Novolog - active" (NDC; 100 U/mL)
    "medrx0321": lambda s="active": _rx("medrx0321", s, _dose(10, "U"), med=_coded(
        "med0307", NDC, "0169-7501-11", [_ingredient(SNOMED, "325072002", (100, "U"), (1, "mL"))])),
    # medrx0322: "Request for Intravenous Admixture - Potassium Chloride in D5W - completed": no Medication.code,
    # two RxNorm-coded ingredients; rate as a rateRatio 100 mL per 1 h
    "medrx0322": lambda s="completed": _rx("medrx0322", s, {**_dose(20, "mEq"), "rateRatio": {
        "numerator": _qty(100, "mL", code="mL"), "denominator": _qty(1, "h", code="h")}},
        med={"resourceType": "Medication", "id": "med0317", "ingredient": [
            _ingredient(RXNORM, "204520", (2, "mEq"), (1, "mL")),
            _ingredient(RXNORM, "313002", (0.9, "g"), (100, "mL"))]}),
    # medrx0323: "Request for TPN Solution - completed": no Medication.code, three NDC ingredients
    "medrx0323": lambda s="completed": _rx("medrx0323", s, _dose(1000, "mL"), med={
        "resourceType": "Medication", "id": "med0318", "ingredient": [
            _ingredient(NDC, "0338-1134-03"), _ingredient(NDC, "0409-5779-01"), _ingredient(NDC, "0338-0519-02")]}),
    # medrx0324: "Request using Medication Code for Rectal Suppository - Acetaminophen - completed"
    "medrx0324": lambda s="completed": _rx("medrx0324", s, _dose(240, "mg"), codeable=(SNOMED, "322254008")),
    # medrx0325: "Request using Medication Code for Topical Ointment - Nystatin - on hold" (RxNorm)
    "medrx0325": lambda s="on-hold": _rx("medrx0325", s, EA1, codeable=(RXNORM, "884308")),
    # medrx0326: "Request using Medication Code for Inhaler - Proventil - on hold" (RxNorm)
    "medrx0326": lambda s="on-hold": _rx("medrx0326", s, EA1, codeable=(RXNORM, "746763")),
    # medrx0327: "Request using Medication Code for Patch - Fentanyl - active" (codeable, SNOMED CT)
    "medrx0327": lambda s="active": _rx("medrx0327", s, _dose(1, "patch", TAB), codeable=(SNOMED, "333919005")),
    # medrx0328: "Request referencing Medication Resource for Nasal Spray - Nasonex" (active; RxNorm)
    "medrx0328": lambda s="active": _rx("medrx0328", s, EA1, med=_coded("med0315", RXNORM, "358793")),
    # medrx0329: "... Compounded Product - HC 1%, Salicylic Acid 5% in Glaxal Base - on hold" (no code,
    # three SNOMED CT ingredients)
    "medrx0329": lambda s="on-hold": _rx("medrx0329", s, EA1, med={
        "resourceType": "Medication", "id": "med0319", "ingredient": [
            _ingredient(SNOMED, "387253001", (5, "g"), (100, "g")),
            _ingredient(SNOMED, "396458002", (1, "g"), (100, "g")),
            _ingredient(SNOMED, "126066007", (94, "g"), (100, "g"))]}),
    # medrx0330: "Request referencing Medication Resource for Eye Drops - Timoptic - active" (NDC)
    "medrx0330": lambda s="active": _rx("medrx0330", s, _dose(1, "OPDROP", TAB), med=_coded("med0305", NDC,
                                                                                            "2501-813-16")),
    # medrx0331: "Request for a Dosage that needs to be dispensed as different strength tablets - Warfarin -
    # active" (RxNorm; 7 mg)
    "medrx0331": lambda s="active": _rx("medrx0331", s, _dose(7, "mg"), med=_coded("med0350", RXNORM, "114194")),
    # medrx0332: "Request for a medication that is intended to be given as a single, once only dose" (active;
    # SNOMED CT ceftriaxone; 500 mg IM)
    "medrx0332": lambda s="active": _rx("medrx0332", s, _dose(500, "mg"), med=_coded("med03499", SNOMED,
                                                                                     "375860009")),
    "medrx0333": medrx0333,
    # medrx0334: "Request for a medication that is intended to be given on a specific day" (on hold; RxNorm)
    "medrx0334": lambda s="on-hold": _rx("medrx0334", s, EA1, codeable=(RXNORM, "884308")),
    # medrx0335: "Request for a medication that is intended to be given at a specific time" (on hold; RxNorm)
    "medrx0335": lambda s="on-hold": _rx("medrx0335", s, EA1, codeable=(RXNORM, "884308")),
    "medrx0336": medrx0336,
    "medrx0337": medrx0337,
    "medrx0338": medrx0338,
    # medrx0339: "Request for a product that contains multiple dosage forms" (Vagistat kit; active; NDC)
    "medrx0339": lambda s="active": _rx("medrx0339", s, _dose(1, "VAGTAB", TAB), med=_coded("med0322", NDC,
                                                                                            "0067-2091-03")),
    "medrx0301": medrx0301,
}

# every example the R4 page lists (medrx0311 is the page's medicationrequestexample1, medrx002 its example2)
SPEC_IDS = ["medrx002"] + [f"medrx03{n:02d}" for n in range(1, 40)]

SNOMED_REASON = "Medication coding system 'http://snomed.info/sct' is not known to this pump"
NDC_REASON = "Medication coding system 'http://hl7.org/fhir/sid/ndc' is not known to this pump"
CODEABLE_REASON = "medicationCodeableConcept names the drug by a code alone"


def _status(s: str) -> str:
    return f"status must be 'active', not '{s}'"


def _rxnorm(code: str) -> str:
    return f"RxNorm code(s) {code} cannot be matched"


SPEC_ANSWERS: list[tuple[str, str, str]] = [
    # (example id, FHIR issue code, the reason the pump gives) for each example as the specification has it
    ("medrx002", "not-found", "medicationReference references 'Medication/med0316', which is not contained"),
    ("medrx0302", "code-invalid", SNOMED_REASON),
    ("medrx0303", "code-invalid", SNOMED_REASON),
    ("medrx0304", "value", _status("completed")),
    ("medrx0305", "value", _status("completed")),
    ("medrx0306", "code-invalid", NDC_REASON),
    ("medrx0307", "value", _status("completed")),
    ("medrx0308", "value", _status("completed")),
    ("medrx0309", "code-invalid", SNOMED_REASON),
    ("medrx0310", "code-invalid", NDC_REASON),
    ("medrx0311", "code-invalid", SNOMED_REASON),
    ("medrx0312", "not-supported", CODEABLE_REASON),
    ("medrx0313", "value", _status("completed")),
    ("medrx0314", "value", _status("completed")),
    ("medrx0315", "code-invalid", SNOMED_REASON),
    ("medrx0316", "value", _status("completed")),
    ("medrx0317", "value", _status("completed")),
    ("medrx0318", "code-invalid", NDC_REASON),
    ("medrx0319", "value", _status("completed")),
    ("medrx0320", "value", _status("completed")),
    ("medrx0321", "code-invalid", NDC_REASON),
    ("medrx0322", "value", _status("completed")),
    ("medrx0323", "value", _status("completed")),
    ("medrx0324", "value", _status("completed")),
    ("medrx0325", "value", _status("on-hold")),
    ("medrx0326", "value", _status("on-hold")),
    ("medrx0327", "not-supported", CODEABLE_REASON),
    ("medrx0328", "code-invalid", _rxnorm("358793")),
    ("medrx0329", "value", _status("on-hold")),
    ("medrx0330", "code-invalid", NDC_REASON),
    ("medrx0331", "code-invalid", _rxnorm("114194")),
    ("medrx0332", "code-invalid", SNOMED_REASON),
    ("medrx0333", "code-invalid", SNOMED_REASON),
    ("medrx0334", "value", _status("on-hold")),
    ("medrx0335", "value", _status("on-hold")),
    ("medrx0336", "value", _status("completed")),
    ("medrx0337", "value", _status("completed")),
    ("medrx0338", "value", _status("completed")),
    ("medrx0339", "code-invalid", NDC_REASON),
    ("medrx0301", "value", _status("completed")),
]

EXAMPLES: list[tuple[str, Any, str, str]] = [(i, SPEC[i], code, reason) for i, code, reason in SPEC_ANSWERS] + [
    # the next reason after the status, for the non-active examples whose next check says something new
    ("medrx0305 as active", lambda: SPEC["medrx0305"]("active"), "code-invalid", _rxnorm("308047")),
    ("medrx0307 as active", lambda: SPEC["medrx0307"]("active"), "code-invalid", NDC_REASON),
    ("medrx0308 as active", lambda: SPEC["medrx0308"]("active"), "not-supported", CODEABLE_REASON),
    ("medrx0322 as active", lambda: SPEC["medrx0322"]("active"), "required",
     "the Medication's code.coding (the drug) is required (its ingredients are coded, 2 codings"),
    ("medrx0323 as active", lambda: SPEC["medrx0323"]("active"), "required",
     "the Medication's code.coding (the drug) is required (its ingredients are coded, 3 codings"),
]

EDITED: list[tuple[str, Any, str, str]] = [
    # (row, fixture, FHIR issue code, the reason the pump gives)
    ("medrx0301 as active", lambda: medrx0301("active"), "code-invalid",
     "Medication coding system 'http://snomed.info/sct' is not known to this pump"),
    ("medrx0336 as active", lambda: medrx0336("active"), "required",
     "the Medication's code.coding (the drug) is required (its ingredients are coded, 2 codings"),
    ("medrx0336 as active, drug coded", lambda: _with_drug_code(medrx0336("active")), "code-invalid",
     "RxNorm code(s) 1114879 cannot be matched"),
    ("medrx0336 as active, in the library's codes", lambda: _library_coded(medrx0336("active")), "required",
     "the Medication needs exactly one ingredient with a strength"),
    ("medrx0336 as active, in the library's codes, one ingredient", lambda: _one_ingredient(medrx0336("active")),
     "required", "doseAndRate.rateQuantity has the unit 'ug/kg/min' as text but no code"),
    ("medrx0337 as active, in the library's codes, one ingredient", lambda: _one_ingredient(medrx0337("active")),
     "required", "doseAndRate.rateQuantity has the unit 'ug/min' as text but no code"),
]


def _verdict(resource: dict[str, Any]) -> OrderRejected | dict[str, Any]:
    try:
        return fhir_orders.order_fields(json.dumps(resource).encode(), {})
    except OrderRejected as exc:
        return exc


EXAMPLES += EDITED


def test_every_example_the_specification_lists_has_a_row() -> None:
    assert sorted(SPEC) == sorted(SPEC_IDS) == sorted(i for i, _, _ in SPEC_ANSWERS)
    for ex_id, fixture in SPEC.items():
        assert fixture()["id"] == ex_id


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
