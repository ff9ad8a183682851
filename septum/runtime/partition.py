"""The Partition API: what a partition's code sees.

A partition's entry point (``runs: module:function`` in the model) is called with one ``Partition``::

    def main(p: Partition) -> None:
        @p.handler("dose_request")
        def on_dose(msg):                      # a typed, validated message
            p.send("motor_cmd", rate_ml_h=msg.rate_ml_h)
        p.every(1.0, lambda: p.send("status", state="running"))

When the entry point returns, the runtime runs the partition's event loop (``p.run()``) until the
supervisor stops it; ``ready()`` is sent when the loop starts unless the entry point sent it earlier.
The loop reads input channels (enforcing each channel's size, rate and type bounds; what waits is held in
the channel's socket, never in the process), calls one handler per message (one message per ready channel
per turn), runs due timers and sends heartbeats. A handler
that raises ends the partition (exit code 70), so the supervisor applies its restart policy: errors are
never swallowed.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from . import protocol as proto
from .channel import ReceiveEnd, SendEnd
from .clock import Clock
from .codec import DecodeErrors

T = TypeVar("T")
Handler = Callable[[Any], None]
DeviceHandler = Callable[[bytes], None]
MAX_DEVICE_PACKET = 64 * 1024  # same bound as septum.runtime.devices (not imported: keep boot lean)
DRAIN_BUDGET = 256  # packets read per device per loop turn, so timers and heartbeats keep running
REPORT_INTERVAL_S = 0.2  # at most this often, changed drop counters are reported to the supervisor
SERVICE_INTERVAL_S = 0.001  # single-input loop: control, devices, timers looked at this often while busy
SMALL_MESSAGE = 4096  # single-input loop: channels whose messages fit are read with recv(), not recv_into()
WAKE_SIGNAL = signal.SIGRTMIN + 3  # single-input loop: the waker thread interrupts the blocking read with it
# the event loops' clock (real seconds, as time.monotonic): a module name so that a test can drive the loops
# with arrival times of its choosing (tests/runtime/test_token_bucket.py)
_loop_clock = time.monotonic


def _check_report_names(kind: str, fields: dict[str, Any]) -> None:
    from .control_guard import RESERVED_FIELDS
    from .events import SUPERVISOR_KINDS

    clash = sorted(RESERVED_FIELDS.intersection(fields))
    if clash:
        raise ValueError(f"event field name(s) {', '.join(clash)} are reserved for the event record")
    if kind in SUPERVISOR_KINDS:
        raise ValueError(f"event kind {kind!r} is reserved for the supervisor's own events")


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
        self._lost_reported = 0  # of which the supervisor has been told (a control_reports_lost report)
        self._devices = dict(devices or {})
        self._device_handlers: dict[str, DeviceHandler] = {}
        self.device_errors: dict[str, str] = {}  # device -> the read error that ended its link (before fn(b""))
        self._activation_handler: Callable[[proto.ActivateResult], None] | None = None
        self._due = 0.0  # single-input loop: time.monotonic() at which it next services everything else
        self._waker: _Waker | None = None  # single-input loop: told about timers that are due earlier

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
        self._due = float("-inf")  # the single-input loop looks the handler up again

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
            except (ConnectionResetError, OSError) as exc:
                self.device_errors[name] = f"{type(exc).__name__}: {exc}"[:200]
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
        if t.deadline < self._due:
            self._due = t.deadline
        waker = self._waker
        if waker is not None and t.deadline < waker.deadline:
            waker.deadline = t.deadline
            waker.poke()
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

    def beating(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a long but bounded computation in a handler: a memory-hard credential check, a large
        signature check) in a helper thread and keep proving liveness until it returns; its result or its
        exception is this call's.

        The handler still waits, so requests stay one at a time. Without this a computation longer than two
        heartbeat periods looks like a hung loop and the supervisor kills the partition mid-request, and
        the request is lost: an argon2id check takes ~0.3 s on an idle host and more on a loaded one or with
        stronger provisioned parameters, and auth's heartbeat is 500 ms. Only for work that ends by itself
        (no I/O wait): a wedged ``fn`` keeps the partition looking alive. ``fn`` must release the GIL (C code
        that does) for the beats to be sent on time. Runs ``fn`` inline when the partition has no heartbeat
        or no thread can be started (a full ``pids`` limit)."""
        beat = self._heartbeat_s
        if beat is None:
            return fn()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = fn()
            except BaseException as exc:  # re-raised in the handler's thread below
                box["error"] = exc

        worker = threading.Thread(target=work, name="septum-beating", daemon=True)
        try:
            worker.start()
        except RuntimeError:
            return fn()
        while worker.is_alive():
            self.heartbeat()
            worker.join(beat)
        if "error" in box:
            raise box["error"]
        return box["result"]

    def event(self, kind: str, severity: str = "info", **fields: Any) -> None:
        """Record an event in the device's event stream (the supervisor stamps it with this partition).

        The supervisor refuses reports whose field names are the record's own (``kind``, ``partition``,
        ``severity``, ``source``, ``audit``, ``seq``, ``time``, ``fields``) or whose kind is one of its own
        events; this raises ValueError for them here, so the mistake shows where it is made."""
        _check_report_names(kind, fields)
        self._control_send(proto.Report(kind=kind, severity=severity, fields=fields))  # type: ignore[arg-type]

    def audit(self, kind: str, severity: str = "notice", **fields: Any) -> None:
        """Record a security-relevant event for the audit trail (must reach the supervisor)."""
        _check_report_names(kind, fields)
        self._control_send(proto.Report(kind=kind, severity=severity, audit=True, fields=fields),  # type: ignore[arg-type]
                           must=True)

    def fatal(self, reason: str, detail: str = "") -> None:
        """End the partition now, from any thread, because of ``reason`` (e.g. a liveness probe failed, a
        server thread died): the supervisor reports the exit with it and applies the restart policy. For
        failures found outside the event loop, where raising would end only the thread that found them."""
        self._control_send(proto.Fatal(reason=reason[:500], detail=detail[-4000:]), must=True)
        os._exit(proto.EXIT_ENTRY_ERROR)

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
        self._due = float("-inf")
        if self._waker is not None:  # the single-input loop may be about to wait for a message
            self._waker.wake()

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
        if self.control_lost > self._lost_reported:  # reports the control channel could not take (full)
            n = self.control_lost - self._lost_reported
            if self._control_send(proto.Report(kind="control_reports_lost", severity="warning",
                                               fields={"count": n, "total": self.control_lost})):
                self._lost_reported = self.control_lost

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

        A partition with exactly one input channel waits for its messages with a blocking read and has a
        helper thread wake it for everything else (``_run_single``); otherwise, or where that thread
        cannot run, every turn waits in ``poll`` (``_run_polling``). Both give the same guarantees.
        """
        if self._running:
            return
        self._running = True
        self.ready()
        waker = None
        if len(self._inputs) == 1:
            (r,) = self._inputs.values()
            watch = [self._control.fileno(), *(self._devices[d].fileno() for d in self._device_handlers)]
            waker = _Waker.start(r.fileno(), watch, deadline=time.monotonic() + 3600.0)
        if waker is None:
            self._run_polling()
        else:
            try:
                self._run_single(r, waker)
            finally:
                self._waker = None
                waker.close()
        self._report_drops(force=True)

    def _run_single(self, r: ReceiveEnd, waker: _Waker) -> None:
        """The loop of a partition with one input channel.

        A turn: one blocking ``recv`` on the input (returns as soon as a message is there, like a raw
        socket read), one clock reading, the channel's checks in the order ``ReceiveEnd.drain`` applies
        them (size, rate, strict decoding; every drop counted), a comparison of the clock reading with
        the next time the loop has something else to do, then the handler, called directly (nothing is
        queued, so the queue bound holds trivially). Everything else (control channel, devices,
        heartbeat, timers, drop reports) is serviced when that time comes (at least every
        ``SERVICE_INTERVAL_S`` while messages keep coming) or when the waker interrupts the read because
        one of them needs the loop while it waits (see ``_Waker``). A ``Stop`` serviced there ends the
        loop before the handler, as the polling loop discards what it drained.
        """
        poller = select.poll()  # control and devices, looked at without waiting when servicing
        control_fd = self._control.fileno()
        poller.register(control_fd, select.POLLIN)
        dev_fd: dict[int, str] = {}
        for dname in self._device_handlers:
            dev_fd[self._devices[dname].fileno()] = dname
            poller.register(self._devices[dname].fileno(), select.POLLIN)
        in_fd = r.fileno()
        monotonic = _loop_clock
        poll = poller.poll
        timers = self._timers
        beat_s = self._heartbeat_s
        next_beat = monotonic()
        next_report = self._last_report + REPORT_INTERVAL_S
        self._waker = waker
        handler = None

        def service() -> bool:
            """Control, devices, heartbeat, timers, drop reports; True when the loop must end."""
            nonlocal next_beat, next_report, handler
            if waker.error is not None:
                raise RuntimeError("the event loop's waker thread failed") from waker.error
            handler = self._handlers.get(r.name)  # on() makes the loop come here
            woken = waker.woken
            if woken:  # blocking again first, then the flag (the waker does the reverse, and waits for
                # the acknowledgement before it can fire again)
                os.set_blocking(in_fd, True)
                waker.woken = False
            if not self._stopping:
                for fd, _ in poll(0):
                    if fd == control_fd:
                        self._on_control()
                    elif fd in dev_fd and not self._on_device_readable(dev_fd[fd]):
                        poller.unregister(fd)
                        waker.unwatch(fd)
                        del dev_fd[fd]
            if self._stopping:
                return True
            now = monotonic()
            if beat_s is not None and now >= next_beat:
                self.heartbeat()
                next_beat = now + beat_s
            if timers and timers[0][0] <= now:
                self._run_timers(now)
                if self._stopping:
                    return True
                now = monotonic()
            if now >= next_report:
                self._report_drops()
                next_report = self._last_report + REPORT_INTERVAL_S
            wake_at = next_beat if beat_s is not None else now + 1.0
            if timers and timers[0][0] < wake_at:
                wake_at = timers[0][0]
            due = now + SERVICE_INTERVAL_S
            self._due = min(due, wake_at, next_report)
            earlier = wake_at < waker.deadline
            waker.deadline = wake_at
            if earlier or woken:
                waker.poke()  # a nearer deadline, or the acknowledgement of a wake-up
            return False

        size = r.codec.max_size + 1  # one byte more than the largest valid message: oversize is visible
        if size <= SMALL_MESSAGE:
            read: Callable[[int], Any] = r.sock.recv  # a bytes object of the message's size: cheapest
        else:  # not a large buffer per message
            recv_into = r.sock.recv_into
            buf = r._buf
            view = r._view

            def read(_size: int) -> memoryview:
                return view[:recv_into(buf)]
        decode = r.codec.decoder.decode
        bucket = r.bucket
        rate = cap = 0.0
        origin, scale = r.clock.origin, r.clock.scale
        if bucket is not None:  # TokenBucket.admit, inlined below (same arithmetic, same state)
            rate, cap = bucket.rate, bucket.capacity
        drops = r.drops
        if service():
            return
        while True:
            try:
                data = read(size)
            except BlockingIOError:  # the waker made the read return: something else needs the loop
                if service():
                    return
                continue
            now = monotonic()  # the turn's one clock reading: rate limit and what else is due
            msg = None
            if len(data) >= size:
                drops["oversize"] += 1
            else:
                if bucket is not None:
                    dev_now = (now - origin) * scale
                    tokens = bucket.tokens
                    if dev_now > bucket.last:
                        tokens += (dev_now - bucket.last) * rate
                        if tokens > cap:
                            tokens = cap
                        bucket.last = dev_now
                    if tokens >= 1.0:
                        bucket.tokens = tokens - 1.0
                    else:
                        bucket.tokens = tokens
                        drops["rate"] += 1
                        data = None
                if data is not None:
                    try:
                        msg = decode(data)
                    except DecodeErrors as exc:
                        drops["malformed"] += 1
                        r.last_error = str(exc)[:200]
                    else:
                        r.received += 1
            if now >= self._due and service():
                return
            if msg is not None and handler is not None:
                handler(msg)

    def _run_polling(self) -> None:
        """The loop of a partition with several (or no) input channels, or one whose waker cannot run.

        One turn: one ``poll`` over control, devices and every input (blocking until the next timer,
        heartbeat or drop report is due), one clock reading, then control and devices, then **one message
        from each ready input**, read, checked inline in the order ``ReceiveEnd.drain`` applies (size,
        rate, strict decoding; every drop counted) and handed straight to its handler, then due timers and
        drop reports. A flooded input therefore gets one message per turn like any other ready input and
        cannot starve them; what it sent beyond that waits in its socket, whose bound makes the sender's
        ``send`` refuse (and count) rather than block. Nothing is queued in the process and no read is
        made that is not known to succeed: the turn is on the path of every message.
        """
        poller = select.poll()  # poll, not epoll: it holds no file descriptor of its own, and is cheaper here
        control_fd = self._control.fileno()
        poller.register(control_fd, select.POLLIN)  # first: a Stop is seen before that turn's messages
        dev_fd: dict[int, str] = {}
        for dname in self._device_handlers:
            dev_fd[self._devices[dname].fileno()] = dname
            poller.register(self._devices[dname].fileno(), select.POLLIN)
        ins: dict[int, _Input] = {}
        for r in self._inputs.values():
            ins[r.fileno()] = _Input(r)
            poller.register(r.fileno(), select.POLLIN)
        monotonic = _loop_clock
        poll = poller.poll
        timers = self._timers
        handlers = self._handlers
        beat_s = self._heartbeat_s
        next_beat = monotonic()
        next_report = self._last_report + REPORT_INTERVAL_S
        timeout_ms = 0  # the first turn: whatever is waiting already
        hup = select.POLLHUP | select.POLLERR
        while not self._stopping:
            events = poll(timeout_ms)
            now = monotonic()  # the turn's one clock reading: rate limits and what else is due
            for fd, ev in events:
                c = ins.get(fd)
                if c is None:
                    if fd == control_fd:
                        self._on_control()
                        if self._stopping:
                            break
                    elif fd in dev_fd and not self._on_device_readable(dev_fd[fd]):
                        poller.unregister(fd)
                        del dev_fd[fd]
                    continue
                try:
                    data = c.read()
                except BlockingIOError:  # readable a moment ago, and we are its only reader: not expected
                    continue
                if not data and ev & hup:  # end of file: no sender left (the supervisor keeps one open)
                    poller.unregister(fd)
                    del ins[fd]
                    c.end.last_error = "the channel's sending end was closed"
                    continue
                if len(data) >= c.size:
                    c.drops["oversize"] += 1
                    continue
                bucket = c.bucket
                if bucket is not None:  # TokenBucket.admit, inlined (same arithmetic, same state)
                    dev_now = (now - c.origin) * c.scale
                    tokens = bucket.tokens
                    if dev_now > bucket.last:
                        tokens += (dev_now - bucket.last) * c.rate
                        if tokens > c.cap:
                            tokens = c.cap
                        bucket.last = dev_now
                    if tokens >= 1.0:
                        bucket.tokens = tokens - 1.0
                    else:
                        bucket.tokens = tokens
                        c.drops["rate"] += 1
                        continue
                try:
                    msg = c.decode(data)
                except DecodeErrors as exc:
                    c.drops["malformed"] += 1
                    c.end.last_error = str(exc)[:200]
                    continue
                c.end.received += 1
                fn = handlers.get(c.name)
                if fn is not None:
                    fn(msg)
                    if self._stopping:  # a handler stopped the loop: no further message this turn
                        break
            if self._stopping:
                break
            if beat_s is not None and now >= next_beat:
                self.heartbeat()
                next_beat = now + beat_s
            if timers and timers[0][0] <= now:
                self._run_timers(now)
            if now >= next_report:  # the turn's clock reading is recent enough for a 0.2 s interval
                self._report_drops()
                next_report = self._last_report + REPORT_INTERVAL_S
            # the next poll waits for the heartbeat or the next timer; anything still ready (a message
            # beyond the one read per input, a backlog) makes it return at once
            deadline = next_beat if beat_s is not None else now + 1.0
            if timers and timers[0][0] < deadline:
                deadline = timers[0][0]
            if events:  # handlers ran since the turn's clock reading
                now = monotonic()
            # poll's timeout is in ms: rounded up, so that it never wakes before the deadline
            timeout_ms = int((deadline - now) * 1000) + 1 if deadline > now else 0

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


class _Input:
    """What the polling loop needs of one input channel at hand, read once before the loop starts."""

    __slots__ = ("bucket", "cap", "decode", "drops", "end", "name", "origin", "rate", "read", "scale", "size")

    def __init__(self, r: ReceiveEnd) -> None:
        self.end = r
        self.name = r.name
        # one byte more than the largest valid message, so that an oversized one is visible as such
        self.size = r.codec.max_size + 1
        if self.size <= SMALL_MESSAGE:  # a bytes object of the message's size: cheapest
            self.read: Callable[[], Any] = functools.partial(r.sock.recv, self.size, socket.MSG_DONTWAIT)
        else:  # not a large buffer per message
            recv_into, buf, view = r.sock.recv_into, r._buf, r._view

            def read() -> memoryview:
                return view[:recv_into(buf, 0, socket.MSG_DONTWAIT)]
            self.read = read
        self.decode = r.codec.decoder.decode
        self.drops = r.drops
        self.bucket = r.bucket
        self.rate = self.cap = 0.0
        self.origin, self.scale = r.clock.origin, r.clock.scale
        if r.bucket is not None:
            self.rate, self.cap = r.bucket.rate, r.bucket.capacity


class _Waker:
    """Wakes the single-input loop's blocking read when the control channel or a device is readable or a
    timer/heartbeat deadline has come.

    The loop reads its one input channel with a blocking ``recv`` (one system call per message, like a
    raw socket) instead of ``poll`` + ``recv``. This thread waits in ``poll`` on everything else (control,
    devices, the deadline as timeout) and, when one of them needs the loop, makes the input socket
    non-blocking, sets ``woken`` and sends ``WAKE_SIGNAL`` to the main thread. The order makes the wake-up
    sound: a ``recv`` that starts after the flag change returns at once (EAGAIN), and one already asleep is
    interrupted by the signal (EINTR, after which Python retries it and gets EAGAIN). Python signal
    handlers run late, so the signal is not trusted to do anything itself. The loop then services
    everything, makes the socket blocking again and acknowledges (a byte on the waker's pipe); the thread
    does not look again before that, so it never spins on a readable control channel.
    """

    def __init__(self, in_fd: int, watch_fds: list[int]) -> None:
        self.in_fd = in_fd
        self.deadline = 0.0  # time.monotonic() at which the loop has a timer or heartbeat due
        self.woken = False
        self.closing = False
        self._main = threading.get_ident()
        self._rfd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._watch = select.poll()
        for fd in watch_fds:
            self._watch.register(fd, select.POLLIN)
        self._watch.register(self._rfd, select.POLLIN)
        self._ack = select.poll()
        self._ack.register(self._rfd, select.POLLIN)
        self._thread: threading.Thread | None = None
        self._old_handler: Any = None
        self.error: Exception | None = None  # what ended the thread, if anything did

    @classmethod
    def start(cls, in_fd: int, watch_fds: list[int], deadline: float) -> _Waker | None:
        """A running waker, or None where there cannot be one (not the main thread, the wake signal is in
        use, no thread or pipe can be created): the loop then uses ``poll`` on every turn."""
        if threading.current_thread() is not threading.main_thread():
            return None
        if signal.getsignal(WAKE_SIGNAL) not in (signal.SIG_DFL, None):
            return None
        try:
            waker = cls(in_fd, watch_fds)
        except OSError:
            return None
        waker.deadline = deadline
        # the flag belongs to the open file, which the supervisor hands to a restarted partition: a
        # predecessor killed while woken left it set
        os.set_blocking(in_fd, True)
        waker._old_handler = signal.signal(WAKE_SIGNAL, waker._on_signal)  # interrupting (no SA_RESTART)
        try:
            waker._thread = threading.Thread(target=waker._loop, name="septum-waker", daemon=True)
            waker._thread.start()
        except (RuntimeError, OSError):  # e.g. the partition's task limit
            waker._thread = None
            waker.close()
            return None
        return waker

    def _on_signal(self, signum: int, frame: Any) -> None:
        """The signal only has to interrupt a blocking read (EINTR): the waker did the rest. Should the
        thread have failed, the loop must not go on without it: the error ends the partition."""
        if self.error is not None:
            raise RuntimeError("the event loop's waker thread failed") from self.error

    def wake(self) -> None:
        """Make the loop service everything as soon as possible (e.g. it was told to stop)."""
        self.deadline = float("-inf")
        self.poke()

    def unwatch(self, fd: int) -> None:
        self._watch.unregister(fd)  # takes effect at the thread's next poll

    def poke(self) -> None:
        """Make the thread look at ``deadline`` again (it moved earlier), or acknowledge a wake-up."""
        try:
            os.write(self._wfd, b"w")
        except BlockingIOError:  # the pipe is full of pokes already: the thread will look
            pass

    def _drain(self) -> None:
        try:
            while os.read(self._rfd, 256):
                pass
        except BlockingIOError:
            pass

    def _loop(self) -> None:
        try:
            self._watch_loop()
        except Exception as exc:  # handed to the main thread, which raises it: errors are not swallowed
            self.error = exc
            signal.pthread_kill(self._main, WAKE_SIGNAL)

    def _watch_loop(self) -> None:
        monotonic = time.monotonic
        rfd = self._rfd
        while not self.closing:
            left = self.deadline - monotonic()
            fire = left <= 0
            # poll's timeout is in ms: rounded up, so that it never wakes before the deadline
            for fd, _ in self._watch.poll(0 if fire else int(left * 1000) + 1):
                if fd == rfd:
                    self._drain()
                else:
                    fire = True
            if self.closing:
                return
            if not fire and monotonic() < self.deadline:
                continue
            os.set_blocking(self.in_fd, False)  # first (the loop does the reverse: see service())
            self.woken = True
            signal.pthread_kill(self._main, WAKE_SIGNAL)
            while self.woken and not self.closing:  # until the loop has serviced what woke it
                self._ack.poll()
                self._drain()

    def close(self) -> None:
        self.closing = True
        if self._thread is not None:
            self.poke()
            self._thread.join()
        os.close(self._rfd)
        os.close(self._wfd)
        signal.signal(WAKE_SIGNAL, self._old_handler if self._old_handler is not None else signal.SIG_DFL)
        os.set_blocking(self.in_fd, True)
