"""Provisioning of the hospital link's TLS material, generated at run time (nothing is committed).

One hospital CA issues: the pump's certificate (server for the hospital's HTTPS/MLLP clients, client for
the pump's outbound connection to the hospital's event listener) and the hospital's certificates (the
order-sending client, the event listener's server). Keys are ECDSA P-256: every TLS 1.3 stack and HSM
speaks it, and the same key signs the hospital's orders end to end (ECDSA with SHA-256 over
``septum.services.signed_fields.canonical``), so auth verifies an order against the certificate the TLS
handshake already checked.

``provision_network`` writes the folder the runtime copies into the network partition's data dir:
``server.pem`` (pump certificate), ``server.key``, ``hospital-ca.pem`` and ``hospital.json`` (ports and
the outbound target, read over the model's ``config``).
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = _dt.timedelta(days=30)


@dataclass(frozen=True)
class Credential:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def write(self, cert_path: Path, key_path: Path) -> None:
        cert_path.write_bytes(self.cert_pem)
        _write_secret(key_path, self.key_pem)


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def make_ca(common_name: str = "Septum demo hospital CA") -> Credential:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Credential(cert, key)


def issue(ca: Credential, identity: str, *, server: bool = False, client: bool = False,
          ips: tuple[str, ...] = (), validity: _dt.timedelta = VALIDITY) -> Credential:
    """A leaf certificate whose identity (SAN DNS name and CN) is ``identity``."""
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    if not usages:
        raise ValueError("a certificate must be for a server, a client or both")
    now = _now()
    san: list[x509.GeneralName] = [x509.DNSName(identity)]
    san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
        .issuer_name(ca.cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Credential(cert, key)


@dataclass
class HospitalPki:
    """Everything a test or demo needs: the CA, the pump, the hospital's order client and event listener."""

    ca: Credential
    pump: Credential
    hospital_client: Credential
    hospital_listener: Credential
    extra: dict[str, Credential] = field(default_factory=dict)

    @classmethod
    def generate(cls, *, pump_id: str = "pump-0001.septum.example",
                 hospital_id: str = "hospital.example") -> HospitalPki:
        ca = make_ca()
        return cls(
            ca=ca,
            pump=issue(ca, pump_id, server=True, client=True, ips=("127.0.0.1",)),
            hospital_client=issue(ca, hospital_id, client=True),
            hospital_listener=issue(ca, f"events.{hospital_id}", server=True, ips=("127.0.0.1",)),
        )

    def write_hospital(self, folder: Path) -> Path:
        """The hospital side's files (for ``examples/hospital_client``): CA, client and listener credentials."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hospital-ca.pem").write_bytes(self.ca.cert_pem)
        self.hospital_client.write(folder / "client.pem", folder / "client.key")
        self.hospital_listener.write(folder / "listener.pem", folder / "listener.key")
        return folder


KEY_PASSPHRASE = "server.key.pass"  # noqa: S105 - the file name of the sealed passphrase of server.key


def provision_network(folder: Path, pki: HospitalPki, *, https_port: int = 0, mllp_port: int = 0,
                      bind: str = "127.0.0.1", outbound: dict[str, Any] | None = None,
                      device_key: Any = None) -> Path:
    """Write the network partition's provisioning folder (the runtime copies it into its data dir).

    ``outbound`` is ``{"mode": "mllp" | "fhir", "host": ..., "port": ..., "server_name": ...}`` (FHIR also
    takes ``"base_path"``); without it, events are kept in the on-disk buffer until one is provisioned.
    Port 0 lets the partition pick a free port and report it in its ``listening`` event.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if device_key is None:
        pki.pump.write(folder / "server.pem", folder / "server.key")
    else:
        # at rest under the device key (septum.crypto.secrets_at_rest): the key file is encrypted PKCS#8
        # with a random passphrase, and only the passphrase's sealed form is stored beside it; the
        # supervisor unseals it at start and the partition gives it to ssl (which needs a key file)
        from septum.crypto.secrets_at_rest import write_sealed

        passphrase = secrets.token_urlsafe(32).encode()
        (folder / "server.pem").write_bytes(pki.pump.cert_pem)
        _write_secret(folder / "server.key", pki.pump.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase)))
        write_sealed(folder / KEY_PASSPHRASE, passphrase, device_key, "network")
    (folder / "hospital-ca.pem").write_bytes(pki.ca.cert_pem)
    settings: dict[str, Any] = {"bind": bind, "https_port": https_port, "mllp_port": mllp_port}
    if outbound is not None:
        settings["outbound"] = outbound
    (folder / "hospital.json").write_text(json.dumps(settings, indent=2))
    return folder
