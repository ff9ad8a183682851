"""A deliberately small HTTP/1.1 server side: one POST endpoint does not need a web framework.

Bounded everywhere (request line, header count and size, body by Content-Length only, no chunked
bodies), so a hostile client costs bounded memory and gets a clear status code; keep-alive so a hospital
can send many orders over one TLS session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE = 8192
MAX_HEADERS = 48
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 411: "Length Required", 413: "Content Too Large",
           415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
           431: "Request Header Fields Too Large",
           501: "Not Implemented", 503: "Service Unavailable"}


class HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


def _line(rfile: BinaryIO) -> bytes:
    line = rfile.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise HttpError(431, "header line too long")
    return line


def read_request(rfile: BinaryIO, max_body: int) -> Request | None:
    """The next request, or None at a clean end of the connection. Raises HttpError if malformed."""
    line = _line(rfile)
    if not line:
        return None
    try:
        method, path, version = line.decode("ascii").rstrip("\r\n").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "malformed request line") from None
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(400, f"unsupported HTTP version {version[:16]!r}")
    headers: dict[str, str] = {}
    while True:
        line = _line(rfile)
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise HttpError(400, "connection closed inside the request headers")
        if len(headers) >= MAX_HEADERS:
            raise HttpError(431, f"more than {MAX_HEADERS} header fields")
        try:
            name, _, value = line.decode("latin-1").partition(":")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise HttpError(400, "undecodable header") from None
        if not _ or not name or name != name.strip():
            raise HttpError(400, "malformed header field")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(501, "chunked or encoded bodies are not accepted; send Content-Length")
    length_text = headers.get("content-length", "0" if method in ("GET", "HEAD") else "")
    if not length_text.isdigit() or len(length_text) > 9:
        raise HttpError(411, "a Content-Length is required")
    length = int(length_text)
    if length > max_body:
        raise HttpError(413, f"body larger than {max_body} bytes")
    body = rfile.read(length)
    if len(body) != length:
        raise HttpError(400, "connection closed inside the body")
    return Request(method, path, headers, body)


def response(status: int, body: bytes, *, content_type: str = "application/fhir+json",
             headers: dict[str, str] | None = None, close: bool = False) -> bytes:
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def json_body(obj: object) -> bytes:
    return json.dumps(obj).encode()
