"""Hypothesis fuzzing of the HL7 and FHIR intake: whatever arrives, the intake answers (never raises) with
a well-formed refusal or acceptance, and nothing that reaches auth fails the independent validity oracle."""

from __future__ import annotations

import json
import math
from typing import Any

from hospital_client import orders
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from septum_pump.hospital import answers, hl7_orders, httpio
from septum_pump.hospital.mllp import FrameReader, MllpError

from .hl7_strict import assert_strict_hl7
from .intake_helpers import make_desk, oracle_valid, peer_of

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BASE: dict[str, Any] = dict(order_id="ORD-9", patient_id="MRN-9", drug="morphine-pca", concentration=1.0,
                            concentration_unit="mg/mL", dose_rate=2.0, dose_unit="mg/h", vtbi_ml=100.0,
                            care_area="adult-med-surg")

nasty_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["%s%s%n%x", "|^~\\&", "\r", "\x0b\x1c\r", "../../etc/passwd", "A" * 70, "é" * 70, "",
                     "${jndi:ldap://x}", "\\F\\\\S\\", "null", "-1", "1e309", "NaN"]),
    st.text(alphabet="ABCxyz019-._|^&~\\", max_size=20),
)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6).map(float),
                    st.sampled_from([0.0, -0.0, 1e-9, 10000.0, 10000.1, 5000.0, 5000.1, 0.3, 350.0]))
units = st.sampled_from(["mL/h", "mg/h", "units/h", "mcg/kg/min", "mg/mL", "mcg/mL", "units/mL", "mL/mL",
                         "furlong/h", "", "U/h", "ug/kg/min"])
order_changes = st.fixed_dictionaries({}, optional={
    "order_id": nasty_text, "patient_id": nasty_text, "drug": nasty_text, "care_area": nasty_text,
    "concentration": numbers, "dose_rate": numbers, "vtbi_ml": numbers, "weight_kg": numbers,
    "dose_unit": units, "concentration_unit": units, "nonce": nasty_text,
})


def hl7_through(pki: Any, order_type: Any, payload: bytes) -> list[Any]:
    desk, rec = make_desk(order_type)
    reply, _ = answers.answer_hl7(payload, peer_of(pki), desk)
    assert_strict_hl7(reply)
    msa = hl7_orders.parse(reply).one("MSA")  # every answer is itself a well-formed HL7 message
    assert hl7_orders.component(msa[1], 1) in ("AA", "AE", "AR", "CA")
    assert (hl7_orders.component(msa[1], 1) == "AA") == bool(rec.orders)
    return rec.orders


def fhir_through(pki: Any, order_type: Any, body: bytes, headers: dict[str, str]) -> tuple[int, list[Any]]:
    desk, rec = make_desk(order_type)
    req = httpio.Request("POST", "/fhir/MedicationRequest",
                         {"content-type": "application/fhir+json", **{k.lower(): v for k, v in headers.items()}}, body)
    data, _ = answers.answer_fhir(req, peer_of(pki), desk)
    head, _, out = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert json.loads(out)["resourceType"] == "OperationOutcome"
    assert (status == 201) == bool(rec.orders)
    return status, rec.orders


@FUZZ
@given(changes=order_changes)
def test_fuzz_order_values_never_pass_an_invalid_order(pki, order_type, changes: dict[str, Any]) -> None:
    order = orders.make_order(principal="hospital.example", source="fhir", **{**BASE, **changes})
    try:
        body, headers = orders.fhir_request(order, orders.sign(order, pki.hospital_client.key))
    except (TypeError, ValueError):
        return  # the client itself cannot encode it
    for fwd in fhir_through(pki, order_type, body, headers)[1]:
        assert oracle_valid(fwd, pki)
    order = {**order, "source": "hl7v2"}
    try:
        payload = orders.hl7_message(order, orders.sign(order, pki.hospital_client.key), control_id="F1")
    except (TypeError, ValueError):
        return
    for fwd in hl7_through(pki, order_type, payload):
        assert oracle_valid(fwd, pki)


@FUZZ
@given(data=st.binary(max_size=4096))
def test_fuzz_random_bytes_as_hl7(pki, order_type, data: bytes) -> None:
    assert hl7_through(pki, order_type, data) == []


@FUZZ
@given(seg=st.integers(0, 8), fld=st.integers(0, 20), value=nasty_text)
def test_fuzz_hl7_field_replacement(pki, order_type, seg: int, fld: int, value: str) -> None:
    order = orders.make_order(principal="hospital.example", source="hl7v2", **BASE)
    msg = orders.hl7_message(order, orders.sign(order, pki.hospital_client.key), control_id="F2").decode()
    segs = [s.split("|") for s in msg.split("\r") if s]
    s = segs[seg % len(segs)]
    while len(s) <= fld:
        s.append("")
    s[fld] = value
    payload = "\r".join("|".join(x) for x in segs).encode("utf-8", "surrogatepass")
    for fwd in hl7_through(pki, order_type, payload):
        assert oracle_valid(fwd, pki)


@FUZZ
@given(cut=st.integers(0, 2000), junk=st.binary(max_size=64))
def test_fuzz_truncated_and_spliced_hl7(pki, order_type, cut: int, junk: bytes) -> None:
    order = orders.make_order(principal="hospital.example", source="hl7v2", **BASE)
    msg = orders.hl7_message(order, orders.sign(order, pki.hospital_client.key), control_id="F3")
    for fwd in hl7_through(pki, order_type, msg[:cut] + junk + msg[cut:]):
        assert oracle_valid(fwd, pki)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), nasty_text),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(nasty_text, children, max_size=4)),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@FUZZ
@given(pick=st.integers(0, 10**6), value=json_values, drop=st.booleans())
def test_fuzz_fhir_structure(pki, order_type, pick: int, value: Any, drop: bool) -> None:
    order = orders.make_order(principal="hospital.example", source="fhir", **BASE)
    body, headers = orders.fhir_request(order, orders.sign(order, pki.hospital_client.key))
    resource = json.loads(body)
    paths = _paths(resource)[1:]
    path = paths[pick % len(paths)]
    parent = resource
    for p in path[:-1]:
        parent = parent[p]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    status, fwd = fhir_through(pki, order_type, json.dumps(resource).encode(), headers)
    assert status in (201, 400, 403, 422)
    for f in fwd:
        assert oracle_valid(f, pki)


@FUZZ
@given(body=st.one_of(st.binary(max_size=2048), json_values.map(lambda v: json.dumps(v).encode())))
def test_fuzz_random_fhir_bodies(pki, order_type, body: bytes) -> None:
    status, fwd = fhir_through(pki, order_type, body, {})
    assert status in (400, 403, 422) and fwd == []


@FUZZ
@given(chunks=st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"Z", b"\x0b").replace(b"Y", b"\x1c\r")),
                       max_size=30))
def test_fuzz_mllp_framing_is_bounded(chunks: list[bytes]) -> None:
    r = FrameReader(max_frame=256)
    for chunk in chunks:
        for item in r.feed(chunk):
            assert isinstance(item, MllpError) or len(item) <= 256
        assert r.pending() <= 256 + 300


def test_oracle_is_not_vacuous(pki, order_type) -> None:
    # the fuzzers' invariant must be able to fail: an order that skipped our checks would be caught
    good = orders.make_order(principal="hospital.example", source="fhir", **BASE)
    sig = orders.sign(good, pki.hospital_client.key)
    struct = order_type(**good, cert=b"x", signature=sig)
    assert oracle_valid(struct, pki)
    bad = {**good, "dose_unit": "units/h"}  # units/h from mg/mL is nonsense, even if signed
    assert not oracle_valid(order_type(**bad, cert=b"x", signature=orders.sign(bad, pki.hospital_client.key)), pki)
    assert math.isfinite(struct.dose_rate)
