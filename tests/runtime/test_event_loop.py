"""The partition event loop in-process: the single-input loop (blocking read plus waker thread) keeps every
guarantee of the polling loop: Stop, device packets, timers and heartbeats are handled while it waits,
drops are counted and reported, and it leaves nothing behind."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from runtime_helpers import control_messages

from septum.runtime import protocol as proto
from septum.runtime.channel import ReceiveEnd, SendEnd, create_pair
from septum.runtime.clock import Clock
from septum.runtime.codec import Codec
from septum.runtime.partition import WAKE_SIGNAL, Partition

pytestmark = pytest.mark.timeout(60)


def _codec() -> Codec:
    return Codec.build("M", {"n": {"type": "int", "min": 0}, "s": {"type": "str", "max_len": 4}})


class Rig:
    """One partition with one input channel (plus optional devices), its sender and its supervisor end."""

    def __init__(self, *, inputs: int = 1, rate: float | None = None, devices: int = 0,
                 heartbeat_ms: int | None = 1000) -> None:
        self.codec = _codec()
        self.clock = Clock.start()
        self.tx: list[SendEnd] = []
        rx = {}
        for i in range(inputs):
            snd, rcv = create_pair()
            self.tx.append(SendEnd(f"in{i}", snd, self.codec))
            rx[f"in{i}"] = ReceiveEnd(f"in{i}", rcv, self.codec, queue=16, rate_per_s=rate, clock=self.clock)
        self.hw: list[socket.socket] = []
        devs = {}
        for i in range(devices):
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.hw.append(theirs)
            devs[f"dev{i}"] = mine
        ctl, self.sup = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.p = Partition("p", inputs=rx, outputs={}, control=ctl, clock=self.clock, data_dir=Path("/tmp"),
                           config={}, heartbeat_ms=heartbeat_ms, devices=devs)

    def send(self, n: int = 1, s: str = "x", i: int = 0) -> bool:
        return self.tx[i].send(self.codec.make(n=n, s=s))

    def stop_later(self, delay: float) -> threading.Thread:
        def go() -> None:
            time.sleep(delay)
            self.sup.send(proto.encoder.encode(proto.Stop("test")))

        t = threading.Thread(target=go, daemon=True)
        t.start()
        return t

    def control_messages(self) -> list[Any]:
        """What the partition sent the supervisor so far."""
        return control_messages(self.sup)

    def run(self, *, guard_s: float = 10.0) -> float:
        """Run the loop in this (the main) thread; a guard stops it should a test's own stop not come."""
        guard = threading.Timer(guard_s, lambda: self.sup.send(proto.encoder.encode(proto.Stop("guard"))))
        guard.daemon = True
        guard.start()
        t = time.monotonic()
        try:
            self.p.run()
        finally:
            guard.cancel()
        return time.monotonic() - t


def _in_background(fn: Callable[[], None], delay: float = 0.0) -> threading.Thread:
    def go() -> None:
        time.sleep(delay)
        fn()

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_single_input_loop_handles_messages_and_leaves_nothing_behind() -> None:
    rig = Rig()
    got: list[int] = []

    def on(msg: Any) -> None:
        got.append(msg.n)
        if len(got) == 100:
            rig.p.stop()

    rig.p.on("in0", on)
    _in_background(lambda: [rig.send(n=i) for i in range(100)], delay=0.05)
    assert rig.run() < 5
    assert got == list(range(100))
    assert rig.p.stats()["in0"] == {"received": 100, "malformed": 0, "oversize": 0, "rate": 0, "overflow": 0}
    # the waker thread is gone, the wake signal handler restored, the input socket blocking again
    assert not [t for t in threading.enumerate() if t.name == "septum-waker"]
    assert signal.getsignal(WAKE_SIGNAL) == signal.SIG_DFL
    assert rig.p._inputs["in0"].sock.getblocking()


def test_stop_is_handled_at_once_while_the_loop_waits() -> None:
    rig = Rig(heartbeat_ms=60_000)  # nothing else would wake the loop for 30 s
    rig.stop_later(0.2)
    assert rig.run() < 1.0


def test_stop_from_a_handler_ends_the_loop_without_another_message() -> None:
    rig = Rig(heartbeat_ms=60_000)
    seen: list[int] = []

    def on(msg: Any) -> None:
        seen.append(msg.n)
        rig.p.stop()

    rig.p.on("in0", on)
    _in_background(lambda: rig.send(n=7), delay=0.05)
    assert rig.run() < 1.0
    assert seen == [7]


def test_stop_is_handled_during_a_flood() -> None:
    rig = Rig()
    rig.p.on("in0", lambda msg: None)
    done = threading.Event()

    def flood() -> None:
        while not done.is_set():
            if not rig.send(n=1):
                time.sleep(0.0005)

    _in_background(flood)
    rig.stop_later(0.3)
    try:
        assert rig.run() < 1.5
    finally:
        done.set()
    assert rig.p.stats()["in0"]["received"] > 100


def test_timers_fire_on_time_while_the_loop_waits() -> None:
    rig = Rig(heartbeat_ms=60_000)
    period = 0.010  # the safety monitor's period
    fired: list[float] = []

    def tick() -> None:
        fired.append(time.monotonic())
        if len(fired) == 30:
            rig.p.stop()

    start = time.monotonic()
    rig.p.every(period, tick)
    rig.run()
    assert len(fired) == 30
    late = sorted(t - (start + period * (i + 1)) for i, t in enumerate(fired))
    assert late[0] >= -0.0005, "a timer fired early"
    # a poll timeout is rounded up to the next millisecond; a kernel tick (SO_RCVTIMEO) would be more
    assert late[len(late) // 2] < 0.003, late


def test_a_timer_added_by_a_handler_wakes_the_waiting_loop() -> None:
    rig = Rig(heartbeat_ms=60_000)
    at: list[float] = []

    def on(msg: Any) -> None:
        t0 = time.monotonic()
        rig.p.after(0.02, lambda: (at.append(time.monotonic() - t0), rig.p.stop()))

    rig.p.on("in0", on)
    _in_background(lambda: rig.send(), delay=0.05)
    rig.run()
    assert at and 0.02 <= at[0] < 0.05, at


def test_heartbeats_are_sent_while_the_loop_waits() -> None:
    rig = Rig(heartbeat_ms=100)  # a beat every 50 ms
    rig.stop_later(0.5)
    rig.run()
    kinds = [type(m).__name__ for m in rig.control_messages()]
    assert 7 <= kinds.count("Beat") <= 12, kinds


def test_device_packets_are_handled_while_the_loop_waits() -> None:
    rig = Rig(devices=1, heartbeat_ms=60_000)
    got: list[tuple[bytes, float]] = []

    def on_packet(data: bytes) -> None:
        got.append((data, time.monotonic()))
        if not data:
            rig.p.stop()

    rig.p.on_device("dev0", on_packet)
    sent: list[float] = []

    def hardware() -> None:
        for i in range(5):
            time.sleep(0.02)
            sent.append(time.monotonic())
            rig.hw[0].send(bytes([i]))
        time.sleep(0.02)
        rig.hw[0].close()  # end of file: fn(b"") once

    _in_background(hardware)
    assert rig.run() < 2
    assert [d for d, _ in got] == [bytes([i]) for i in range(5)] + [b""]
    assert max(t - s for (_, t), s in zip(got[:5], sent, strict=True)) < 0.05


def test_every_drop_is_counted_and_reported_by_the_single_input_loop() -> None:
    rig = Rig(rate=5)  # a burst of 5, then 5 per second
    rig.p.on("in0", lambda msg: None)

    def traffic() -> None:
        tx = rig.tx[0]
        tx.send_raw(msgspec.msgpack.encode([1, "toolong"]))  # malformed
        tx.send_raw(b"\x00" * (rig.codec.max_size + 10))  # oversize
        for _ in range(20):
            rig.send()
        time.sleep(0.4)  # a drop report is due every 0.2 s
        rig.sup.send(proto.encoder.encode(proto.Stop("test")))

    _in_background(traffic, delay=0.05)
    rig.run()
    drops = rig.p.stats()["in0"]
    assert drops["oversize"] == 1 and drops["malformed"] == 1 and drops["overflow"] == 0
    # the rate limit is checked before decoding: the malformed message took one token of the burst
    assert drops["received"] + drops["rate"] == 20 and drops["received"] >= 4 and drops["rate"] >= 10
    reports = [m for m in rig.control_messages() if isinstance(m, proto.Drops)]
    assert reports and reports[-1].drops == {k: v for k, v in drops.items() if k != "received"}


def test_a_handler_registered_while_running_gets_the_next_message() -> None:
    rig = Rig(heartbeat_ms=60_000)
    second: list[int] = []

    def first(msg: Any) -> None:
        rig.p.on("in0", lambda m: (second.append(m.n), rig.p.stop()))

    rig.p.on("in0", first)
    _in_background(lambda: (rig.send(n=1), rig.send(n=2)), delay=0.05)
    rig.run()
    assert second == [2]


def test_the_loop_outside_the_main_thread_polls_and_still_works() -> None:
    rig = Rig(heartbeat_ms=60_000)
    got: list[int] = []
    rig.p.on("in0", lambda msg: got.append(msg.n))
    t = threading.Thread(target=rig.p.run, daemon=True)
    t.start()
    for i in range(10):
        assert rig.send(n=i)
    time.sleep(0.1)
    rig.sup.send(proto.encoder.encode(proto.Stop("test")))
    t.join(5)
    assert not t.is_alive() and got == list(range(10))


def test_a_failed_waker_ends_the_partition_instead_of_leaving_it_deaf(monkeypatch: pytest.MonkeyPatch) -> None:
    from septum.runtime import partition

    def broken(self: Any) -> None:
        time.sleep(0.1)
        raise OSError("simulated")

    monkeypatch.setattr(partition._Waker, "_watch_loop", broken)
    rig = Rig(heartbeat_ms=60_000)
    t = time.monotonic()
    with pytest.raises(RuntimeError, match="waker thread failed"):
        rig.run()
    assert time.monotonic() - t < 2
    assert signal.getsignal(WAKE_SIGNAL) == signal.SIG_DFL


def test_an_input_left_non_blocking_by_a_killed_predecessor_does_not_make_the_loop_spin() -> None:
    # the O_NONBLOCK flag belongs to the open file, which a restarted partition inherits
    rig = Rig(heartbeat_ms=60_000)
    rig.p._inputs["in0"].sock.setblocking(False)
    got: list[int] = []
    rig.p.on("in0", lambda msg: got.append(msg.n))
    _in_background(lambda: rig.send(n=3), delay=0.2)
    rig.stop_later(0.4)
    cpu = time.process_time()
    rig.run()
    assert got == [3]
    assert time.process_time() - cpu < 0.2, "the loop spun instead of waiting"
