"""TLS listeners for the hospital link (HTTPS for FHIR, MLLP for HL7 v2), one thread per connection.

A connection is served only after a TLS 1.3 handshake in which the client proved a certificate from the
hospital CA; a refused handshake (no certificate, an untrusted one, not TLS at all) is audited with the
peer address and the TLS reason and the connection is closed. Connections are capped and time out when
idle, so a flood of sockets costs bounded threads.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable

from cryptography import x509

from . import answers, httpio
from .intake import Audit, OrderDesk, Peer
from .mllp import FrameReader, MllpError, frame
from .tls import peer_identity

HANDSHAKE_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 16

Serve = Callable[[ssl.SSLSocket, Peer], None]


class TlsListener:
    def __init__(self, name: str, bind: str, port: int, ctx: ssl.SSLContext, serve: Serve, audit: Audit,
                 *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.name = name
        self.ctx = ctx
        self.serve = serve
        self.audit = audit
        self._slots = threading.BoundedSemaphore(max_connections)
        self._sock = socket.create_server((bind, port), backlog=64)
        self.port: int = self._sock.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name=f"{name}-accept", daemon=True)

    def start(self) -> TlsListener:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, addr = self._sock.accept()
            except OSError:
                if self._closed:
                    return
                continue
            where = f"{addr[0]}:{addr[1]}"
            if not self._slots.acquire(blocking=False):
                self.audit("connection_refused", "warning", f"{self.name}: {where} refused, {MAX_CONNECTIONS} "
                           "connections already open")
                conn.close()
                continue
            threading.Thread(target=self._connection, args=(conn, where), name=f"{self.name}-conn",
                             daemon=True).start()

    def _connection(self, conn: socket.socket, where: str) -> None:
        try:
            conn.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                tls = self.ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
                self.audit("tls_refused", "warning", f"{self.name}: TLS handshake with {where} refused: {reason}")
                conn.close()
                return
            with tls:
                der = tls.getpeercert(binary_form=True)
                if not der:  # cannot happen with CERT_REQUIRED; refuse rather than assume
                    self.audit("tls_refused", "warning", f"{self.name}: {where} presented no certificate")
                    return
                peer = Peer(peer_identity(x509.load_der_x509_certificate(der)), der, where)
                self.audit("hospital_connected", "info", f"{self.name}: {peer.identity!r} from {where}")
                tls.settimeout(IDLE_TIMEOUT_S)
                try:
                    self.serve(tls, peer)
                except (OSError, ssl.SSLError) as exc:
                    self.audit("connection_lost", "notice", f"{self.name}: {peer.identity!r} from {where}: {exc}")
        finally:
            self._slots.release()


def https_server(desk: OrderDesk, audit: Audit) -> Serve:
    def serve(tls: ssl.SSLSocket, peer: Peer) -> None:
        rfile = tls.makefile("rb")
        while True:
            try:
                req = httpio.read_request(rfile, answers.fhir_orders.MAX_BODY)
            except httpio.HttpError as exc:
                audit("http_rejected", "warning", f"{peer.identity!r} from {peer.address}: {exc.status} {exc.reason}")
                tls.sendall(answers.answer_http_error(exc))
                return
            if req is None:
                return
            data, _ = answers.answer_fhir(req, peer, desk)
            tls.sendall(data)
            if not req.keep_alive:
                return

    return serve


def mllp_server(desk: OrderDesk, audit: Audit) -> Serve:
    def serve(tls: ssl.SSLSocket, peer: Peer) -> None:
        reader = FrameReader()
        while True:
            data = tls.recv(65536)
            if not data:
                if reader.pending():
                    audit("mllp_rejected", "warning", f"{peer.identity!r}: connection closed inside an MLLP frame "
                          f"({reader.pending()} bytes, no 0x1C 0x0D end)")
                return
            for item in reader.feed(data):
                if isinstance(item, MllpError):
                    audit("mllp_rejected", "warning", f"{peer.identity!r} from {peer.address}: {item}")
                    tls.sendall(frame(answers.answer_framing_error(str(item))))
                else:
                    reply, _ = answers.answer_hl7(item, peer, desk)
                    tls.sendall(frame(reply))

    return serve
