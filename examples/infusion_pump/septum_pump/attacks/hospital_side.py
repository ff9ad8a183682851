"""Scenarios from the hospital network: the real TLS listeners, attacked with the hospital client and raw sockets."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

from hospital_client.client import HospitalClient, msa  # package septum-hospital-client, a dependency
from hospital_client.orders import fhir_request, hl7_message, sign

from ..hospital.pki import HospitalPki, issue, make_ca
from .base import Check, Scenario, ScenarioResult, event_is
from .device import AttackRig

START, END = b"\x0b", b"\x1c\x0d"
IO_TIMEOUT = 10.0
TRUNCATED_ID = "MAL-TRUNC"  # the order whose frame is sent cut in half (and, whole, in other attempts)


def client(rig: AttackRig, cred_dir: Path | None = None) -> HospitalClient:
    d = cred_dir or rig.hospital_dir
    assert d is not None
    return HospitalClient("127.0.0.1", https_port=rig.https_port, mllp_port=rig.mllp_port, ca=d / "hospital-ca.pem",
                          cert=d / "client.pem", key=d / "client.key", server_name="127.0.0.1", timeout=IO_TIMEOUT)


def order(c: HospitalClient, source: str, oid: str, **over: Any) -> dict[str, Any]:
    fields = dict(order_id=oid, patient_id="MRN-42", drug="normal-saline", concentration=1.0,
                  concentration_unit="mL/mL", dose_rate=50.0, dose_unit="mL/h", vtbi_ml=100.0,
                  care_area="adult-med-surg")
    return c.order(source, **(fields | over))


def _tls_attempt(rig: AttackRig, port: int, ctx: ssl.SSLContext, payload: bytes) -> str:
    """Handshake and send; returns what happened (an exception text means refused)."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(payload)
                data = s.recv(4096)  # TLS 1.3: a refused client certificate surfaces at the first read
                return "answered: " + data[:60].decode("latin-1") if data else "closed without an answer"
        except (ssl.SSLError, OSError) as exc:
            return f"refused: {type(exc).__name__}: {exc}"[:160]


def untrusted_tls(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("hospital-untrusted-tls", "hospital server with an untrusted certificate or none")
    chk = Check(rig, res)
    assert rig.hospital_dir is not None
    ca = str(rig.hospital_dir / "hospital-ca.pem")
    with tempfile.TemporaryDirectory() as tmp:
        rogue = HospitalPki(ca=make_ca("Rogue CA"), pump=rig.pki.pump, hospital_client=rig.pki.hospital_client,
                            hospital_listener=rig.pki.hospital_listener)
        rogue_client = issue(rogue.ca, "hospital.example", client=True)  # same name, wrong issuer
        rogue_client.write(Path(tmp) / "rogue.pem", Path(tmp) / "rogue.key")
        self_signed = make_ca("hospital.example")  # a self-signed certificate with the hospital's name
        self_signed.write(Path(tmp) / "self.pem", Path(tmp) / "self.key")
        body, headers = b"{}", "POST /fhir/MedicationRequest HTTP/1.1\r\nHost: pump\r\nContent-Length: 2\r\n\r\n"
        http = headers.encode() + body
        mllp = START + b"MSH|^~\\&|EVIL|X|P|S|20240101000000||RGV^O15|1|P|2.5\r" + END
        marks: dict[str, tuple[int, float, int]] = {}
        for label, cert in (("client certificate from a rogue CA", "rogue"), ("self-signed client certificate", "self"),
                            ("no client certificate", None)):
            marks[label] = chk.mark()
            for port_name, port, payload in (("https", rig.https_port, http), ("mllp", rig.mllp_port, mllp)):
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.load_verify_locations(ca)
                if cert is not None:
                    ctx.load_cert_chain(str(Path(tmp) / f"{cert}.pem"), str(Path(tmp) / f"{cert}.key"))
                out = _tls_attempt(rig, port, ctx, payload)
                chk.expect(f"{label} on {port_name}", out.startswith("refused") or out.startswith("closed"),
                           "TLS 1.3 mutual authentication against the provisioned hospital CA", out)
        for port_name, port, payload in (("https", rig.https_port, http), ("mllp", rig.mllp_port, mllp)):
            with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
                s.sendall(payload)
                try:
                    data = s.recv(4096)
                except OSError as exc:
                    data = f"reset {exc}".encode()
            plain_answer = data.startswith(b"HTTP/") or data.startswith(START)
            chk.expect(f"plain TCP (no TLS) order on {port_name}", not plain_answer,
                       "TLS-only listener (plaintext is a failed handshake)", f"answered in clear: {data[:40]!r}")
    # the link records the first refusal in each second with its reason and summarises the rest ("N more
    # TLS handshake(s) refused"): each group of attempts must leave a refusal record made after it began
    for label, mark in marks.items():
        rec = chk.since(mark, event_is("tls_refused", partition="network"))
        chk.expect(f"{label}: refusal recorded", rec is not None,
                   f"audit #{(rec or {}).get('seq')} tls_refused: {_text(rec)}"[:140],
                   "no tls_refused record made after these attempts began")
    return chk.finish(lambda r: event_is("tls_refused", partition="network")(r) and "CERTIFICATE_VERIFY_FAILED" in
                      _text(r).upper(), names=("tls_refused naming the untrusted certificate",))


def _text(rec: dict[str, Any] | None) -> str:
    return "" if rec is None else f"{rec.get('message', '')} {rec.get('detail', '')}"


def forged(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("hospital-forged-order", "orders with forged or mismatched signatures")
    chk = Check(rig, res)
    c = client(rig)
    try:
        from cryptography.hazmat.primitives.asymmetric import ec

        other = ec.generate_private_key(ec.SECP256R1())
        o = order(c, "fhir", "FORGE-1", dose_rate=999.0)
        body, headers = fhir_request(o, sign(o, other))
        status, out = c.post_raw(body, headers)
        chk.expect("FHIR order signed by a key that is not the client certificate's", status == 403,
                   f"signature check against the TLS client certificate ({status})", f"HTTP {status} {out}")
        o = order(c, "fhir", "FORGE-2")
        sig = sign(o, c.key)
        o2 = dict(o, dose_rate=999.0)  # altered after signing
        body, headers = fhir_request(o2, sig)
        status, out = c.post_raw(body, headers)
        chk.expect("FHIR order altered after signing (rate 50 -> 999 mL/h)", status == 403,
                   f"signature over the canonical order fields ({status})", f"HTTP {status} {out}")
        body, headers = fhir_request(order(c, "fhir", "FORGE-3"), b"")
        headers.pop("X-Septum-Order-Signature")
        status, out = c.post_raw(body, headers)
        chk.expect("unsigned FHIR order", status in (400, 403, 422), f"signature required ({status})",
                   f"HTTP {status} {out}")
        o = order(c, "hl7v2", "FORGE-4")
        sig = sign(dict(o, source="fhir"), c.key)  # signed for another transport
        code, text = msa(c.send_hl7_raw(hl7_message(o, sig, control_id="ATK00001")))
        chk.expect("HL7 order whose signature was made for FHIR", code in ("AE", "AR"),
                   f"signature binds the transport (MSA {code}: {text[:60]})", f"MSA {code} {text}")
    finally:
        c.close()
    return chk.finish(event_is("order_rejected", partition="network", contains="signature"),
                      names=("order_rejected (signature)",))


def replay(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("replayed-orders", "replayed signed orders (from the network and from inside)")
    chk = Check(rig, res)
    c = client(rig)
    try:
        o = order(c, "hl7v2", "REPLAY-1")
        msg = hl7_message(o, sign(o, c.key), control_id="ATK00010")
        code, text = msa(c.send_hl7_raw(msg))
        if code not in ("AA", "CA"):
            res.error = f"the legitimate order was not accepted ({code} {text}): cannot test replay"
            return chk.finish()
        code, text = msa(c.send_hl7_raw(msg))  # byte-for-byte the same message again
        chk.expect("the same signed HL7 order sent again over TLS", code == "AE",
                   f"auth's nonce replay guard ({text[:70]})", f"MSA {code} {text}")
        o2 = order(c, "fhir", "REPLAY-2")
        body, headers = fhir_request(o2, sign(o2, c.key))
        status, _ = c.post_raw(body, headers)
        status2, out2 = c.post_raw(body, headers)
        chk.expect("the same signed FHIR order posted again", status in (201, 202) and status2 == 403,
                   f"auth's nonce replay guard ({out2.get('issue', [{}])[0].get('diagnostics', '')[:60]})",
                   f"first {status}, replay {status2}")
        old = order(c, "fhir", "REPLAY-3", sent_at_ms=int(o["sent_at_ms"]) - 3_600_000)
        body, headers = fhir_request(old, sign(old, c.key))
        status, out = c.post_raw(body, headers)
        chk.expect("a correctly signed order sent an hour ago (captured and held back)", status == 403,
                   "auth's order age limit", f"HTTP {status} {out}")
    finally:
        c.close()
    ev = rig.inside("replay", wait_s=2.0)
    replies = json.loads(ev.fields.get("replies", "{}"))
    for name, outcome, oid in [list(map(str, r)) for r in json.loads(ev.fields.get("results", "[]"))]:
        verdict = replies.get(oid)
        chk.expect(f"compromised network partition: {name}", outcome == "blocked" or (verdict is not None
                   and not verdict[0]), f"auth: {(verdict or ['', 'not sent'])[1]}"[:100], f"auth answered {verdict}")
    return chk.finish(event_is("auth.denied", partition="auth", contains="nonce"),
                      names=("auth.denied (replayed nonce)",))


def malformed(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("hospital-malformed", "malformed and hostile HL7/FHIR from an authenticated client")
    chk = Check(rig, res)
    c = client(rig)
    big = "A" * 100_000
    fmt = "%s%n%x%p{0}{__class__}" * 4
    try:
        def fhir(label: str, mutate: Any, ctype: str = "application/fhir+json", raw: bytes | None = None) -> None:
            o = order(c, "fhir", f"MAL-{len(res.tried)}")
            body, headers = fhir_request(o, sign(o, c.key))
            if raw is not None:
                body = raw
            else:
                doc = json.loads(body)
                mutate(doc)
                body = json.dumps(doc).encode()
            headers["Content-Type"] = ctype
            try:
                status, out = c.post_raw(body, headers)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                c.close()  # the pump dropped the connection (as it should): a fresh one for the next attempt
                status, out = 0, {"error": str(exc)}
            diag = (out.get("issue") or [{}])[0].get("diagnostics", "") if isinstance(out, dict) else ""
            chk.expect(f"FHIR: {label}", status in (400, 403, 413, 415, 422, 0),
                       f"network intake refused it ({status}: {diag[:50]})", f"HTTP {status}")

        def set_rate(v: Any) -> Any:
            return lambda d: d["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"].__setitem__("value", v)

        fhir("100 kB drug code", lambda d: d["contained"][0]["code"]["coding"][0].__setitem__("code", big))
        fhir("100 kB patient reference", lambda d: d["subject"].__setitem__("reference", "Patient/" + big))
        fhir("format strings in the drug", lambda d: d["contained"][0]["code"]["coding"][0].__setitem__("code", fmt))
        fhir("rate as a string", set_rate("fifty"))
        fhir("rate NaN", set_rate(float("nan")))
        fhir("negative rate", set_rate(-50.0))
        fhir("rate 1e308", set_rate(1e308))
        fhir("status bogus", lambda d: d.__setitem__("status", "bogus"))
        fhir("rate in furlongs/fortnight", lambda d: d["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]
             .__setitem__("code", "[fur]/[fortnight]"))
        fhir("not JSON", None, raw=b"{\"resourceType\": \"MedicationRequest\", ")
        fhir("JSON nested 10000 deep", None, raw=b"[" * 10000 + b"]" * 10000)
        fhir("wrong content type", lambda d: None, ctype="text/plain")

        def hl7(label: str, payload: bytes, framed: bool = False) -> None:
            try:
                reply = c.send_hl7_raw(payload, framed=framed)
                code, text = msa(reply)
            except (OSError, ConnectionError) as exc:
                c.close()  # the pump dropped the connection: reconnect for the next attempt
                code, text = "closed", str(exc)
            chk.expect(f"HL7: {label}", code in ("AE", "AR", "closed"), f"network intake refused it ({code}: "
                       f"{text[:50]})", f"MSA {code} {text}")

        def msg(**over: Any) -> bytes:
            o = order(c, "hl7v2", f"MAL-{len(res.tried)}", **over)
            return hl7_message(o, sign(o, c.key), control_id=f"ATK{len(res.tried):05d}")

        good = msg(order_id=TRUNCATED_ID)
        hl7("100 kB drug field", good.replace(b"normal-saline^normal-saline", big.encode() + b"^x"))
        hl7("format strings in the patient id", good.replace(b"MRN-42", b"%s%n%x%p"))
        hl7("rate field not a number", good.replace(b"|50.0|mL/h", b"|fifty|mL/h"))
        hl7("wrong message type (ADT^A01)", good.replace(b"RGV^O15^RGV_O15", b"ADT^A01^ADT_A01"))
        hl7("control characters", good.replace(b"MRN-42", b"MRN\x00\x07\x1b42"))
        hl7("not UTF-8", good.replace(b"MRN-42", b"MRN\xff\xfe42"))
        hl7("frame over 64 KiB", START + b"MSH|" + b"A" * 70_000 + END, framed=True)
        # a truncated frame: start byte, half a message, then the connection closes mid-frame
        # the evidence: the link's own record of the unfinished frame, made after it was sent, and no order
        # from those bytes reaching auth
        truncated = "HL7: truncated MLLP frame (connection closed mid-frame)"
        try:
            c.close()
            c._mllp = None
            mark = chk.mark()
            raw = socket.create_connection(("127.0.0.1", rig.mllp_port), timeout=IO_TIMEOUT)
            s = c.ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            s.sendall(START + good[: len(good) // 2])
            s.close()
            rec = chk.since(mark, event_is("mllp_rejected", partition="network", contains="inside an MLLP frame"))
            forwarded = chk.since(mark, event_is("auth.", partition="auth", contains=TRUNCATED_ID), timeout=0.5)
            chk.expect(truncated, rec is not None and forwarded is None,
                       f"MLLP framing: {(rec or {}).get('message', '')}"[:120],
                       "no mllp_rejected record for the unfinished frame" if rec is None
                       else f"the half frame reached auth: {forwarded}")
        except OSError as exc:
            chk.got_through(truncated, f"could not even send it: {exc}")
        hl7("bytes outside a frame", b"garbage before the frame" + START + good + END, framed=True)
        # the link still serves the hospital after all of that
        try:
            code, text = msa(c.send_hl7_raw(msg(order_id="MAL-OK")))
        except OSError as exc:  # the link is down: the hostile input took it out
            code, text = "no answer", f"{type(exc).__name__}: {exc}"
        chk.expect("a valid order after the hostile ones", code in ("AA", "CA"),
                   "the link stayed up (valid order accepted, pre-filled only)", f"MSA {code} {text}")
    finally:
        c.close()
    return chk.finish(event_is("order_rejected", partition="network"),
                      event_is("mllp_rejected", "http_rejected", partition="network"),
                      names=("order_rejected", "mllp_rejected/http_rejected"))


SCENARIOS = [
    Scenario("hospital-untrusted-tls", "hospital server with an untrusted certificate, none, or plain TCP",
             "client certificate from a rogue CA with the hospital's name, self-signed, none; plaintext HTTP/MLLP",
             "TLS 1.3 with client certificates chained to the provisioned hospital CA", untrusted_tls),
    Scenario("hospital-forged-order", "forged order signatures",
             "signed with another key, altered after signing (999 mL/h), unsigned, signed for another transport",
             "ECDSA signature over the canonical fields, checked by network and again by auth", forged),
    Scenario("replayed-orders", "replayed orders",
             "same signed HL7/FHIR order twice, an old order held back an hour, and the compromised network "
             "partition replaying a captured order verbatim and with a changed rate",
             "auth's nonce replay guard and age limit; the signature", replay),
    Scenario("hospital-malformed", "malformed and hostile HL7 v2 / FHIR",
             "100 kB fields, format strings, wrong types, NaN/negative/huge rates, bogus codes, broken and deep "
             "JSON, wrong content type, wrong message type, control characters, non-UTF-8, 70 kB frame, "
             "truncated frame, bytes outside a frame",
             "network intake: FHIR/HL7 parsers plus the pump's own validation and MLLP framing limits", malformed),
]
