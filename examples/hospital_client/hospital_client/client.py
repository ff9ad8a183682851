"""Sending orders to the pump over mutual TLS: FHIR over HTTPS (keep-alive) and HL7 v2 over MLLP."""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import orders

START, END = b"\x0b", b"\x1c\x0d"


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def read_frame(sock: ssl.SSLSocket, buf: bytearray) -> bytes:
    while True:
        end = buf.find(END)
        if end >= 0:
            start = buf.find(START)
            payload = bytes(buf[start + 1 : end])
            del buf[: end + 2]
            return payload
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the pump closed the MLLP connection")
        buf += chunk


class HospitalClient:
    def __init__(self, host: str, *, https_port: int, mllp_port: int, ca: Path, cert: Path, key: Path,
                 server_name: str | None = None, timeout: float = 10.0) -> None:
        self.host = host
        self.https_port = https_port
        self.mllp_port = mllp_port
        self.server_name = server_name or host
        self.timeout = timeout
        self.ctx = client_context(ca, cert, key)
        self.identity = orders.identity_of(x509.load_pem_x509_certificate(Path(cert).read_bytes()))
        loaded = serialization.load_pem_private_key(Path(key).read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError("the hospital key must be ECDSA P-256 (orders are signed with ECDSA-P256-SHA256)")
        self.key = loaded
        self._http: http.client.HTTPSConnection | None = None
        self._mllp: ssl.SSLSocket | None = None
        self._mllp_buf = bytearray()
        self._ids = itertools.count(1)

    def order(self, source: str, **fields: Any) -> dict[str, Any]:
        return orders.make_order(principal=self.identity, source=source, **fields)

    # ------------------------------------------------------------------ FHIR
    def post_raw(self, body: bytes, headers: dict[str, str], path: str = "/fhir/MedicationRequest"
                 ) -> tuple[int, dict[str, Any]]:
        for attempt in (0, 1):  # a keep-alive connection the pump closed is reopened once
            if self._http is None:
                self._http = http.client.HTTPSConnection(self.host, self.https_port, context=self.ctx,
                                                         timeout=self.timeout)
            try:
                self._http.request("POST", path, body=body, headers=headers)
                resp = self._http.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._http.close()
                self._http = None
                if attempt:
                    raise
                continue
            if resp.getheader("Connection", "").lower() == "close":
                self._http.close()
                self._http = None
            return resp.status, json.loads(data) if data else {}
        raise AssertionError("unreachable")

    def send_fhir(self, order: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body, headers = orders.fhir_request(order, orders.sign(order, self.key))
        return self.post_raw(body, headers)

    # ------------------------------------------------------------------ HL7 v2
    def send_hl7_raw(self, payload: bytes, *, framed: bool = False) -> str:
        if self._mllp is None:
            raw = socket.create_connection((self.host, self.mllp_port), timeout=self.timeout)
            self._mllp = self.ctx.wrap_socket(raw, server_hostname=self.server_name)
            self._mllp_buf = bytearray()
        self._mllp.sendall(payload if framed else START + payload + END)
        return read_frame(self._mllp, self._mllp_buf).decode("utf-8", "replace")

    def send_hl7(self, order: dict[str, Any]) -> str:
        msg = orders.hl7_message(order, orders.sign(order, self.key), control_id=f"HC{next(self._ids):08d}")
        return self.send_hl7_raw(msg)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._mllp is not None:
            self._mllp.close()
            self._mllp = None


def msa(reply: str) -> tuple[str, str]:
    """(MSA-1 acknowledgement code, MSA-3 text / ERR-8 reason) of an HL7 reply."""
    code, text = "", ""
    for seg in reply.split("\r"):
        f = seg.split("|")
        if f[0] == "MSA":
            code = f[1] if len(f) > 1 else ""
            text = f[3] if len(f) > 3 else ""
        if f[0] == "ERR" and len(f) > 8 and f[8]:
            text = f[8]
    return code, text
