"""What the supervisor accepts from a partition's control channel, and how much of it.

A partition is untrusted: the one place every partition reaches the trusted base is its control channel
(``septum.runtime.protocol``). This module is the supervisor's guard on that channel, one ``ControlGuard``
per partition:

* **Closed, typed messages.** Decoding uses the protocol's strict types (unknown fields, wrong types and
  out-of-bound values are errors). A ``Report`` is checked again here: its kind may not be one of the
  supervisor's own event kinds (a partition cannot forge ``safe_state`` or ``heartbeat_missed``), its fields
  may not use the names the event record itself uses (``kind``, ``partition``, ``severity``, ``source``,
  ``audit``, ``seq``, ``time``), and its values are plain data (str, int, float, bool, None, lists and maps
  of them) with bounded nesting, length and total size. A message that fails is *refused*, never merged.
* **Bounded rate and work.** Each partition has a budget of control messages per second (the runtime's token
  bucket, ``CONTROL_MSGS_PER_S`` with a burst of one second's worth) and the supervisor reads at most
  ``READ_BATCH`` of its messages per loop turn. Over budget, messages are read and discarded unparsed
  (counted). ``Drops`` reports are coalesced per channel (the newest totals are kept; at most one
  ``channel_drops`` event per channel per ``DROPS_REPORT_S``).
* **Bounded reporting of the refusals themselves.** The first refusal (and the first throttled message) in
  each ``NOTICE_S`` window is reported at once with its reason; the rest are counted and reported as one
  summary event when the window ends. A flood therefore costs the audit log a few records per second.

Nothing here raises on hostile input: every outcome is a verdict the supervisor records.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from . import protocol as proto
from .events import SUPERVISOR_KINDS
from .token_bucket import TokenBucket

CONTROL_MSGS_PER_S = 400.0  # control messages a partition may send per second, heartbeats included (burst: 1 s)
READ_BATCH = 64  # messages of one partition read per supervisor loop turn (fairness between partitions)
DROPS_REPORT_S = 1.0  # at most one channel_drops event per channel in this period (newer totals coalesced)
NOTICE_S = 1.0  # refusals/throttling: the first in each window is reported at once, the rest summarised
RESERVED_FIELDS = frozenset(("kind", "partition", "severity", "source", "audit", "seq", "time", "fields"))
MAX_FIELD_DEPTH = 4  # nesting of lists/maps in a report's field values
MAX_FIELD_ITEMS = 512  # scalars and containers in all of a report's field values together
MAX_STRING = 8192  # characters of one string field value


class Refused(Exception):
    """A control message the supervisor will not act on (the reason is recorded)."""


@dataclass
class _Notices:
    """Counts of one kind of problem, reported at bounded volume."""

    window_start: float = -math.inf
    pending: int = 0  # seen since the last report
    total: int = 0
    last_reason: str = ""

    def note(self, now: float, reason: str) -> bool:
        """Count one; True when it should be reported at once (the first of its window)."""
        self.total += 1
        self.last_reason = reason
        if now - self.window_start >= NOTICE_S:
            self.window_start = now
            return True
        self.pending += 1
        return False

    def summary_due(self, now: float) -> int:
        """How many to report as a summary now (0 while the window is still open)."""
        if self.pending and now - self.window_start >= NOTICE_S:
            n, self.pending = self.pending, 0
            self.window_start = now
            return n
        return 0


@dataclass
class _DropsState:
    received: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    last_error: str = ""
    reported_total: int = 0
    last_report: float = -math.inf
    pending: bool = False


@dataclass
class ControlGuard:
    """The supervisor's view of one partition's control channel."""

    partition: str
    inputs: frozenset[str]  # the channels it receives on: the only ones it may report drops for
    rate: float = CONTROL_MSGS_PER_S
    bucket: TokenBucket = field(init=False)
    throttled: _Notices = field(default_factory=_Notices)
    refused: _Notices = field(default_factory=_Notices)
    drops: dict[str, _DropsState] = field(default_factory=dict)
    buffer: bytearray = field(default_factory=lambda: bytearray(proto.MAX_FROM_PARTITION + 1))

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.rate, time.monotonic())  # real seconds: the supervisor's own clock

    # ------------------------------------------------------------------ admission
    def admit(self) -> bool:
        """Take one message's token; False: over budget (discard it unread and count it)."""
        return self.bucket.admit(time.monotonic())

    def decode(self, data: memoryview | bytes) -> Any:
        """Decode and check one message; raises Refused with the reason."""
        if len(data) > proto.MAX_FROM_PARTITION:
            raise Refused(f"message larger than {proto.MAX_FROM_PARTITION} bytes")
        try:
            msg = proto.from_partition.decode(data)
        except msgspec.ValidationError as exc:
            raise Refused(f"invalid message: {str(exc)[:200]}") from None
        except msgspec.DecodeError as exc:
            raise Refused(f"malformed message: {str(exc)[:200]}") from None
        if isinstance(msg, proto.Report):
            check_report(msg)
        elif isinstance(msg, proto.Drops) and msg.channel not in self.inputs:
            raise Refused(f"drop report for {msg.channel[:64]!r}, which is not one of its input channels")
        return msg

    # ------------------------------------------------------------------ drop reports
    def note_drops(self, msg: proto.Drops, now: float) -> dict[str, Any] | None:
        """Record a partition's drop counters; the event fields to emit now, or None (coalesced)."""
        st = self.drops.setdefault(msg.channel, _DropsState())
        st.received, st.drops, st.last_error = msg.received, dict(msg.drops), msg.last_error
        st.pending = True
        return self._drops_due(msg.channel, st, now)

    def due_drops(self, now: float) -> list[dict[str, Any]]:
        """Coalesced drop reports whose period has passed (called from the deadline check)."""
        out = []
        for name, st in self.drops.items():
            ev = self._drops_due(name, st, now)
            if ev is not None:
                out.append(ev)
        return out

    def _drops_due(self, channel: str, st: _DropsState, now: float) -> dict[str, Any] | None:
        if not st.pending or now - st.last_report < DROPS_REPORT_S:
            return None
        total = sum(st.drops.values())
        st.pending = False
        st.last_report = now
        new, st.reported_total = total - st.reported_total, total
        return {"channel": channel, "received": st.received, "drops": dict(st.drops), "new": new,
                "last_error": st.last_error}

    def reset_drops(self) -> None:
        """A new process of the partition starts its counters at zero."""
        self.drops.clear()


def check_report(msg: proto.Report) -> None:
    """A report's kind and fields, checked beyond their types (raises Refused)."""
    if msg.kind in SUPERVISOR_KINDS:
        raise Refused(f"report kind {msg.kind!r} is reserved for the supervisor's own events")
    clash = sorted(RESERVED_FIELDS.intersection(msg.fields))
    if clash:
        raise Refused(f"report field name(s) {', '.join(clash)} are reserved for the event record")
    budget = [MAX_FIELD_ITEMS]
    for value in msg.fields.values():
        _check_value(value, 0, budget)


def _check_value(value: Any, depth: int, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise Refused(f"report fields hold more than {MAX_FIELD_ITEMS} values")
    if value is None or isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise Refused("report field integer out of range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Refused("report field is not a finite number")
        return
    if isinstance(value, str | bytes):
        if len(value) > MAX_STRING:
            raise Refused(f"report field value longer than {MAX_STRING} characters/bytes")
        return
    if depth >= MAX_FIELD_DEPTH:
        raise Refused(f"report fields nested deeper than {MAX_FIELD_DEPTH}")
    if isinstance(value, list):
        for v in value:
            _check_value(v, depth + 1, budget)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or len(k) > 64:
                raise Refused("report field map keys must be strings of at most 64 characters")
            _check_value(v, depth + 1, budget)
        return
    raise Refused(f"report field of type {type(value).__name__} (only plain data is accepted)")


def describe_exit(code: int) -> str:
    """How a child ended, for any status ``Popen`` can give: every exit code and every signal number,
    real-time signals included (``signal.Signals`` knows only the named ones)."""
    import signal

    if code >= 0:
        return f"exit code {code}"
    num = -code
    try:
        return f"signal {signal.Signals(num).name}"
    except ValueError:
        lo, hi = signal.SIGRTMIN, signal.SIGRTMAX
        if lo <= num <= hi:
            return f"signal SIGRTMIN+{num - lo}" if num - lo <= hi - num else f"signal SIGRTMAX-{hi - num}"
        return f"signal {num}"
