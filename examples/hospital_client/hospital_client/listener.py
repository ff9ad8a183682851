"""The hospital's event listener: receives the pump's events over mutual TLS and keeps them in order.

MLLP mode answers each ORU with an ``ACK`` (MSA AA); FHIR mode answers each POSTed resource with 201.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

START, END = b"\x0b", b"\x1c\x0d"


def server_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED  # only the pump (a certificate from the hospital CA) may report
    ctx.load_verify_locations(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class EventListener:
    def __init__(self, mode: str, ca: Path, cert: Path, key: Path, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        if mode not in ("mllp", "fhir"):
            raise ValueError("mode is mllp or fhir")
        self.mode = mode
        self.ctx = server_context(ca, cert, key)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._sock = socket.create_server((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._closed = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def wait(self, timeout: float) -> dict[str, Any]:
        return self.events.get(timeout=timeout)

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                (self._serve_mllp if self.mode == "mllp" else self._serve_fhir)(tls)
        except (OSError, ssl.SSLError, ValueError):
            return

    def _serve_mllp(self, tls: ssl.SSLSocket) -> None:
        buf = bytearray()
        while True:
            end = buf.find(END)
            if end < 0:
                chunk = tls.recv(65536)
                if not chunk:
                    return
                buf += chunk
                continue
            payload = bytes(buf[buf.find(START) + 1 : end]).decode("utf-8", "replace")
            del buf[: end + 2]
            segs = [s.split("|") for s in payload.split("\r") if s]
            msh = segs[0]
            self.events.put({"format": "hl7", "type": msh[8], "segments": segs, "raw": payload})
            ack = f"MSH|^~\\&|HOSPITAL|HOSPITAL|{msh[2]}|{msh[3]}|||ACK|A{msh[9]}|P|2.5\rMSA|AA|{msh[9]}\r"
            tls.sendall(START + ack.encode() + END)

    def _serve_fhir(self, tls: ssl.SSLSocket) -> None:
        rfile = tls.makefile("rb")
        while True:
            line = rfile.readline(8192)
            if not line:
                return
            _method, path, _ = line.decode("ascii").split(" ", 2)
            headers: dict[str, str] = {}
            while (h := rfile.readline(8192)) not in (b"\r\n", b"\n", b""):
                name, _, value = h.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = rfile.read(int(headers.get("content-length", "0")))
            resource = json.loads(body)
            self.events.put({"format": "fhir", "type": resource.get("resourceType"), "path": path,
                             "resource": resource})
            out = b'{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}'
            tls.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/fhir+json\r\nContent-Length: "
                        + str(len(out)).encode() + b"\r\n\r\n" + out)
