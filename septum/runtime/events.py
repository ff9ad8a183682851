"""The structured supervisor event stream.

Every supervisor decision (start, ready, restart, safe state, drops reported by a partition, audit
records forwarded from partitions...) is one ``Event``. Events go to in-process subscribers and, when a
path is given, to a JSON-lines file that the audit service persists and checkpoints.

Subscribers run on the thread that emitted the event; they must be quick and must not raise (an
exception in a subscriber is counted and otherwise ignored, so a broken observer cannot stop the
supervisor).

The in-memory history is bounded (``HISTORY_LIMIT`` most recent events): a device runs for months, and a
partition that makes the supervisor emit events must not be able to grow its memory without bound. The
file and the audit service keep every event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

Severity = Literal["info", "notice", "warning", "error", "critical"]
SEVERITIES: frozenset[str] = frozenset(("info", "notice", "warning", "error", "critical"))
# Every kind of event the supervisor itself emits (docs/runtime.md lists them; a test keeps the three in
# step). A partition's report may not use one of these kinds: it cannot forge the supervisor's word.
SUPERVISOR_KINDS: frozenset[str] = frozenset((
    "analysis_skipped", "audit_feed_overflow", "channel_drops", "code_activated", "code_activating",
    "code_activation_refused", "code_answer_lost", "code_key_unusable", "code_rolled_back",
    "control_handling_failed", "control_refused", "control_throttled", "debug_override", "device_ready",
    "disk_detach_failed", "event_log_failed", "exited", "halted", "heartbeat_missed", "host_cannot_enforce", "kill",
    "not_restarted", "partition_error", "ready", "ready_timeout", "restart", "restart_limit", "safe_state",
    "secret_unusable", "spawn_failed", "started", "stopped", "stopping", "supervisor_fault",
))
HISTORY_LIMIT = 50_000  # events kept in memory; the oldest are forgotten first (the file keeps them all)


class Event(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    time: float  # Unix time (real) when the supervisor recorded the event
    kind: str
    severity: Severity = "info"
    partition: str | None = None
    source: str = "supervisor"  # "supervisor" or "partition" (forwarded from its control channel)
    fields: dict[str, Any] = {}


Subscriber = Callable[[Event], None]


class EventStream:
    def __init__(self, path: str | Path | None = None, *, history_limit: int = HISTORY_LIMIT) -> None:
        self._lock = threading.Condition()
        self._seq = 0
        self._limit = max(1, history_limit)
        self._subscribers: list[Subscriber] = []
        self._history: list[Event] = []
        self._file = open(path, "ab", buffering=0) if path is not None else None
        self._enc = msgspec.json.Encoder()
        self.subscriber_errors = 0
        self.write_errors = 0  # events that could not be written to the file
        self.last_write_error = ""
        self.path = Path(path) if path is not None else None

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn`` for every later event; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def emit(
        self,
        kind: str,
        *,
        partition: str | None = None,
        severity: Severity = "info",
        source: str = "supervisor",
        **fields: Any,
    ) -> Event:
        with self._lock:
            self._seq += 1
            ev = Event(
                seq=self._seq, time=time.time(), kind=kind, severity=severity,
                partition=partition, source=source, fields=fields,
            )
            self._history.append(ev)
            if len(self._history) > 2 * self._limit:  # amortised: trim in halves, not one event at a time
                del self._history[: len(self._history) - self._limit]
            if self._file is not None:
                try:
                    self._file.write(self._enc.encode(ev) + b"\n")
                except (OSError, TypeError) as exc:
                    # an unencodable field or a full disk must not stop supervision; keep it in memory,
                    # count it: the supervisor reports it (``event_log_failed``) to the audit log and operator
                    self.write_errors += 1
                    self.last_write_error = f"{type(exc).__name__}: {exc}"[:300]
            subscribers = list(self._subscribers)
            self._lock.notify_all()
        for fn in subscribers:
            try:
                fn(ev)
            except Exception:
                self.subscriber_errors += 1
        return ev

    @property
    def history(self) -> list[Event]:
        with self._lock:
            return list(self._history)

    def wait_for(
        self, predicate: Callable[[Event], bool], timeout: float, *, after: int = 0
    ) -> Event | None:
        """Block until an event with ``seq > after`` satisfies ``predicate``; None on timeout."""
        deadline = time.monotonic() + timeout
        checked = after  # every event with seq <= checked has been looked at (or is not wanted)
        with self._lock:
            while True:
                hist = self._history
                start = 0 if not hist else max(0, checked + 1 - hist[0].seq)
                for ev in hist[start:]:
                    if ev.seq > after and predicate(ev):
                        return ev
                if hist:
                    checked = max(checked, hist[-1].seq)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
