"""The pump's front panel in a browser: an HTTP server on 127.0.0.1 in front of the hardware simulator.

The page is a picture of the physical pump. Keys pressed in the browser go to the simulator's keypad device
(the ``ui`` partition reads them over its device link), the display the page shows is the last ``Screen`` the
``ui`` partition drew on the display device, and the live volume is the simulator's motor encoder. The
server holds no pump logic of its own: it only presses the simulator's keys and buttons and reads
``Simulator.snapshot()``.

    GET  /            the page (static/panel.html, self-contained: inline CSS and JS)
    GET  /api/state   the simulator snapshot as JSON (with the speaker's ``sound``), plus ``info`` and the
                      alarm tone ``patterns`` (pulse timing per priority, played by the page with Web Audio)
    POST /api/key     {"key": "<key or field>", "value": "<text for a text field>"}: digit keys 0-9,
                      decimal, clear, enter and the function keys take no value; a numeric field key
                      (pin, rate, ...) takes none either (it selects the field for the digit keys)
    POST /api/pca     {}                                 the patient's bolus button
    POST /api/fault   {"fault": "<sim.Fault value>"}     inject a hardware fault
    POST /api/clear   {"fault": "<sim.Fault value>"}     clear it (reservoir_empty: a new bag is hung)
    POST /api/silence {}                                 the alarm-silence key

Every POST takes exactly one JSON object (``Content-Type: application/json``, at most 4 KiB) with exactly the
fields listed; anything else is answered 400 with a reason. Requiring the JSON content type also means a page
from another origin cannot post here without a CORS preflight, which this server never grants; the ``Host``
header must name the loopback address so a DNS-rebinding page cannot reach it either.
"""

from __future__ import annotations

import json
import math
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..therapy.audible import PATTERNS
from ..therapy.keypad import FIELDS, NUMERIC_FIELDS
from ..ui import KEYS
from .physics import Fault
from .simulator import Simulator

PAGE = Path(__file__).resolve().parent / "static" / "panel.html"
MAX_BODY = 4096
MAX_VALUE = 256  # the ui partition keeps at most 256 characters of a field
FUNCTION_KEYS = KEYS  # function keys and the digit, decimal, clear and enter keys
FIELD_KEYS = frozenset(FIELDS)
NUMERIC_FIELD_KEYS = frozenset(NUMERIC_FIELDS)
TONE_PATTERNS = {prio.name.lower(): pattern.as_dict() for prio, pattern in PATTERNS.items()}
FAULTS = frozenset(f.value for f in Fault)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


class BadRequest(ValueError):
    """A request this API refuses; the message is the reason given to the client."""


def _exact_fields(body: dict[str, Any], required: set[str], optional: frozenset[str] = frozenset()) -> None:
    missing = required - body.keys()
    if missing:
        raise BadRequest(f"missing field(s): {', '.join(sorted(missing))}")
    extra = body.keys() - required - optional
    if extra:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(extra))}")


def _printable(value: str, what: str) -> str:
    if len(value) > MAX_VALUE:
        raise BadRequest(f"{what} longer than {MAX_VALUE} characters")
    if any(not ch.isprintable() for ch in value):
        raise BadRequest(f"{what} contains control characters")
    return value


def parse_key(body: dict[str, Any]) -> tuple[str, str]:
    """Validate a keypad press: a function key (no value) or a field entry (a short printable value)."""
    _exact_fields(body, {"key"}, frozenset({"value"}))
    key, value = body["key"], body.get("value", "")
    if not isinstance(key, str) or not isinstance(value, str):
        raise BadRequest("key and value must be strings")
    if key in NUMERIC_FIELD_KEYS:
        if value:
            raise BadRequest(f"{key} is typed with the digit keys: send {key!r} alone, then the digits and enter")
        return key, ""
    if key in FIELD_KEYS:
        return key, _printable(value, "value")
    if key in FUNCTION_KEYS:
        if value:
            raise BadRequest(f"function key {key!r} takes no value")
        return key, ""
    raise BadRequest(f"no such key on the keypad: {key[:40]!r}")


def parse_fault(body: dict[str, Any]) -> Fault:
    _exact_fields(body, {"fault"})
    fault = body["fault"]
    if not isinstance(fault, str) or fault not in FAULTS:
        raise BadRequest(f"fault must be one of: {', '.join(sorted(FAULTS))}")
    return Fault(fault)


def parse_empty(body: dict[str, Any]) -> None:
    _exact_fields(body, set())


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: a non-finite simulator number is sent as null rather than invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "SeptumFrontPanel/1"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # polled every few hundred ms: access lines would drown the bench console

    # ------------------------------------------------------------------ plumbing
    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy",
                         "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                         "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        self._reply(status, json.dumps(_finite(obj), allow_nan=False).encode(), "application/json")

    def _error(self, status: int, reason: str) -> None:
        self._json(status, {"ok": False, "error": reason})

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").strip()
        name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        return name in LOOPBACK_HOSTS and port in ("", str(self.server.server_address[1]))

    def _body(self) -> dict[str, Any]:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise BadRequest("Content-Type must be application/json")
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest("chunked bodies are not accepted; send Content-Length")
        raw_len = self.headers.get("Content-Length")
        if raw_len is None or not raw_len.isdigit():
            raise BadRequest("Content-Length is required")
        length = int(raw_len)
        if length > MAX_BODY:
            raise BadRequest(f"body larger than {MAX_BODY} bytes")
        data = self.rfile.read(length)
        if len(data) != length:
            raise BadRequest("body shorter than Content-Length")
        try:
            body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            raise BadRequest(f"body is not valid JSON: {str(exc)[:80]}") from None
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body

    def _guarded(self, fn: Any) -> None:
        try:
            if not self._host_ok():
                # nothing was read yet: drop the connection after answering rather than parse a body
                self.close_connection = True
                self._error(HTTPStatus.BAD_REQUEST, "Host must be 127.0.0.1 or localhost with this port")
                return
            fn()
        except BadRequest as exc:
            self.close_connection = True  # the body may be partly unread: do not reuse the connection
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away
        except Exception as exc:  # never a traceback to the client; the type helps the bench engineer
            self.close_connection = True
            try:
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error ({type(exc).__name__})")
            except OSError:
                pass

    # ------------------------------------------------------------------ routes
    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_HEAD(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def do_PUT(self) -> None:
        self._guarded(self._not_allowed)

    def do_DELETE(self) -> None:
        self._guarded(self._not_allowed)

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported")

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._reply(HTTPStatus.OK, self.server.page(), "text/html; charset=utf-8")
        elif path == "/api/state":
            self._json(HTTPStatus.OK, self.server.state())
        elif path in POST_ROUTES:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes POST")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {path[:80]}")

    def _post(self) -> None:
        path = self.path
        if path not in POST_ROUTES:
            self.close_connection = True
            status = HTTPStatus.METHOD_NOT_ALLOWED if path in ("/", "/api/state") else HTTPStatus.NOT_FOUND
            self._error(status, f"POST {path[:80]} is not part of the panel API")
            return
        body = self._body()
        sim = self.server.sim
        if path == "/api/key":
            key, value = parse_key(body)
            self._pressed(sim.press_key(key, value), "keypad", key=key)
        elif path == "/api/silence":
            parse_empty(body)
            self._pressed(sim.press_key("silence"), "keypad", key="silence")
        elif path == "/api/pca":
            parse_empty(body)
            self._pressed(sim.press_pca(), "pca_button")
        elif path == "/api/fault":
            fault = parse_fault(body)
            sim.inject(fault)
            self._json(HTTPStatus.OK, {"ok": True, "fault": fault.value, "faults": sim.snapshot()["faults"]})
        elif path == "/api/clear":
            fault = parse_fault(body)
            sim.clear(fault)
            self._json(HTTPStatus.OK, {"ok": True, "fault": fault.value, "faults": sim.snapshot()["faults"]})

    def _pressed(self, delivered: bool, device: str, **extra: str) -> None:
        if delivered:
            self._json(HTTPStatus.OK, {"ok": True, **extra})
        else:
            # the ui partition is down or restarting: its device link is not attached, the press is lost
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"ok": False, "error": f"{device} not connected", **extra})


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


POST_ROUTES = frozenset({"/api/key", "/api/pca", "/api/fault", "/api/clear", "/api/silence"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a browser's keep-alive connection must not hold up stop()
    allow_reuse_address = True

    def __init__(self, panel: FrontPanel) -> None:
        self.panel = panel
        self.sim = panel.sim
        super().__init__((panel.host, panel.requested_port), _Handler)

    def page(self) -> bytes:
        return self.panel.page_bytes

    def state(self) -> dict[str, Any]:
        snap = self.sim.snapshot()
        snap["info"] = dict(self.panel.info)
        snap["patterns"] = TONE_PATTERNS
        return snap


class FrontPanel:
    """Serve the front panel of ``sim`` on 127.0.0.1 (``port=0``: any free port; see ``url``)."""

    def __init__(self, sim: Simulator, port: int = 0, info: dict[str, Any] | None = None) -> None:
        self.sim = sim
        self.host = "127.0.0.1"  # never another interface: the panel can inject faults and press keys
        self.requested_port = port
        self.info = dict(info or {})
        self.page_bytes = PAGE.read_bytes()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the front panel is not serving")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> FrontPanel:
        if self._httpd is None:
            self._httpd = _Server(self)
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="front-panel", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FrontPanel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
