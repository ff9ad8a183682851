"""Test partition: a TLS listener on its interface's port, probed by septum.runtime.liveness as the model
declares. The first run answers a few handshakes and then wedges (its accept loop stops; the socket stays
open, so the heartbeat goes on and only the probe can tell); a restarted run serves for good."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from septum.runtime.liveness import Liveness
from septum.runtime.partition import Partition

ANSWER_BEFORE_WEDGING = 3


def _server_context(d: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "liveness-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(d / "cert.pem"), str(d / "key.pem"))
    return ctx


def main(p: Partition) -> None:
    probes = Liveness.from_config(p.config, p.fatal, lambda ev, sev, detail: p.audit(ev, severity=sev,
                                                                                      detail=detail))
    port = probes.specs["lan"].port
    assert port is not None
    marker = p.data_dir / "wedged-once"
    first_run = not marker.exists()
    marker.write_text("the first run wedged its listener\n")
    ctx = _server_context(p.data_dir)
    srv = socket.create_server(("127.0.0.1", port), backlog=16)

    def serve() -> None:
        answered = 0
        while not (first_run and answered >= ANSWER_BEFORE_WEDGING):
            conn, _ = srv.accept()
            conn.settimeout(2)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except OSError:
                pass
            answered += 1
        p.event("listener_wedged", answered=answered)
        # wedged: the listening socket stays open (kernel backlog), nothing accepts or answers any more

    threading.Thread(target=serve, name="wedge-accept", daemon=True).start()
    probes.watch("lan", "127.0.0.1", port)
    probes.start()
    p.event("serving", first_run=first_run, port=port)
