"""Machine principals: chain to the provisioned CA and a pinned identity, or refused with a reason."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from septum.model import Model
from septum.services.mtls import MachinePins, MtlsError, server_context

# Certificates are made at test time around the real clock, since the TLS handshake checks validity too.
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str = "Hospital Device CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], dns: str, *, server: bool = False,
          days: int = 30) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(dns)).issuer_name(ca[0].subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), critical=False)
        .sign(ca[1], hashes.SHA256())
    )
    return cert, key


def test_pinned_identity_maps_to_role(device_model: Model) -> None:
    ca = _ca()
    pins = MachinePins(device_model, [ca[0]], {"his.hospital.example": "hospital_server"})
    ident = pins.verify_peer([_leaf(ca, "his.hospital.example")[0]], NOW)
    assert (ident.identity, ident.role) == ("his.hospital.example", "hospital_server")


def test_refusals(device_model: Model) -> None:
    ca, other = _ca(), _ca("Attacker CA")
    pins = MachinePins(device_model, [ca[0]], {"his.hospital.example": "hospital_server"})
    with pytest.raises(MtlsError, match="does not chain"):
        pins.verify_peer([_leaf(other, "his.hospital.example")[0]], NOW)
    with pytest.raises(MtlsError, match="not pinned"):
        pins.verify_peer([_leaf(ca, "laptop.hospital.example")[0]], NOW)
    with pytest.raises(MtlsError, match="does not chain"):
        pins.verify_peer([_leaf(ca, "his.hospital.example", days=1)[0]], NOW + dt.timedelta(days=10))
    with pytest.raises(MtlsError, match="no certificate"):
        pins.verify_peer([], NOW)


def test_bad_provisioning(device_model: Model, tmp_path: Path) -> None:
    ca = _ca()
    with pytest.raises(MtlsError, match="no CA"):
        MachinePins(device_model, [], {})
    with pytest.raises(MtlsError, match="not a machine role"):
        MachinePins(device_model, [ca[0]], {"x": "clinician"})
    with pytest.raises(MtlsError, match="not in the model"):
        MachinePins(device_model, [ca[0]], {"x": "root"})
    (tmp_path / "ca.pem").write_text("garbage")
    with pytest.raises(MtlsError, match="not PEM"):
        MachinePins.load(device_model, tmp_path / "ca.pem", {})


def _pem(tmp_path: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    (tmp_path / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        (tmp_path / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / f"{name}.crt"


def test_tls_handshake_then_pin(device_model: Model, tmp_path: Path) -> None:
    """A real TLS 1.3 handshake over a socket pair; the peer chain from it is mapped to a role."""
    ca = _ca()
    server = _leaf(ca, "pump.local", server=True)
    client = _leaf(ca, "his.hospital.example")
    ca_pem = _pem(tmp_path, "ca", ca[0])
    _pem(tmp_path, "server", *server)
    _pem(tmp_path, "client", *client)
    sctx = server_context(ca_pem, tmp_path / "server.crt", tmp_path / "server.key")
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(cafile=str(ca_pem))
    cctx.load_cert_chain(str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
    errors: list[BaseException] = []

    def connect(sock: socket.socket) -> None:
        try:
            cctx.wrap_socket(sock, server_hostname="pump.local").close()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    with a, b:
        t = threading.Thread(target=connect, args=(b,))
        t.start()
        with sctx.wrap_socket(a, server_side=True) as tls:
            der = tls.getpeercert(binary_form=True)
        t.join(timeout=10)
    assert not errors and der is not None
    pins = MachinePins(device_model, [ca[0]], {"his.hospital.example": "hospital_server"})
    assert pins.verify_peer([x509.load_der_x509_certificate(der)], NOW).role == "hospital_server"
