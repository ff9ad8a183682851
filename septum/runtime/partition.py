"""The Partition API: what a partition's code sees.

A partition's entry point (``runs: module:function`` in the model) is called with one ``Partition``::

    def main(p: Partition) -> None:
        @p.handler("dose_request")
        def on_dose(msg):                      # a typed, validated message
            p.send("motor_cmd", rate_ml_h=msg.rate_ml_h)
        p.every(1.0, lambda: p.send("status", state="running"))

When the entry point returns, the runtime runs the partition's event loop (``p.run()``) until the
supervisor stops it; ``ready()`` is sent when the loop starts unless the entry point sent it earlier.
The loop drains input channels (enforcing each channel's size, rate, type and queue bounds), calls one
handler per queued message, runs due timers and sends heartbeats. A handler that raises ends the
partition (exit code 70), so the supervisor applies its restart policy: errors are never swallowed.
"""

from __future__ import annotations

import heapq
import itertools
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from . import protocol as proto
from .channel import ReceiveEnd, SendEnd
from .clock import Clock

Handler = Callable[[Any], None]
DeviceHandler = Callable[[bytes], None]
MAX_DEVICE_PACKET = 64 * 1024  # same bound as septum.runtime.devices (not imported: keep boot lean)
DRAIN_BUDGET = 256  # messages read per channel per loop turn, so timers and heartbeats keep running
REPORT_INTERVAL_S = 0.2  # at most this often, changed drop counters are reported to the supervisor


class Timer:
    __slots__ = ("callback", "cancelled", "deadline", "period")

    def __init__(self, deadline: float, period: float | None, callback: Callable[[], None]) -> None:
        self.deadline = deadline  # time.monotonic()
        self.period = period  # real seconds, or None for one-shot
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Partition:
    def __init__(
        self,
        name: str,
        *,
        inputs: dict[str, ReceiveEnd],
        outputs: dict[str, SendEnd],
        control: socket.socket,
        clock: Clock,
        data_dir: Path,
        config: dict[str, Any],
        heartbeat_ms: int | None,
        devices: dict[str, socket.socket] | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.data_dir = data_dir
        self.config = dict(config)
        self._inputs = inputs
        self._outputs = outputs
        self._control = control
        self._handlers: dict[str, Handler] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._tick = itertools.count()
        self._heartbeat_s = heartbeat_ms / 2000 if heartbeat_ms else None
        self._beat_seq = 0
        self._ready_sent = False
        self._running = False
        self._stopping = False
        self._reported: dict[str, int] = dict.fromkeys(inputs, 0)
        self._last_report = 0.0
        self.control_lost = 0  # event records that could not be handed to the supervisor
        self._devices = dict(devices or {})
        self._device_handlers: dict[str, DeviceHandler] = {}
        self._activation_handler: Callable[[proto.ActivateResult], None] | None = None

    # ------------------------------------------------------------------ declared ends
    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self._outputs)

    def output_rate(self, channel: str) -> float | None:
        """The rate (messages/s) the receiver of an output channel enforces, as the model declares it."""
        end = self._outputs.get(channel)
        if end is None:
            raise KeyError(f"{self.name} may not send on {channel!r} (outputs: {sorted(self._outputs)})")
        return end.rate_per_s

    def message_type(self, channel: str) -> type[msgspec.Struct]:
        end = self._outputs.get(channel) or self._inputs.get(channel)
        if end is None:
            raise KeyError(f"{self.name} has no channel {channel!r}")
        return end.codec.type

    # ------------------------------------------------------------------ receiving
    def handler(self, channel: str) -> Callable[[Handler], Handler]:
        """Decorator: call the function with every valid message received on ``channel``."""

        def register(fn: Handler) -> Handler:
            self.on(channel, fn)
            return fn

        return register

    def on(self, channel: str, fn: Handler) -> None:
        if channel not in self._inputs:
            raise KeyError(f"{self.name} does not receive on {channel!r} (inputs: {sorted(self._inputs)})")
        self._handlers[channel] = fn

    # ------------------------------------------------------------------ devices
    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self._devices)

    def device(self, name: str) -> socket.socket:
        """The link to an owned hardware interface (SOCK_SEQPACKET; see septum.runtime.devices)."""
        sock = self._devices.get(name)
        if sock is None:
            raise KeyError(f"{self.name} does not own device {name!r} (devices: {sorted(self._devices)})")
        return sock

    def on_device(self, name: str, fn: DeviceHandler) -> None:
        """Call ``fn(packet)`` from the event loop for every packet the device sends; ``fn(b"")`` once at
        end-of-file (no hardware attached, or the hardware went away), after which the device is not polled."""
        self.device(name)
        self._device_handlers[name] = fn

    def _on_device_readable(self, name: str) -> bool:
        """Drain a device link; False once it reached end-of-file."""
        sock = self._devices[name]
        fn = self._device_handlers.get(name)
        for _ in range(DRAIN_BUDGET):
            try:
                data = sock.recv(MAX_DEVICE_PACKET, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except (ConnectionResetError, OSError):
                data = b""
            if fn is not None:
                fn(data)
            if not data:
                return False
        return True

    # ------------------------------------------------------------------ sending
    def message(self, channel: str, **fields: Any) -> msgspec.Struct:
        """Build and validate a message for an output channel (raises msgspec.ValidationError)."""
        end = self._outputs.get(channel)
        if end is None:
            raise KeyError(f"{self.name} may not send on {channel!r} (outputs: {sorted(self._outputs)})")
        return end.codec.make(**fields)

    def send(self, channel: str, msg: msgspec.Struct | None = None, /, **fields: Any) -> bool:
        """Send on a granted output channel. Returns False (and counts it) if the channel is full.

        Pass a message built with ``message()`` or the fields as keywords (validated here)."""
        end = self._outputs.get(channel)
        if end is None:
            raise KeyError(f"{self.name} may not send on {channel!r} (outputs: {sorted(self._outputs)})")
        if msg is None:
            msg = end.codec.make(**fields)
        return end.send(msg)

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        """Device time (seconds since the device started, scaled by the runtime's time scale)."""
        return self.clock.now()

    def every(self, period_s: float, fn: Callable[[], None]) -> Timer:
        """Call ``fn`` every ``period_s`` seconds of device time."""
        if not period_s > 0:
            raise ValueError("a timer period must be positive")
        real = self.clock.to_real(period_s)
        return self._add_timer(Timer(time.monotonic() + real, real, fn))

    def after(self, delay_s: float, fn: Callable[[], None]) -> Timer:
        """Call ``fn`` once, ``delay_s`` seconds of device time from now."""
        return self._add_timer(Timer(self.clock.real_deadline(max(0.0, delay_s)), None, fn))

    def _add_timer(self, t: Timer) -> Timer:
        heapq.heappush(self._timers, (t.deadline, next(self._tick), t))
        return t

    # ------------------------------------------------------------------ supervisor
    def _control_send(self, msg: Any, *, must: bool = False) -> bool:
        data = proto.encoder.encode(msg)
        try:
            self._control.send(data, 0 if must else socket.MSG_DONTWAIT)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            self.control_lost += 1
            return False
        return True

    def ready(self) -> None:
        """Tell the supervisor this partition is ready (once)."""
        if not self._ready_sent:
            self._ready_sent = True
            self._control_send(proto.Ready(), must=True)

    def heartbeat(self) -> None:
        """Prove liveness now (the loop also does this by itself every half heartbeat period)."""
        self._beat_seq += 1
        self._control_send(proto.Beat(self._beat_seq))

    def event(self, kind: str, severity: str = "info", **fields: Any) -> None:
        """Record an event in the device's event stream (the supervisor stamps it with this partition)."""
        self._control_send(proto.Report(kind=kind, severity=severity, fields=fields))

    def audit(self, kind: str, severity: str = "notice", **fields: Any) -> None:
        """Record a security-relevant event for the audit trail (must reach the supervisor)."""
        self._control_send(proto.Report(kind=kind, severity=severity, audit=True, fields=fields), must=True)

    def request_activation(self, request_id: str, target: str, version: str, manifest: bytes,
                           signature: bytes) -> bool:
        """Ask the supervisor to run staged code version ``version`` in partition ``target`` (only the
        update service is listened to); the answer comes to the ``on_activation_result`` function."""
        return self._control_send(proto.Activate(request_id=request_id, target=target, version=version,
                                                 manifest=manifest, signature=signature), must=True)

    def on_activation_result(self, fn: Callable[[proto.ActivateResult], None]) -> None:
        """Call ``fn`` from the event loop with each ``ActivateResult`` the supervisor sends."""
        self._activation_handler = fn

    def stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, r in self._inputs.items():
            out[name] = {"received": r.received, **r.drops}
        for name, s in self._outputs.items():
            out[name] = {"sent": s.sent, "full": s.full}
        return out

    def stop(self) -> None:
        """End the event loop after the current turn."""
        self._stopping = True

    # ------------------------------------------------------------------ the loop
    def _report_drops(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < REPORT_INTERVAL_S:
            return
        for name, r in self._inputs.items():
            total = r.dropped()
            if total != self._reported[name]:
                self._reported[name] = total
                self._control_send(proto.Drops(channel=name, received=r.received, drops=dict(r.drops),
                                               last_error=r.last_error))
        self._last_report = now

    def _on_control(self) -> None:
        while True:
            try:
                data = self._control.recv(proto.MAX_CONTROL_MESSAGE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not data:  # the supervisor is gone
                self._stopping = True
                return
            try:
                msg = proto.to_partition.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if isinstance(msg, proto.Stop):
                self._stopping = True
            elif isinstance(msg, proto.ActivateResult) and self._activation_handler is not None:
                self._activation_handler(msg)

    def run(self) -> None:
        """Run the event loop until stopped.

        One turn: heartbeat if due, one ``poll`` (blocking until the next timer or heartbeat unless
        messages are queued), drain the ready channels, one message per channel to its handler, due
        timers, drop reports. The turn is on the path of every message, so it is written to do little:
        local names instead of attribute look-ups, one clock read when nothing else needs a fresh one.
        """
        if self._running:
            return
        self._running = True
        poller = select.poll()  # poll, not epoll: it holds no file descriptor of its own
        by_fd: dict[int, ReceiveEnd] = {}
        for r in self._inputs.values():
            poller.register(r.fileno(), select.POLLIN)
            by_fd[r.fileno()] = r
        control_fd = self._control.fileno()
        poller.register(control_fd, select.POLLIN)
        dev_fd: dict[int, str] = {}
        for dname in self._device_handlers:
            dev_fd[self._devices[dname].fileno()] = dname
            poller.register(self._devices[dname].fileno(), select.POLLIN)
        self.ready()
        monotonic = time.monotonic
        poll = poller.poll
        timers = self._timers
        handlers = self._handlers
        beat_s = self._heartbeat_s
        ends = [(name, r.queue) for name, r in self._inputs.items()]
        next_beat = monotonic()
        next_report = self._last_report + REPORT_INTERVAL_S
        pending = False
        while not self._stopping:
            now = monotonic()
            if beat_s is not None and now >= next_beat:
                self.heartbeat()
                next_beat = now + beat_s
            if pending:
                timeout_ms = 0
            else:
                deadline = next_beat if beat_s is not None else now + 1.0
                if timers and timers[0][0] < deadline:
                    deadline = timers[0][0]
                timeout_ms = max(0, int((deadline - now) * 1000) + 1)
            for fd, _ in poll(timeout_ms):
                r = by_fd.get(fd)
                if r is not None:
                    r.drain(DRAIN_BUDGET)
                elif fd == control_fd:
                    self._on_control()
                elif fd in dev_fd:
                    if not self._on_device_readable(dev_fd[fd]):
                        poller.unregister(fd)
                        del dev_fd[fd]
            if self._stopping:
                break
            # one message per channel per turn: a flooded channel cannot starve the others
            pending = False
            for name, q in ends:
                if q:
                    msg = q.popleft()
                    fn = handlers.get(name)
                    if fn is not None:
                        fn(msg)
                    if q:
                        pending = True
            if timers and timers[0][0] <= (now := monotonic()):
                self._run_timers(now)
            if now >= next_report:  # the turn's clock reading is recent enough for a 0.2 s interval
                self._report_drops()
                next_report = self._last_report + REPORT_INTERVAL_S
        self._report_drops(force=True)

    def _run_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, t = heapq.heappop(timers)
            if t.cancelled:
                continue
            t.callback()
            if t.period is not None and not t.cancelled:
                t.deadline += t.period
                if t.deadline < now:  # fell behind: skip missed ticks rather than bursting
                    t.deadline = now + t.period
                self._add_timer(t)
