"""TLS for the hospital link: TLS 1.3 only, mutual authentication against the provisioned hospital CA.

The handshake itself refuses a client without a certificate or with one the CA did not issue (so no
order parser ever sees bytes from an unauthenticated peer). The peer's identity is read the same way the
auth service reads it (SAN DNS name, then URI, then subject CN), and its certificate (DER) travels with
each order so auth can check it again, with the signature, on its own.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from septum.services.mtls import peer_identity, server_context
from septum.services.signed_fields import canonical

__all__ = ["client_context", "peer_identity", "server_context", "verify_order_signature"]

SIGNATURE_ALGORITHM = "ECDSA-P256-SHA256"


def client_context(ca_pem: Path, cert_pem: Path, key_pem: Path, key_password: bytes | None = None) -> ssl.SSLContext:
    """For the pump's outbound connection to the hospital's event listener (hostname checked)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=str(ca_pem))
    ctx.load_cert_chain(str(cert_pem), str(key_pem), password=key_password)
    return ctx


def verify_order_signature(order_fields: dict[str, object], cert_der: bytes, signature: bytes) -> str | None:
    """None if ``signature`` is the peer's ECDSA P-256/SHA-256 signature over the order, else the reason.

    Auth verifies again (this partition is not trusted); checking here only gives the hospital a prompt,
    precise answer instead of a silent refusal further in."""
    try:
        key = x509.load_der_x509_certificate(cert_der).public_key()
    except ValueError:
        return "the peer certificate cannot be read"
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return f"the peer certificate's key is not ECDSA P-256 (orders are signed with {SIGNATURE_ALGORITHM})"
    try:
        key.verify(signature, canonical(order_fields), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "the order signature does not verify with the peer's certificate"
    return None
