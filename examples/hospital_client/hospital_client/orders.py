"""Building and signing infusion orders the way the pump expects them (see docs/hospital.md).

The signature is ECDSA P-256 / SHA-256, made with the hospital's TLS client key, over
``septum.services.signed_fields.canonical`` of the pump's ``InfusionOrder`` fields other than ``cert`` and
``signature``. Those fields include ``principal`` (the identity in our client certificate, which the pump
reads from the TLS session) and ``source`` (``fhir`` or ``hl7v2``), so an order signed for one transport
or one sender does not verify for another. Numbers are floats on both sides (msgpack encodes 5 and 5.0
differently) and are written with ``repr`` so they parse back to the same float.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from septum.services.mtls import peer_identity
from septum.services.signed_fields import canonical

ALGORITHM = "ECDSA-P256-SHA256"
UCUM = "http://unitsofmeasure.org"
CARE_AREA_URL = "https://septum.example/fhir/StructureDefinition/care-area"
RATE_UCUM = {"mL/h": "mL/h", "mg/h": "mg/h", "units/h": "U/h", "mcg/kg/min": "ug/kg/min"}
CONC_UCUM = {"mg/mL": "mg/mL", "mcg/mL": "ug/mL", "units/mL": "U/mL", "mL/mL": "mL/mL"}
NUMERATOR_UCUM = {"mg/mL": "mg", "mcg/mL": "ug", "units/mL": "U", "mL/mL": "mL"}


def identity_of(cert: x509.Certificate) -> str:
    """The identity the pump reads from our certificate (the same rule the pump's auth applies)."""
    return peer_identity(cert)


def make_order(*, order_id: str, patient_id: str, drug: str, concentration: float, concentration_unit: str,
               dose_rate: float, dose_unit: str, vtbi_ml: float, care_area: str, principal: str, source: str,
               weight_kg: float = 0.0, nonce: str | None = None, sent_at_ms: int | None = None) -> dict[str, Any]:
    return {
        "order_id": order_id, "patient_id": patient_id, "drug": drug,
        "concentration": float(concentration), "concentration_unit": concentration_unit,
        "dose_unit": dose_unit, "dose_rate": float(dose_rate), "vtbi_ml": float(vtbi_ml),
        "weight_kg": float(weight_kg), "care_area": care_area, "source": source, "principal": principal,
        "nonce": nonce or secrets.token_hex(16),
        "sent_at_ms": int(time.time() * 1000) if sent_at_ms is None else sent_at_ms,
    }


def sign(order: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.sign(canonical(order), ec.ECDSA(hashes.SHA256()))


def _num(value: float) -> str:
    text = repr(float(value))
    return text if "e" not in text else f"{value:.17f}".rstrip("0").rstrip(".")


def fhir_request(order: dict[str, Any], signature: bytes) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of the MedicationRequest POST for a signed order."""
    contained: list[dict[str, Any]] = [{
        "resourceType": "Medication", "id": "med",
        "code": {"coding": [{"system": "https://septum.example/fhir/CodeSystem/drug", "code": order["drug"]}]},
        "ingredient": [{
            "itemCodeableConcept": {"text": order["drug"]},
            "strength": {
                "numerator": {"value": order["concentration"], "system": UCUM,
                              "code": NUMERATOR_UCUM.get(order["concentration_unit"], order["concentration_unit"])},
                "denominator": {"value": 1.0, "system": UCUM, "code": "mL"},
            },
        }],
    }]
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "extension": [{"url": CARE_AREA_URL, "valueString": order["care_area"]}],
        "identifier": [{"system": "https://hospital.example/orders", "value": order["order_id"]}],
        "status": "active", "intent": "order",
        "medicationReference": {"reference": "#med"},
        "subject": {"reference": f"Patient/{order['patient_id']}"},
        "dosageInstruction": [{"doseAndRate": [{
            "rateQuantity": {"value": order["dose_rate"], "system": UCUM,
                             "code": RATE_UCUM.get(order["dose_unit"], order["dose_unit"])},
            "doseQuantity": {"value": order["vtbi_ml"], "system": UCUM, "code": "mL"},
        }]}],
    }
    if order["weight_kg"]:
        contained.append({"resourceType": "Observation", "id": "weight", "status": "final",
                          "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                          "valueQuantity": {"value": order["weight_kg"], "system": UCUM, "code": "kg"}})
        resource["supportingInformation"] = [{"reference": "#weight"}]
    resource["contained"] = contained
    headers = {
        "Content-Type": "application/fhir+json",
        "X-Septum-Order-Signature": base64.b64encode(signature).decode(),
        "X-Septum-Order-Nonce": order["nonce"],
        "X-Septum-Order-Sent-At": str(order["sent_at_ms"]),
    }
    return json.dumps(resource).encode(), headers


def hl7_message(order: dict[str, Any], signature: bytes, *, control_id: str) -> bytes:
    """The RGV^O15 for a signed order (segments separated by CR)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(order["sent_at_ms"] / 1000)) + "+0000"
    segs = [
        f"MSH|^~\\&|HOSPITAL_CLIENT|HOSPITAL|SEPTUM_PUMP|SEPTUM|{stamp}||RGV^O15^RGV_O15|{control_id}|P|2.5",
        f"PID|||{order['patient_id']}",
        f"PV1||I|{order['care_area']}",
        f"ORC|NW|{order['order_id']}",
        "|".join(["RXG", "1", "", "", f"{order['drug']}^{order['drug']}^SEPTUM", _num(order["vtbi_ml"]), "",
                  "mL^mL^UCUM", "", "", "", "", "", "", "", _num(order["dose_rate"]),
                  f"{RATE_UCUM.get(order['dose_unit'], order['dose_unit'])}^^UCUM", _num(order["concentration"]),
                  f"{CONC_UCUM.get(order['concentration_unit'], order['concentration_unit'])}^^UCUM"]),
        "RXR|IV^Intravenous^HL70162",
    ]
    if order["weight_kg"]:
        segs.append(f"OBX|1|NM|29463-7^Body weight^LN||{_num(order['weight_kg'])}|kg^kg^UCUM|||||F")
    segs.append(f"ZSG|{order['nonce']}|{order['sent_at_ms']}|{base64.b64encode(signature).decode()}|{ALGORITHM}")
    return ("\r".join(segs) + "\r").encode()
