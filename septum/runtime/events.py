"""The structured supervisor event stream.

Every supervisor decision (start, ready, restart, safe state, drops reported by a partition, audit
records forwarded from partitions...) is one ``Event``. Events go to in-process subscribers and, when a
path is given, to a JSON-lines file that the audit service persists and checkpoints.

Subscribers run on the thread that emitted the event; they must be quick and must not raise (an
exception in a subscriber is counted and otherwise ignored, so a broken observer cannot stop the
supervisor).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

Severity = Literal["info", "notice", "warning", "error", "critical"]


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
    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.Condition()
        self._seq = 0
        self._subscribers: list[Subscriber] = []
        self._history: list[Event] = []
        self._file = open(path, "ab", buffering=0) if path is not None else None
        self._enc = msgspec.json.Encoder()
        self.subscriber_errors = 0
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
            if self._file is not None:
                try:
                    self._file.write(self._enc.encode(ev) + b"\n")
                except (OSError, TypeError):
                    # an unencodable field or a full disk must not stop supervision; keep it in memory
                    self.subscriber_errors += 1
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
        checked = 0
        with self._lock:
            while True:
                for ev in self._history[checked:]:
                    if ev.seq > after and predicate(ev):
                        return ev
                checked = len(self._history)
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
