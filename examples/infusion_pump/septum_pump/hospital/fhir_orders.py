"""FHIR R4 infusion orders: a ``MedicationRequest`` in, an ``OperationOutcome`` out when refused.

The ``fhir.resources`` R4B models (R4B is R4 with ballot fixes; MedicationRequest is unchanged) check the
resource's structure and data types. They accept ``status: "bogus"``, a rate in "furlongs", a negative
volume; so after the library, our own checks read exactly one reading of every value we use:

  identifier[0].value                          order id (exactly one identifier)
  status ``active``, intent ``order``
  subject.reference ``Patient/<id>``           patient id
  medicationReference ``#<id>`` -> contained Medication: code.coding[0].code is the drug,
      ingredient[0].strength a Ratio (numerator UCUM mg/ug/U/[iU]/mL per denominator 1 mL)
  dosageInstruction[0].doseAndRate[0]: rateQuantity (UCUM rate code), doseQuantity (mL: volume to infuse)
  supportingInformation ``#<id>`` -> contained Observation LOINC 29463-7 (kg): weight, when given
  extension CARE_AREA_URL valueString          care area
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


def _number(value: Decimal | float | int | None, where: str) -> float:
    if value is None:
        raise OrderRejected(f"{where} is required", field=where, code="required")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise OrderRejected(f"{where} must be a finite number", field=where, code="value")
    return number


def _ucum(
    quantity: Any, where: str, table: dict[str, str] | None = None, exact: str | None = None
) -> tuple[float, str]:
    if quantity is None:
        raise OrderRejected(f"{where} is required", field=where, code="required")
    if quantity.system != units.UCUM_SYSTEM:
        raise OrderRejected(f"{where}.system must be {units.UCUM_SYSTEM}", field=where, code="code-invalid")
    code = quantity.code or ""
    if exact is not None and code != exact:
        raise OrderRejected(f"{where}.code must be {exact!r}, not {code[:24]!r}", field=where, code="code-invalid")
    if table is not None and code not in table:
        raise OrderRejected(f"{where}.code {code[:24]!r} is not one of {', '.join(table)}", field=where,
                            code="code-invalid")
    return _number(quantity.value, f"{where}.value"), (table[code] if table is not None else code)


def _contained(req: MedicationRequest, reference: str | None, kind: str, where: str) -> Any:
    m = _LOCAL_REF.fullmatch(reference or "")
    if m is None:
        raise OrderRejected(f"{where} must reference a contained {kind} ('#id')", field=where, code="required")
    found = [r for r in (req.contained or []) if getattr(r, "id", None) == m.group(1)]
    if len(found) != 1 or type(found[0]).__name__ != kind:
        raise OrderRejected(f"{where} does not resolve to exactly one contained {kind}", field=where,
                            code="structure")
    return found[0]


def _library(body: bytes) -> MedicationRequest:
    if len(body) > MAX_BODY:
        raise OrderRejected(f"request body larger than {MAX_BODY} bytes", code="too-costly")
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested deeper than the decoder goes
        raise OrderRejected(f"body is not JSON: {str(exc)[:120]}", code="structure") from None
    if not isinstance(data, dict) or data.get("resourceType") != "MedicationRequest":
        raise OrderRejected("body must be a FHIR MedicationRequest resource", code="structure")
    try:
        return MedicationRequest.model_validate(data)
    except Exception as exc:  # the library raises KeyError/ValueError/RecursionError on hostile input: all refusals
        first = str(exc).replace("\n", " ")[:200]
        raise OrderRejected(f"not a valid FHIR R4 MedicationRequest: {first}", code="structure") from None


def order_fields(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The InfusionOrder fields a signed MedicationRequest carries (principal/cert come from TLS)."""
    req = _library(body)
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
    med = _contained(req, req.medicationReference.reference if req.medicationReference else None, "Medication",
                     "medicationReference")
    codings = (med.code.coding if med.code else None) or []
    if not codings or not codings[0].code:
        raise OrderRejected("the Medication's code.coding[0].code (the drug) is required", field="Medication.code",
                            code="required")
    ingredients = med.ingredient or []
    if len(ingredients) != 1 or ingredients[0].strength is None:
        raise OrderRejected("the Medication needs exactly one ingredient with a strength",
                            field="Medication.ingredient", code="required")
    strength = ingredients[0].strength
    conc, conc_unit = _ucum(strength.numerator, "strength.numerator", units.CONCENTRATION_NUMERATORS)
    per, _ = _ucum(strength.denominator, "strength.denominator", exact=units.VOLUME_UNIT)
    if per != 1.0:
        raise OrderRejected("strength.denominator must be 1 mL", field="strength.denominator", code="value")
    dosage = req.dosageInstruction or []
    rates = (dosage[0].doseAndRate or []) if len(dosage) == 1 else []
    if len(rates) != 1:
        raise OrderRejected("exactly one dosageInstruction with one doseAndRate is required",
                            field="dosageInstruction", code="required")
    rate, rate_unit = _ucum(rates[0].rateQuantity, "doseAndRate.rateQuantity", units.RATE_UNITS)
    vtbi, _ = _ucum(rates[0].doseQuantity, "doseAndRate.doseQuantity", exact=units.VOLUME_UNIT)
    weight = 0.0
    supporting = req.supportingInformation or []
    if len(supporting) > 1:
        raise OrderRejected("at most one supportingInformation (the body weight)", field="supportingInformation",
                            code="structure")
    if supporting:
        obs = _contained(req, supporting[0].reference, "Observation", "supportingInformation")
        loinc = [c.code for c in ((obs.code.coding if obs.code else None) or []) if c.system == units.LOINC_SYSTEM]
        if not loinc or loinc[0] not in units.BODY_WEIGHT_LOINC:
            raise OrderRejected("the supporting Observation must be a body weight (LOINC 29463-7)",
                                field="Observation.code", code="code-invalid")
        weight, _ = _ucum(obs.valueQuantity, "Observation.valueQuantity", exact=units.WEIGHT_UNIT)
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
        "drug": codings[0].code,
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
