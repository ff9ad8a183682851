"""Machine principals over mutual TLS: the peer's certificate must chain to the device's provisioned CA,
and its identity (a SAN DNS name or URI, else the subject CN) must be pinned to a machine role.

The pin table is provisioning data, like PINs: no CA and no identity is built in. ``verify_peer`` is
pure (certificates and a time in, identity or a reason out), so the TLS socket layer (``server_context``)
only has to hand it the chain the handshake already checked against the same CA.
"""

from __future__ import annotations

import datetime as _dt
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from septum.errors import SeptumError
from septum.model.schema import Model

MTLS_FACTOR = "mutual-tls"


class MtlsError(SeptumError):
    """The peer is refused, or the provisioning is unusable; the message says why."""


@dataclass(frozen=True)
class MachineIdentity:
    identity: str
    role: str


def load_certificates(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise MtlsError(f"{what}: not PEM certificates") from None
    if not certs:
        raise MtlsError(f"{what}: no certificate")
    return certs


def peer_identity(cert: x509.Certificate) -> str:
    """The identity a peer presents: its first SAN DNS name or URI, else its common name ("" if none)."""
    names = _identities(cert)
    return names[0] if names else ""


def _identities(cert: x509.Certificate) -> list[str]:
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        pass
    names += [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


class MachinePins:
    def __init__(self, model: Model, ca_certs: Sequence[x509.Certificate], pins: dict[str, str]) -> None:
        if not ca_certs:
            raise MtlsError("no CA provisioned: machine principals cannot authenticate")
        for identity, role_name in pins.items():
            role = model.roles.get(role_name)
            if role is None:
                raise MtlsError(f"pin {identity!r}: role {role_name!r} is not in the model")
            if role.kind != "machine" or MTLS_FACTOR not in role.authenticates_with:
                raise MtlsError(f"pin {identity!r}: role {role_name!r} is not a machine role using {MTLS_FACTOR}")
        self.ca_certs = list(ca_certs)
        self.pins = dict(pins)
        self._store = Store(self.ca_certs)

    @classmethod
    def load(cls, model: Model, ca_pem: Path, pins: dict[str, str]) -> MachinePins:
        try:
            data = Path(ca_pem).read_bytes()
        except OSError as exc:
            raise MtlsError(f"{ca_pem}: cannot read ({exc.strerror})") from None
        return cls(model, load_certificates(data, str(ca_pem)), pins)

    def verify_peer(self, chain: Sequence[x509.Certificate], now: _dt.datetime) -> MachineIdentity:
        """``chain`` is the peer's leaf first, then any intermediates."""
        if not chain:
            raise MtlsError("peer presented no certificate")
        verifier = PolicyBuilder().store(self._store).time(now).build_client_verifier()
        try:
            verifier.verify(chain[0], list(chain[1:]))
        except VerificationError as exc:
            raise MtlsError(f"peer certificate does not chain to the provisioned CA: {exc}") from None
        for name in _identities(chain[0]):
            if name in self.pins:
                return MachineIdentity(name, self.pins[name])
        raise MtlsError(f"peer identity {', '.join(_identities(chain[0])) or '(none)'} is not pinned to a role")


def server_context(ca_pem: Path, cert_pem: Path, key_pem: Path, key_password: bytes | None = None) -> ssl.SSLContext:
    """TLS 1.3 server context that demands a client certificate from the provisioned CA. ``key_password``:
    the key file is encrypted (at rest under the device key: secrets_at_rest.py)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(ca_pem))
    ctx.load_cert_chain(str(cert_pem), str(key_pem), password=key_password)
    return ctx
