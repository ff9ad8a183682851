"""The hospital link over real TLS on loopback, in one process (auth stood in by FakeAuth)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hospital_client.client import client_context, msa
from septum_pump.hospital.pki import HospitalPki, issue, make_ca

from .conftest import basic_order


def test_valid_fhir_order_is_forwarded_signed_and_answered_201(make_link, client_for, pki: HospitalPki) -> None:
    h = make_link()
    c = client_for(h)
    status, body = c.send_fhir(basic_order(c, "fhir"))
    assert status == 201, body
    assert body["issue"][0]["severity"] == "information"
    [order] = h.auth.orders
    assert order.order_id == "ORD-1001" and order.source == "fhir" and order.dose_unit == "mg/h"
    assert order.principal == "hospital.example"
    assert order.cert == pki.hospital_client.cert.public_bytes(Encoding.DER)


def test_valid_hl7_order_is_forwarded_and_answered_rrg_o16_aa(make_link, client_for) -> None:
    h = make_link()
    c = client_for(h)
    reply = c.send_hl7(basic_order(c, "hl7v2", dose_unit="mcg/kg/min", dose_rate=0.05, weight_kg=72.5,
                                   concentration_unit="mcg/mL", concentration=50.0))
    assert reply.startswith("MSH|^~\\&|SEPTUM_PUMP") and "RRG^O16" in reply
    assert msa(reply)[0] == "AA"
    [order] = h.auth.orders
    assert (order.source, order.weight_kg, order.dose_rate) == ("hl7v2", 72.5, 0.05)


def test_auth_rejection_reaches_the_hospital_with_the_reason(make_link, client_for) -> None:
    h = make_link(answer="reject")
    h.auth.reason = "replayed nonce"
    c = client_for(h)
    status, body = c.send_fhir(basic_order(c, "fhir"))
    assert status == 403 and "replayed nonce" in body["issue"][0]["diagnostics"]
    code, text = msa(c.send_hl7(basic_order(c, "hl7v2", order_id="ORD-2")))
    assert code == "AE" and "replayed nonce" in text


def test_no_answer_from_auth_is_reported_as_pending(make_link, client_for) -> None:
    h = make_link(answer="silent", reply_timeout_s=0.2)
    c = client_for(h)
    status, body = c.send_fhir(basic_order(c, "fhir"))
    assert status == 202 and "no authorisation answer" in body["issue"][0]["diagnostics"]
    assert msa(c.send_hl7(basic_order(c, "hl7v2", order_id="ORD-3")))[0] == "CA"
    # the late answer is still recorded
    h.link.on_reply("ORD-3", True, "ok")
    h.audit.wait_for(lambda r: r[0] == "order_reply_late" and "ORD-3" in r[2])


def test_full_order_channel_is_busy_not_lost(make_link, client_for) -> None:
    h = make_link(answer="full")
    c = client_for(h)
    status, body = c.send_fhir(basic_order(c, "fhir"))
    assert status == 503 and "busy" in body["issue"][0]["diagnostics"]
    h.audit.wait_for(lambda r: r[0] == "order_busy")


def test_invalid_orders_are_rejected_with_reason_and_never_forwarded(make_link, client_for) -> None:
    h = make_link()
    c = client_for(h)
    status, body = c.send_fhir(basic_order(c, "fhir", dose_unit="furlongs/h"))
    assert status == 422 and "furlongs" in body["issue"][0]["diagnostics"]
    code, text = msa(c.send_hl7(basic_order(c, "hl7v2", dose_rate=-1.0)))
    assert code == "AE" and "dose_rate must be greater than zero" in text
    assert h.auth.orders == []
    assert h.audit.kinds().count("order_rejected") == 2


def test_tampered_signature_is_refused_before_auth(make_link, client_for) -> None:
    h = make_link()
    c = client_for(h)
    from hospital_client import orders

    order = basic_order(c, "fhir")
    signature = orders.sign(order, c.key)
    body, headers = orders.fhir_request({**order, "dose_rate": 5.0}, signature)  # rate changed after signing
    status, out = c.post_raw(body, headers)
    assert status == 403 and "signature" in out["issue"][0]["diagnostics"]
    assert h.auth.orders == []


def _handshake(port: int, ctx: ssl.SSLContext) -> bytes:
    """Connect, then try to use the session: the server refuses during or right after the handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"\x0bMSH|^~\\&|X\x1c\x0d")
            return tls.recv(1024)


def test_missing_client_certificate_is_refused_and_audited(make_link, hospital_dir: Path) -> None:
    h = make_link()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(hospital_dir / "hospital-ca.pem"))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _handshake(h.link.mllp.port, ctx)
    _, _, detail = h.audit.wait_for(lambda r: r[0] == "tls_refused")
    assert "CERTIFICATE" in detail.upper()
    assert h.auth.orders == []


def test_untrusted_client_certificate_is_refused_and_audited(make_link, hospital_dir: Path, tmp_path: Path
                                                              ) -> None:
    h = make_link()
    rogue_ca = make_ca("Rogue CA")
    rogue = issue(rogue_ca, "hospital.example", client=True)  # same name, wrong issuer
    rogue.write(tmp_path / "rogue.pem", tmp_path / "rogue.key")
    ctx = client_context(hospital_dir / "hospital-ca.pem", tmp_path / "rogue.pem", tmp_path / "rogue.key")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _handshake(h.link.https.port, ctx)
    _, _, detail = h.audit.wait_for(lambda r: r[0] == "tls_refused")
    assert "CERTIFICATE" in detail.upper()


def test_not_tls_at_all_is_refused(make_link) -> None:
    h = make_link()
    with socket.create_connection(("127.0.0.1", h.link.https.port), timeout=5) as raw:
        raw.sendall(b"POST /fhir/MedicationRequest HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        try:
            answer = raw.recv(1024)
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"HTTP")  # no HTTP is ever spoken before a TLS handshake
    h.audit.wait_for(lambda r: r[0] == "tls_refused")


def test_example_client_cli_sends_both_formats(make_link, hospital_dir: Path, capsys) -> None:
    from hospital_client.__main__ import main

    h = make_link()
    ports = ["--https-port", str(h.link.https.port), "--mllp-port", str(h.link.mllp.port)]
    assert main(["order", "--format", "fhir", "--dir", str(hospital_dir), *ports]) == 0
    assert main(["order", "--format", "hl7", "--dir", str(hospital_dir), *ports]) == 0
    assert main(["order", "--format", "hl7", "--dir", str(hospital_dir), "--unit", "furlong/h", *ports]) == 1
    assert "RRG^O16" in capsys.readouterr().out
    assert [o.source for o in h.auth.orders] == ["fhir", "hl7v2"]
