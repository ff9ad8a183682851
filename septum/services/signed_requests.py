"""Machine principals on a request: certificate to role, end-to-end signature, and replay by nonce.

A signed request (a hospital order) carries ``cert`` (DER), ``signature`` (ECDSA P-256 / SHA-256 by the
certificate's key over ``signed_fields.canonical`` of every other field), ``nonce`` and ``sent_at_ms``.
The partition that carried it (network) is not trusted: auth checks all of it again here.

``NonceGuard`` is the replay check: a request, identified by its sender and a random nonce, is accepted once
within its lifetime;
seen nonces are remembered until they expire (bounded; when full, new requests are refused rather than
old nonces forgotten) and persisted, so a restart of auth does not open a replay window.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from septum.errors import SeptumError

from .mtls import MachineIdentity, MachinePins, MtlsError
from .service_io import write_state
from .signed_fields import canonical


class RequestRefused(SeptumError):
    """The signed request is refused; the message is the reason."""


def verify_signed(fields: Mapping[str, Any], pins: MachinePins | None, now: _dt.datetime) -> MachineIdentity:
    if pins is None:
        raise RequestRefused("no hospital CA provisioned on this device: machine principals cannot authenticate")
    cert_der, signature = fields.get("cert"), fields.get("signature")
    if not isinstance(cert_der, bytes) or not cert_der:
        raise RequestRefused("request carries no certificate")
    if not isinstance(signature, bytes) or not signature:
        raise RequestRefused("request is not signed")
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError:
        raise RequestRefused("certificate is not valid DER") from None
    try:
        who = pins.verify_peer([cert], now)
    except MtlsError as exc:
        raise RequestRefused(str(exc)) from None
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise RequestRefused("certificate key is not ECDSA P-256")
    try:
        key.verify(signature, canonical(fields), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise RequestRefused("signature does not verify: the request was altered or signed by another key") from None
    claimed = fields.get("principal")
    if isinstance(claimed, str) and claimed and claimed != who.identity:
        raise RequestRefused(f"request names principal {claimed!r} but is signed by {who.identity!r}")
    return who


@dataclass(frozen=True)
class NonceVerdict:
    ok: bool
    reason: str = ""


class NonceGuard:
    def __init__(self, path: Path | None, *, max_lifetime_s: float = 30.0, clock_skew_s: float = 5.0,
                 max_entries: int = 4096) -> None:
        self.path = path
        self.max_lifetime_s = max_lifetime_s
        self.clock_skew_s = clock_skew_s
        self.max_entries = max_entries
        self._seen: dict[str, float] = {}  # "sender\0nonce" -> expiry (wall seconds)
        self.unreadable = False
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_bytes())
                self._seen = {str(k): float(v) for k, v in data.get("seen", {}).items()}
            except (OSError, ValueError, AttributeError, TypeError):
                # Fail closed: without the memory of seen nonces, refuse everything sent before now.
                self.unreadable = True
        self.started_at: float | None = None

    def check(self, sender: str, nonce: str, sent_at: float, now: float) -> NonceVerdict:
        if not nonce or len(nonce) < 8:
            return NonceVerdict(False, "missing or too short nonce")
        if sent_at > now + self.clock_skew_s:
            return NonceVerdict(False, "sent in the future (clock skew?)")
        if now > sent_at + self.max_lifetime_s + self.clock_skew_s:
            return NonceVerdict(False, f"expired (older than {self.max_lifetime_s:.0f} s)")
        if self.unreadable:
            if self.started_at is None:
                self.started_at = now
            if sent_at < self.started_at:
                return NonceVerdict(False, "replay state was unreadable: requests sent before this start are refused")
        self._seen = {k: t for k, t in self._seen.items() if t >= now}
        key = f"{sender}\0{nonce}"
        if key in self._seen:
            return NonceVerdict(False, "replayed request (nonce already seen)")
        if len(self._seen) >= self.max_entries:
            return NonceVerdict(False, "too many requests in flight; retry later")
        self._seen[key] = sent_at + self.max_lifetime_s + self.clock_skew_s
        if self.path is not None:
            write_state(self.path, json.dumps({"seen": self._seen}).encode())
        return NonceVerdict(True)
