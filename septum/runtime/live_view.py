"""What a running device is doing, for the person who started it (``septum run --follow``).

On a terminal: one compact view, redrawn in place a few times a second, of every partition's state and
restarts, the channels that dropped messages, the alarms (events of severity error or critical, and
partition events whose kind names an alarm) and the last events. Not on a terminal: one plain line per event,
for a log or a pipe.

It reads the supervisor only through its public API: ``events.subscribe`` and ``partition_state``. The
subscriber runs on the supervisor's thread, so it only records (a lock and a few assignments) or queues:
lines are written by a thread of their own from a bounded queue, and a reader that cannot keep up (a pipe
into a pager that is not being read) loses lines, counted and said, never stalls supervision.
"""

from __future__ import annotations

import collections
import datetime as dt
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .events import Event

LAST_EVENTS = 8
LAST_ALARMS = 5
REFRESH_PER_S = 4
LINE_QUEUE = 10_000  # plain lines waiting for a slow reader before lines are dropped (and counted)
ALARM_SEVERITIES = frozenset({"error", "critical"})
STATE_STYLE = {"ready": "green", "starting": "yellow", "stopped": "dim", "exited": "red", "failed": "red bold",
               "safe_state": "red bold"}
SEVERITY_STYLE = {"info": "", "notice": "cyan", "warning": "yellow", "error": "red", "critical": "red bold"}


class _Events(Protocol):
    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]: ...


class SupervisorView(Protocol):
    """The part of ``Supervisor`` the view uses."""

    @property
    def events(self) -> _Events: ...

    def partition_state(self, name: str) -> str: ...


def _clock(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def _fields_text(fields: dict[str, Any], limit: int = 120) -> str:
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain_line(ev: Event) -> str:
    """One event as one line: time, sequence number, severity, kind, partition, fields."""
    who = ev.partition or "-"
    src = "" if ev.source == "supervisor" else f" ({ev.source})"
    return f"{_clock(ev.time)} #{ev.seq} {ev.severity:<8} {ev.kind} {who}{src} {_fields_text(ev.fields, 400)}".rstrip()


def is_alarm(ev: Event) -> bool:
    return ev.severity in ALARM_SEVERITIES or "alarm" in ev.kind


@dataclass
class PartitionRow:
    restarts: int = 0
    heartbeats_missed: int = 0
    last_problem: str = ""


@dataclass
class ChannelDrops:
    partition: str  # the receiving partition, which counted them
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class LiveState:
    """What the view shows, built from the event stream (thread-safe: fed on the supervisor's thread)."""

    def __init__(self, partitions: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self.partitions: dict[str, PartitionRow] = {p: PartitionRow() for p in partitions}
        self.channels: dict[str, ChannelDrops] = {}
        self.alarms: collections.deque[Event] = collections.deque(maxlen=LAST_ALARMS)
        self.last: collections.deque[Event] = collections.deque(maxlen=LAST_EVENTS)
        self.device: str = "starting"
        self.events_seen = 0

    def on_event(self, ev: Event) -> None:
        with self._lock:
            self.events_seen += 1
            self.last.append(ev)
            if is_alarm(ev):
                self.alarms.append(ev)
            row = self.partitions.get(ev.partition or "")
            if row is not None:
                if ev.kind == "restart":
                    row.restarts += 1
                elif ev.kind == "heartbeat_missed":
                    row.heartbeats_missed += 1
                if ev.severity in ("warning", *ALARM_SEVERITIES) and ev.kind != "channel_drops":
                    row.last_problem = ev.kind
            if ev.kind == "channel_drops":
                name = str(ev.fields.get("channel", "?"))
                ch = self.channels.setdefault(name, ChannelDrops(ev.partition or "?"))
                new = ev.fields.get("new", 0)
                ch.dropped += new if isinstance(new, int) else 0
                drops = ev.fields.get("drops")
                if isinstance(drops, dict):
                    ch.reasons = {str(k): v for k, v in drops.items() if isinstance(v, int)}
            elif ev.kind == "device_ready":
                self.device = "running"
            elif ev.kind == "safe_state":
                self.device = "SAFE STATE"
            elif ev.kind == "stopping" and self.device != "SAFE STATE":
                self.device = "stopping"
            elif ev.kind == "stopped":
                outcome = str(ev.fields.get("outcome", ""))
                self.device = "stopped" if outcome in ("", "stopped") else f"stopped ({outcome})"

    def render(self, states: dict[str, str]) -> RenderableType:
        """The view, with each partition's current state (``states``: name -> state)."""
        with self._lock:
            head = Text.assemble(("device ", "bold"), (self.device, "red bold" if "SAFE" in self.device else "bold"),
                                 f"   {self.events_seen} events")
            parts = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
            for col in ("partition", "state", "restarts", "missed beats", "last problem"):
                parts.add_column(col)
            for name, row in self.partitions.items():
                st = states.get(name, "?")
                parts.add_row(name, Text(st, STATE_STYLE.get(st, "")), str(row.restarts),
                              str(row.heartbeats_missed), row.last_problem or "-")
            out: list[RenderableType] = [head, parts]
            if self.channels:
                drops = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
                for col in ("channel", "counted by", "dropped", "reasons"):
                    drops.add_column(col)
                for name, ch in sorted(self.channels.items()):
                    reasons = ", ".join(f"{k} {v}" for k, v in sorted(ch.reasons.items())) or "-"
                    drops.add_row(name, ch.partition, Text(str(ch.dropped), "yellow"), reasons)
                out += [Text("channel drops", "bold"), drops]
            out.append(Text("alarms", "bold"))
            out += [self._line(ev) for ev in self.alarms] or [Text("  none", "dim")]
            out.append(Text("last events", "bold"))
            out += [self._line(ev) for ev in self.last]
            return Group(*out)

    @staticmethod
    def _line(ev: Event) -> Text:
        who = f" {ev.partition}" if ev.partition else ""
        return Text.assemble(f"  {_clock(ev.time)} ", (f"{ev.kind}{who}", SEVERITY_STYLE.get(ev.severity, "")),
                             f" {_fields_text(ev.fields, 90)}", no_wrap=True, overflow="ellipsis")


class PlainLines:
    """Every event as a plain line on ``out``, written by its own thread from a bounded queue."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self._q: queue.Queue[Event | None] = queue.Queue(LINE_QUEUE)
        self._lost = 0
        self._thread = threading.Thread(target=self._write, name="septum-follow", daemon=True)
        self._thread.start()

    def on_event(self, ev: Event) -> None:
        try:
            self._q.put_nowait(ev)
        except queue.Full:
            self._lost += 1

    def _write(self) -> None:
        while (ev := self._q.get()) is not None:
            lost, self._lost = self._lost, 0
            try:
                if lost:
                    self.out.write(f"... {lost} event(s) not shown: the reader fell behind\n")
                self.out.write(plain_line(ev) + "\n")
                self.out.flush()
            except (OSError, ValueError):
                return  # the reader went away (closed pipe): supervision goes on without it

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._q.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


class LiveView:
    """Follow a supervisor: a live view on a terminal console, plain lines otherwise."""

    def __init__(self, sup: SupervisorView, partitions: Iterable[str], console: Console | None = None,
                 *, plain: bool | None = None) -> None:
        self.sup = sup
        self.console = console or Console()
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.state = LiveState(partitions)
        self.lines = PlainLines(self.console.file) if self.plain else None
        self._unsubscribe = sup.events.subscribe(self._on_event)

    def _on_event(self, ev: Event) -> None:
        self.state.on_event(ev)
        if self.lines is not None:
            self.lines.on_event(ev)

    def states(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self.state.partitions:
            try:
                out[name] = self.sup.partition_state(name)
            except KeyError:
                out[name] = "not started"
        return out

    def render(self) -> RenderableType:
        return self.state.render(self.states())

    def follow(self, done: Callable[[float], bool]) -> None:
        """Show the device until ``done(timeout)`` (which waits up to ``timeout`` s) returns True."""
        period = 1 / REFRESH_PER_S
        if self.plain:
            while not done(period):
                pass
            return
        # transient: the last frame is printed once by close(), after the device has stopped
        with Live(self.render(), console=self.console, auto_refresh=False, transient=True) as live:
            while not done(period):
                live.update(self.render(), refresh=True)

    def close(self, *, final: bool = True) -> None:
        """Stop following; on a terminal, leave the final view (after the device stopped) on screen."""
        self._unsubscribe()
        if self.lines is not None:
            self.lines.close()
        elif final:
            self.console.print(self.render())
