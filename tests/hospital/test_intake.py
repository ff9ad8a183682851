"""Parsing and our own checks, without sockets: every refusal says why."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hospital_client import orders
from septum_pump.hospital import answers, hl7_orders, hl7_writer, httpio
from septum_pump.hospital.mllp import FrameReader, MllpError, frame
from septum_pump.hospital.pki import HospitalPki

from .hl7_strict import assert_strict_hl7
from .intake_helpers import make_desk, oracle_valid, peer_of

BASE: dict[str, Any] = dict(order_id="ORD-7", patient_id="MRN-1", drug="heparin", concentration=100.0,
                            concentration_unit="units/mL", dose_rate=1000.0, dose_unit="units/h", vtbi_ml=250.0,
                            care_area="icu")


def signed(pki: HospitalPki, source: str, **changes: Any) -> tuple[dict[str, Any], bytes]:
    order = orders.make_order(principal="hospital.example", source=source, **{**BASE, **changes})
    return order, orders.sign(order, pki.hospital_client.key)


def hl7_answer(pki: HospitalPki, order_type: Any, payload: bytes) -> tuple[str, str, list[Any]]:
    desk, rec = make_desk(order_type)
    reply, _ = answers.answer_hl7(payload, peer_of(pki), desk)
    assert_strict_hl7(reply)  # an independent strict parser accepts every answer
    msg = hl7_orders.parse(reply)
    msa = msg.one("MSA")
    err = msg.all("ERR")
    return msa[1], (hl7_orders.component(err[0][8], 1) if err else msa[3]), rec.orders


def fhir_answer(pki: HospitalPki, order_type: Any, body: bytes, headers: dict[str, str]
                ) -> tuple[int, str, list[Any]]:
    desk, rec = make_desk(order_type)
    req = httpio.Request("POST", "/fhir/MedicationRequest",
                         {"content-type": "application/fhir+json", **{k.lower(): v for k, v in headers.items()}}, body)
    data, _ = answers.answer_fhir(req, peer_of(pki), desk)
    head, _, out = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(out)["issue"][0]["diagnostics"], rec.orders


def test_valid_orders_in_both_formats_give_the_same_signed_order(pki, order_type) -> None:
    order, sig = signed(pki, "hl7v2")
    code, _, fwd = hl7_answer(pki, order_type, orders.hl7_message(order, sig, control_id="X1"))
    assert code == "AA" and oracle_valid(fwd[0], pki)
    order2, sig2 = signed(pki, "fhir")
    status, _, fwd2 = fhir_answer(pki, order_type, *orders.fhir_request(order2, sig2))
    assert status == 201 and oracle_valid(fwd2[0], pki)
    assert (fwd[0].dose_rate, fwd[0].dose_unit) == (fwd2[0].dose_rate, fwd2[0].dose_unit) == (1000.0, "units/h")


@pytest.mark.parametrize(("changes", "reason"), [
    ({"dose_unit": "mg/h"}, "cannot be given from a concentration in units/mL"),
    ({"dose_unit": "mcg/kg/min", "concentration_unit": "mcg/mL"}, "needs a patient weight"),
    ({"vtbi_ml": 0.0}, "vtbi_ml must be greater than zero"),
    ({"vtbi_ml": 6000.0}, "outside the model's bounds"),
    ({"drug": "x" * 65}, "outside the model's bounds"),
    ({"patient_id": "MRN 1; DROP"}, "patient_id contains characters|Patient/<id>"),
    ({"drug": "%s%s%n"}, "drug contains characters"),
    ({"nonce": "short"}, "nonce must have at least 16"),
    ({"weight_kg": 900.0}, "not a plausible patient weight"),
])
def test_our_checks_refuse_what_the_formats_allow(pki, order_type, changes: dict[str, Any], reason: str) -> None:
    order, sig = signed(pki, "fhir", **changes)
    status, text, fwd = fhir_answer(pki, order_type, *orders.fhir_request(order, sig))
    assert status == 422 and any(r in text for r in reason.split("|")) and fwd == []
    order, sig = signed(pki, "hl7v2", **changes)
    code, text, fwd = hl7_answer(pki, order_type, orders.hl7_message(order, sig, control_id="X"))
    assert code == "AE" and any(r in text for r in reason.split("|")) and fwd == []


def _fhir_resource(pki: HospitalPki) -> tuple[dict[str, Any], dict[str, str]]:
    order, sig = signed(pki, "fhir")
    body, headers = orders.fhir_request(order, sig)
    return json.loads(body), headers


@pytest.mark.parametrize(("mutate", "status", "reason"), [
    (lambda r: r.update(status="bogus"), 422, "status must be 'active'"),  # the library accepts this
    (lambda r: r.update(intent="plan"), 422, "intent must be 'order'"),
    (lambda r: r["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"].update(code="furlong/h"), 422,
     "is not one of"),
    (lambda r: r["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"].update(system="http://x"), 422,
     "must be http://unitsofmeasure.org"),
    (lambda r: r.update(subject={"reference": "Group/1"}), 422, "Patient/<id>"),
    (lambda r: r.update(medicationReference={"reference": "#nope"}), 400, "contained Medication"),
    (lambda r: r.update(contained=[{"resourceType": "Bogus"}]), 400, "not a valid FHIR R4 MedicationRequest"),
    (lambda r: r.update(resourceType="Patient"), 400, "must be a FHIR MedicationRequest"),
    (lambda r: r.update(status=7), 400, "not a valid FHIR R4"),
])
def test_fhir_structure_errors_have_reasons(pki, order_type, mutate: Any, status: int, reason: str) -> None:
    resource, headers = _fhir_resource(pki)
    mutate(resource)
    got, text, fwd = fhir_answer(pki, order_type, json.dumps(resource).encode(), headers)
    assert (got, fwd) == (status, []) and reason in text


def test_fhir_unsigned_and_not_json_are_refused(pki, order_type) -> None:
    resource, headers = _fhir_resource(pki)
    status, text, _ = fhir_answer(pki, order_type, json.dumps(resource).encode(),
                                  {k: v for k, v in headers.items() if k != "X-Septum-Order-Signature"})
    assert status == 403 and "not signed" in text
    status, text, _ = fhir_answer(pki, order_type, b'{"resourceType": "Medic', headers)
    assert status == 400 and "not JSON" in text


@pytest.mark.parametrize(("edit", "ack", "reason"), [
    (lambda m: m.replace(b"RGV^O15", b"ADT^A01"), "AR", "only RGV^O15"),
    (lambda m: m.replace(b"|P|2.5", b"|P|2.3"), "AR", "is not 2.5"),
    (lambda m: m.replace(b"|X|P|2.5", b"|  |P|2.5"), "AR", "MSH-10 (message control id) is required"),
    (lambda m: m.replace(b"MSH|^~\\&", b"MSH|^~#&"), "AR", "must start with MSH"),
    (lambda m: m.replace(b"ORC|NW|ORD-7", b"ORC|NW|"), "AE", "ORC-2 (placer order number) is required"),
    (lambda m: m.replace(b"U/h^^UCUM", b"U/h^^L"), "AE", "must be a UCUM code"),
    (lambda m: m.replace(b"1000.0", b"1,000"), "AE", "is not a number"),
    (lambda m: m + b"RXG|2\r", "AE", "segment RXG is repeated"),
    (lambda m: m + b"ZZZ|1\r", "AE", "does not belong"),
    (lambda m: m.replace(b"ECDSA-P256-SHA256", b"MD5"), "AE", "signature algorithm"),
    (lambda m: m.replace(b"PID|||MRN-1", b"PID|||MRN-1\x00"), "AR", "control character"),
    (lambda m: b"\xff" + m, "AR", "not valid UTF-8"),
    (lambda m: m.replace(b"heparin^heparin", b"heparin" * 400), "AR", "longer than 2048"),
])
def test_hl7_errors_have_reasons(pki, order_type, edit: Any, ack: str, reason: str) -> None:
    order, sig = signed(pki, "hl7v2")
    code, text, fwd = hl7_answer(pki, order_type, edit(orders.hl7_message(order, sig, control_id="X")))
    assert (code, fwd) == (ack, []) and reason in hl7_orders.unescape(text)


def test_hl7_reply_escapes_hostile_text() -> None:
    err = hl7_orders.Hl7Error("bad |field^ with ~ and & and \\", where="RXG-15")
    reply = hl7_writer.reply(None, ack="AR", text="x\ry", control_id="C", timestamp="T", error=err)
    msg = hl7_orders.parse(reply)
    assert len(msg.segments) == 3 and hl7_orders.component(msg.one("ERR")[8], 1) == "bad |field^ with ~ and & and \\"
    assert msg.one("ERR")[2] == "RXG^1^15"


def test_mllp_reader_frames_resynchronises_and_bounds() -> None:
    r = FrameReader(max_frame=32)
    items = list(r.feed(b"junk" + frame(b"A") + frame(b"B")[:2]))
    assert isinstance(items[0], MllpError) and items[1] == b"A"
    assert list(r.feed(frame(b"B")[2:])) == [b"B"]
    items = list(r.feed(b"\x0b" + b"x" * 40))
    assert len(items) == 1 and "longer than 32" in str(items[0])
    assert list(r.feed(b"more\x1c\x0d" + frame(b"C"))) == [b"C"]  # the oversized frame's tail is skipped
    list(r.feed(b"\x0bpartial"))
    assert r.pending() == len("partial")  # a truncated frame at end of stream is visible
