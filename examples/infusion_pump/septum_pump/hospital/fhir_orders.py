"""FHIR R4 infusion orders: a ``MedicationRequest`` in, an ``OperationOutcome`` out when refused.

The ``fhir.resources`` R4B models (R4B is R4 with ballot fixes; MedicationRequest is unchanged) check the
resource's structure and data types. They accept ``status: "bogus"``, a rate in "furlongs", a negative
volume; so after the library, our own checks read exactly one reading of every value we use:

  identifier[0].value                          order id (exactly one identifier)
  status ``active``, intent ``order``
  subject.reference ``Patient/<id>``           patient id
  medicationReference -> Medication: its coding in the drug library's system (``DRUG_SYSTEM``) is the drug;
      a coding in another system is refused (RxNorm is recognised, but this library has no RxNorm codes),
      ingredient[0].strength a Ratio (numerator UCUM mg/ug/U/[iU]/mL per denominator a volume in mL)
      (a medicationCodeableConcept is refused with a reason: a code alone carries no strength)
  dosageInstruction[0].doseAndRate[0]: rateQuantity (UCUM rate code), doseQuantity (mL: volume to infuse)
  supportingInformation -> Observation LOINC 29463-7 (kg): weight, when given
  extension CARE_AREA_URL valueString          care area
References are ``#id`` (a contained resource) or, when the body is a Bundle holding the MedicationRequest,
``Type/id`` or an entry's fullUrl resolved inside that Bundle; the pump fetches nothing, so a reference it
cannot resolve is refused. UCUM codes are compared by meaning through ``units`` (case-sensitive; ``ml`` and
``mL`` are both UCUM's millilitre).
The signature and its freshness travel as HTTP headers (see ``SIGNATURE_HEADER``): they are transport
metadata about the request, not part of the clinical resource.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from decimal import Decimal
from typing import Any

import msgspec
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest

from . import units
from .validate import OrderRejected

CARE_AREA_URL = "https://septum.example/fhir/StructureDefinition/care-area"
SIGNATURE_HEADER = "x-septum-order-signature"  # base64 ECDSA P-256 / SHA-256 signature
NONCE_HEADER = "x-septum-order-nonce"
SENT_AT_HEADER = "x-septum-order-sent-at"  # ms since the Unix epoch
MAX_BODY = 64 * 1024
_PATIENT_REF = re.compile(r"Patient/([A-Za-z0-9.\-]{1,64})")
_LOCAL_REF = re.compile(r"#([A-Za-z0-9.\-]{1,64})")
DRUG_SYSTEM = "https://septum.example/fhir/CodeSystem/drug"  # the drug library's own names
RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"
WEIGHT_STATUSES = ("final", "amended", "corrected")  # a measured weight, not a preliminary or cancelled one
Entries = dict[str, Any]  # a Bundle's resources by fullUrl and by Type/id


def _number(value: Decimal | float | int | None, where: str) -> float:
    if value is None:
        raise OrderRejected(f"{where} is required", field=where, code="required")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise OrderRejected(f"{where} must be a finite number", field=where, code="value")
    return number


def _ucum(quantity: Any, where: str, table: dict[str, str]) -> tuple[float, str]:
    """(value, library unit) of a UCUM quantity; the code is looked up exactly (UCUM is case-sensitive)."""
    if quantity is None:
        raise OrderRejected(f"{where} is required", field=where, code="required")
    if quantity.system != units.UCUM_SYSTEM:
        raise OrderRejected(f"{where}.system must be {units.UCUM_SYSTEM}", field=where, code="code-invalid")
    code = quantity.code or ""
    if not code and quantity.unit:  # the spec's own examples do this: a display unit, no code to compare
        raise OrderRejected(f"{where} has the unit {quantity.unit[:24]!r} as text but no code: the UCUM code is "
                            f"required (one of {', '.join(table)})", field=where, code="required")
    if code not in table:
        raise OrderRejected(f"{where}.code {code[:24]!r} is not one of {', '.join(table)} (UCUM, case-sensitive)",
                            field=where, code="code-invalid")
    return _number(quantity.value, f"{where}.value"), table[code]


def _resolve(req: MedicationRequest, entries: Entries | None, reference: str | None, kind: str, where: str) -> Any:
    """The resource a reference names: contained (``#id``) or, for a Bundle, another entry of it."""
    ref = reference or ""
    m = _LOCAL_REF.fullmatch(ref)
    if m is not None:
        found = [r for r in (req.contained or []) if getattr(r, "id", None) == m.group(1)]
        if len(found) != 1 or type(found[0]).__name__ != kind:
            raise OrderRejected(f"{where} does not resolve to exactly one contained {kind}", field=where,
                                code="structure")
        return found[0]
    if not ref:
        raise OrderRejected(f"{where} must reference a {kind} (contained '#id', or an entry of the Bundle)",
                            field=where, code="required")
    if entries is None:
        raise OrderRejected(f"{where} references {ref[:64]!r}, which is not contained: send the {kind} contained "
                            "or in a Bundle with the order (the pump fetches nothing)", field=where, code="not-found")
    found = entries.get(ref)
    if found is None:
        raise OrderRejected(f"{where} references {ref[:64]!r}, which is not in the Bundle", field=where,
                            code="not-found")
    if type(found).__name__ != kind:
        raise OrderRejected(f"{where} must reference a {kind}, but {ref[:64]!r} is a {type(found).__name__}",
                            field=where, code="structure")
    return found


def _drug(med: Any) -> str:
    """The drug's name in the library, from the Medication's coding in the library's own system."""
    codings = (med.code.coding if med.code else None) or []
    if not codings:
        # a Medication that names only its ingredients (an admixture): which one is "the drug" is the
        # drug library's question, not one the pump guesses
        items = [c for i in (med.ingredient or []) if getattr(i, "itemCodeableConcept", None)
                 for c in (i.itemCodeableConcept.coding or [])]
        named = f" (its ingredients are coded, {len(items)} codings, but are not read as the drug)" if items else ""
        raise OrderRejected(f"the Medication's code.coding (the drug) is required{named}", field="Medication.code",
                            code="required")
    names = set()
    for coding in codings:
        if coding.system == DRUG_SYSTEM:
            if not coding.code:
                raise OrderRejected(f"a Medication coding in {DRUG_SYSTEM} has no code", field="Medication.code",
                                    code="required")
            names.add(coding.code)
        elif coding.system != RXNORM_SYSTEM:
            # a code means nothing without its system: the same digits are a different drug elsewhere
            raise OrderRejected(f"Medication coding system {str(coding.system)[:64]!r} is not known to this pump "
                                f"(accepted: {DRUG_SYSTEM}, {RXNORM_SYSTEM})", field="Medication.code",
                                code="code-invalid")
    if not names:
        rx = ", ".join(str(c.code)[:16] for c in codings)
        raise OrderRejected(f"RxNorm code(s) {rx} cannot be matched: the drug library names its drugs in "
                            f"{DRUG_SYSTEM} and has no RxNorm codes; add a coding in that system",
                            field="Medication.code", code="code-invalid")
    if len(names) > 1:
        raise OrderRejected(f"the Medication has {len(names)} different codings in {DRUG_SYSTEM}",
                            field="Medication.code", code="value")
    return names.pop()


def _bundle_entries(data: dict[str, Any]) -> tuple[MedicationRequest, Entries]:
    try:
        bundle = Bundle.model_validate(data)
    except Exception as exc:  # as for the MedicationRequest: any library error on hostile input is a refusal
        first = str(exc).replace("\n", " ")[:200]
        raise OrderRejected(f"not a valid FHIR R4 Bundle: {first}", code="structure") from None
    entries: Entries = {}
    requests = []
    for entry in bundle.entry or []:
        resource = entry.resource
        if resource is None:
            continue
        kind = type(resource).__name__
        if kind == "MedicationRequest":
            requests.append(resource)
        keys = [k for k in (entry.fullUrl, f"{kind}/{resource.id}" if getattr(resource, "id", None) else None) if k]
        for key in keys:
            if key in entries:
                raise OrderRejected(f"the Bundle has two entries named {key[:64]!r}", field="Bundle.entry",
                                    code="structure")
            entries[key] = resource
    if len(requests) != 1:
        raise OrderRejected(f"the Bundle must hold exactly one MedicationRequest, not {len(requests)}",
                            field="Bundle.entry", code="structure")
    return requests[0], entries


def _library(body: bytes) -> tuple[MedicationRequest, Entries | None]:
    if len(body) > MAX_BODY:
        raise OrderRejected(f"request body larger than {MAX_BODY} bytes", code="too-costly")
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested deeper than the decoder goes
        raise OrderRejected(f"body is not JSON: {str(exc)[:120]}", code="structure") from None
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        return _bundle_entries(data)
    if not isinstance(data, dict) or data.get("resourceType") != "MedicationRequest":
        raise OrderRejected("body must be a FHIR MedicationRequest resource (or a Bundle holding one)",
                            code="structure")
    try:
        return MedicationRequest.model_validate(data), None
    except Exception as exc:  # the library raises KeyError/ValueError/RecursionError on hostile input: all refusals
        first = str(exc).replace("\n", " ")[:200]
        raise OrderRejected(f"not a valid FHIR R4 MedicationRequest: {first}", code="structure") from None


def order_fields(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The InfusionOrder fields a signed MedicationRequest carries (principal/cert come from TLS)."""
    req, entries = _library(body)
    if req.status != "active":
        raise OrderRejected(f"status must be 'active', not {str(req.status)[:24]!r}", field="status",
                            code="value")
    if req.intent != "order":
        raise OrderRejected(f"intent must be 'order', not {str(req.intent)[:24]!r}", field="intent", code="value")
    ids = [i.value for i in (req.identifier or []) if i.value]
    if len(ids) != 1:
        raise OrderRejected("exactly one identifier (the order id) is required", field="identifier",
                            code="required")
    m = _PATIENT_REF.fullmatch((req.subject.reference if req.subject else None) or "")
    if m is None:
        raise OrderRejected("subject.reference must be 'Patient/<id>'", field="subject", code="required")
    if req.medicationReference is None and req.medicationCodeableConcept is not None:
        # valid FHIR (the spec's own examples do it), but a code carries no strength: the pump cannot
        # know the concentration, so it says which form it needs rather than "must reference a Medication"
        raise OrderRejected("medicationCodeableConcept names the drug by a code alone, with no strength: send "
                            "medicationReference to a Medication (contained '#id', or in the Bundle) coded in "
                            f"{DRUG_SYSTEM} with ingredient[0].strength", field="medicationCodeableConcept",
                            code="not-supported")
    med = _resolve(req, entries, req.medicationReference.reference if req.medicationReference else None,
                   "Medication", "medicationReference")
    drug = _drug(med)
    ingredients = med.ingredient or []
    if len(ingredients) != 1 or ingredients[0].strength is None:
        raise OrderRejected("the Medication needs exactly one ingredient with a strength",
                            field="Medication.ingredient", code="required")
    strength = ingredients[0].strength
    amount, conc_unit = _ucum(strength.numerator, "strength.numerator", units.CONCENTRATION_NUMERATORS)
    per, _ = _ucum(strength.denominator, "strength.denominator", units.VOLUME_UNITS)
    if not per > 0:
        raise OrderRejected("strength.denominator must be a volume greater than zero", field="strength.denominator",
                            code="value")
    conc = amount / per
    dosage = req.dosageInstruction or []
    rates = (dosage[0].doseAndRate or []) if len(dosage) == 1 else []
    if len(rates) != 1:
        raise OrderRejected("exactly one dosageInstruction with one doseAndRate is required",
                            field="dosageInstruction", code="required")
    rate, rate_unit = _ucum(rates[0].rateQuantity, "doseAndRate.rateQuantity", units.RATE_UNITS)
    vtbi, _ = _ucum(rates[0].doseQuantity, "doseAndRate.doseQuantity", units.VOLUME_UNITS)
    weight = 0.0
    supporting = req.supportingInformation or []
    if len(supporting) > 1:
        raise OrderRejected("at most one supportingInformation (the body weight)", field="supportingInformation",
                            code="structure")
    if supporting:
        obs = _resolve(req, entries, supporting[0].reference, "Observation", "supportingInformation")
        if obs.status not in WEIGHT_STATUSES:
            raise OrderRejected(f"the weight Observation's status is {str(obs.status)[:16]!r}, not one of "
                                f"{', '.join(WEIGHT_STATUSES)}", field="Observation.status", code="value")
        about = (obs.subject.reference if obs.subject else None) or ""
        if about and about != req.subject.reference:
            raise OrderRejected(f"the weight Observation is about {about[:64]!r}, not the order's patient",
                                field="Observation.subject", code="value")
        loinc = [c.code for c in ((obs.code.coding if obs.code else None) or []) if c.system == units.LOINC_SYSTEM]
        if not loinc or loinc[0] not in units.BODY_WEIGHT_LOINC:
            raise OrderRejected("the supporting Observation must be a body weight (LOINC 29463-7)",
                                field="Observation.code", code="code-invalid")
        weight, _ = _ucum(obs.valueQuantity, "Observation.valueQuantity", units.WEIGHT_UNITS)
    areas = [e.valueString for e in (req.extension or []) if e.url == CARE_AREA_URL]
    if len(areas) != 1 or not areas[0]:
        raise OrderRejected(f"exactly one care-area extension ({CARE_AREA_URL}) is required", field="extension",
                            code="required")
    sent = headers.get(SENT_AT_HEADER, "")
    if not sent.isdigit() or len(sent) > 16:
        raise OrderRejected(f"header {SENT_AT_HEADER} must be milliseconds since the Unix epoch", code="security")
    try:
        signature = base64.b64decode(headers.get(SIGNATURE_HEADER, ""), validate=True)
    except (binascii.Error, ValueError):
        raise OrderRejected(f"header {SIGNATURE_HEADER} is not base64", code="security") from None
    return {
        "order_id": ids[0],
        "patient_id": m.group(1),
        "drug": drug,
        "concentration": conc,
        "concentration_unit": conc_unit,
        "dose_unit": rate_unit,
        "dose_rate": rate,
        "vtbi_ml": vtbi,
        "weight_kg": weight,
        "care_area": areas[0],
        "source": "fhir",
        "nonce": headers.get(NONCE_HEADER, ""),
        "sent_at_ms": int(sent),
        "signature": signature,
    }


def operation_outcome(severity: str, code: str, text: str, *, expression: str = "") -> bytes:
    """An OperationOutcome with one issue (severity: fatal/error/warning/information)."""
    # details.text is what a user is shown (the reason, e.g. the limit that refused an order);
    # diagnostics carries the same for systems that read only it
    issue: dict[str, Any] = {"severity": severity, "code": code, "details": {"text": text[:512]},
                             "diagnostics": text[:512]}
    if expression:
        issue["expression"] = [expression[:64]]
    return json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}).encode()
