"""A deliberately small HTTP/1.1 server side: one POST endpoint does not need a web framework.

Bounded everywhere (request line, header count and size, body by Content-Length only, no chunked
bodies), so a hostile client costs bounded memory and gets a clear status code; keep-alive so a hospital
can send many orders over one TLS session. Parsing is incremental (``RequestParser``): the server's event
loop feeds it whatever bytes arrive and never waits on one client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_LINE = 8192
MAX_HEADERS = 48
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
           415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
           431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}


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


def _parse_head(lines: list[bytes], max_body: int) -> tuple[str, str, dict[str, str], int]:
    """Request line and header lines (without the blank line) -> (method, path, headers, body length)."""
    try:
        method, path, version = lines[0].decode("ascii").rstrip("\r\n").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "malformed request line") from None
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(400, f"unsupported HTTP version {version[:16]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if len(headers) >= MAX_HEADERS:
            raise HttpError(431, f"more than {MAX_HEADERS} header fields")
        name, colon, value = line.decode("latin-1").rstrip("\r\n").partition(":")
        if not colon or not name or name != name.strip():
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
    return method, path, headers, length


class RequestParser:
    """Requests from the bytes of one connection as they arrive (the server never blocks on a client).

    ``phase`` says what the connection is waiting for, so the server can give each its own deadline:
    ``idle`` (nothing of the next request yet), ``head`` (request line and headers), ``body``. After an
    ``HttpError`` the connection is answered and closed; the parser is not used again."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self._buf = bytearray()
        self._lines: list[bytes] = []
        self._head: tuple[str, str, dict[str, str], int] | None = None

    @property
    def phase(self) -> str:
        if self._head is not None:
            return "body"
        return "head" if self._buf or self._lines else "idle"

    def feed(self, data: bytes) -> list[Request | HttpError]:
        """Every request ``data`` completes (a client may send several at once), or the error that ends it."""
        self._buf += data
        out: list[Request | HttpError] = []
        try:
            while (req := self._next()) is not None:
                out.append(req)
        except HttpError as exc:
            out.append(exc)
        return out

    def eof(self) -> HttpError | None:
        """The peer closed its side: an error if it did so inside a request."""
        if self._head is not None:
            return HttpError(400, "connection closed inside the body")
        if self._buf or self._lines:
            return HttpError(400, "connection closed inside the request headers")
        return None

    def _next(self) -> Request | None:
        while self._head is None:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    raise HttpError(431, "header line too long")
                return None
            if nl + 1 > MAX_LINE:
                raise HttpError(431, "header line too long")
            line = bytes(self._buf[: nl + 1])
            del self._buf[: nl + 1]
            if line in (b"\r\n", b"\n") and self._lines:
                self._head = _parse_head(self._lines, self.max_body)
                self._lines = []
            elif len(self._lines) > MAX_HEADERS:
                raise HttpError(431, f"more than {MAX_HEADERS} header fields")
            else:
                self._lines.append(line)
        method, path, headers, length = self._head
        if len(self._buf) < length:
            return None
        body = bytes(self._buf[:length])
        del self._buf[:length]
        self._head = None
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
