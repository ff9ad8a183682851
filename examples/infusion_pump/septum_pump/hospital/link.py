"""The hospital link assembled: settings, TLS contexts, listeners, the order desk and the event sender.

``HospitalLink`` needs only three callables from its host (forward an order, send an audit record, report
an event), so the network partition's entry point stays a few lines and tests can run the whole link in
one process without the runtime.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from . import tls
from .buffer import EventBuffer
from .intake import OrderDesk
from .outbound import Sender
from .ratelimit import OrderRate
from .servers import Fatal, Limits, Server, https_sessions, mllp_sessions
from .update_desk import UpdateDesk

DEFAULTS: dict[str, Any] = {"bind": "127.0.0.1", "https_port": 8443, "mllp_port": 2575, "reply_timeout_s": 2.0,
                            "event_buffer_max": 1000, "audit_per_s": 50}
FILES = ("server.pem", "server.key", "hospital-ca.pem")


class SetupError(Exception):
    """The link cannot start as provisioned (the message says what is missing)."""


def load_settings(config: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """Model ``config`` over the defaults, then the provisioned ``hospital.json`` over both."""
    settings = {**DEFAULTS, **config}
    path = data_dir / "hospital.json"
    if path.exists():
        try:
            provisioned = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SetupError(f"{path}: unreadable ({exc})") from None
        if not isinstance(provisioned, dict):
            raise SetupError(f"{path}: must be a JSON object")
        settings.update(provisioned)
    missing = [f for f in FILES if not (data_dir / f).exists()]
    if missing:
        raise SetupError(f"TLS material not provisioned in {data_dir}: {', '.join(missing)}")
    return settings


@dataclass
class AuditSink:
    """Audit records, bounded per second so a flood of bad input cannot flood the audit channel: the excess
    is counted and reported as one ``audit_suppressed`` record per second (the loss is never silent)."""

    emit: Callable[[str, str, str], None]
    per_s: int = 50

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._window = 0
        self._used = 0
        self.suppressed = 0

    def __call__(self, event: str, severity: str, detail: str) -> None:
        now = int(time.monotonic())
        with self._lock:
            if now != self._window:
                self._window, self._used = now, 0
                pending, self.suppressed = self.suppressed, 0
            else:
                pending = 0
            allowed = self._used < self.per_s
            if allowed:
                self._used += 1
            else:
                self.suppressed += 1
        if pending:
            self.emit("audit_suppressed", "warning", f"{pending} audit record(s) over {self.per_s}/s summarised")
        if allowed:
            self.emit(event, severity, detail)

    def flush(self) -> None:
        with self._lock:
            pending, self.suppressed = self.suppressed, 0
        if pending:
            self.emit("audit_suppressed", "warning", f"{pending} audit record(s) over {self.per_s}/s summarised")


class HospitalLink:
    """``orders_rate_per_s``: the rate the model declares for ``orders_in`` (the host passes it; it is not
    a setting ``hospital.json`` may change, because only the model's value matches what auth enforces);
    None forwards without a sender-side bound. ``clock`` must be the clock auth's bucket runs on (device
    time under the runtime) and ``to_real`` turns its seconds into real ones for the hospital."""

    def __init__(self, data_dir: Path, config: dict[str, Any], order_type: type[msgspec.Struct],
                 forward: Callable[[msgspec.Struct], bool], emit_audit: Callable[[str, str, str], None], *,
                 orders_rate_per_s: float | None = None, clock: Callable[[], float] = time.monotonic,
                 to_real: Callable[[float], float] = lambda s: s, fatal: Fatal | None = None,
                 is_probe: Callable[[tuple[str, int]], bool] | None = None,
                 updates: tuple[type[msgspec.Struct], Callable[[msgspec.Struct], bool]] | None = None,
                 expect_verdict: bool = False, key_password: bytes | None = None) -> None:
        self.settings = load_settings(config, data_dir)
        s = self.settings
        self.audit = AuditSink(emit_audit, int(s["audit_per_s"]))
        try:
            rate = None if orders_rate_per_s is None else OrderRate(orders_rate_per_s, clock=clock, to_real=to_real)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
        self.desk = OrderDesk(order_type, forward, self.audit, reply_timeout_s=float(s["reply_timeout_s"]),
                              rate=rate, expect_verdict=expect_verdict)
        # (chunk type, forward): update chunks from the hospital's update server (update_desk.py); None: 404
        self.updates = None if updates is None else UpdateDesk(
            updates[0], updates[1], self.audit, reply_timeout_s=float(s["reply_timeout_s"]))
        cert, key, ca = (data_dir / f for f in FILES)
        # key_password: server.key is encrypted, its passphrase sealed under the device key (pki.provision_network)
        server_ctx = tls.server_context(ca, cert, key, key_password)
        try:
            limits = Limits.from_settings(s)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
        # ``fatal`` ends the host partition when the listeners' loop fails (see servers.py)
        self.server = Server(self.audit, limits=limits, fatal=fatal, is_probe=is_probe)
        self.https = self.server.listen("https", s["bind"], int(s["https_port"]), server_ctx,
                                        https_sessions(self.desk, self.audit, self.updates))
        self.mllp = self.server.listen("mllp", s["bind"], int(s["mllp_port"]), server_ctx,
                                       mllp_sessions(self.desk, self.audit))
        self.buffer = EventBuffer(data_dir / "outbound", int(s["event_buffer_max"]))
        if self.buffer.corrupt:
            self.audit("event_buffer_corrupt", "warning", f"{self.buffer.corrupt} unreadable buffered event(s) removed")
        target = s.get("outbound")
        self.sender = Sender(self.buffer, target, tls.client_context(ca, cert, key, key_password),
                             self.audit) if target else None

    def start(self) -> HospitalLink:
        try:
            self.server.start()
        except ValueError as exc:  # the connection limits do not fit the partition's descriptors
            self.server.close()
            raise SetupError(str(exc)) from None
        if self.sender is not None:
            self.sender.start()
        return self

    def close(self) -> None:
        self.server.close()
        if self.sender is not None:
            self.sender.stop()

    def flush(self) -> None:
        """Once a second: report what the bounded audits summarised."""
        self.desk.rate_refusals.flush()
        self.audit.flush()

    def on_reply(self, order_id: str, accepted: bool, reason: str) -> None:
        self.desk.on_reply(order_id, accepted, reason)

    def on_verdict(self, order_id: str, verdict: str, reason: str) -> None:
        self.desk.on_verdict(order_id, verdict, reason)

    def on_event(self, event: dict[str, Any]) -> None:
        for old in self.buffer.append(event):
            self.audit("event_dropped", "alert", f"outbound buffer full ({self.buffer.max_events}): dropped the "
                       f"oldest {old.get('kind', '?')} event at_ms={old.get('at_ms', '?')}")
