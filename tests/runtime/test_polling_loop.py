"""The event loop of a partition with several input channels (``Partition._run_polling``): one message per
ready input per turn, so a flood on one input cannot starve another; every hostile message refused and
counted, never ending the partition; Stop, handler stops and a closed sender handled."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from runtime_helpers import control_messages

from septum.runtime import protocol as proto
from septum.runtime.channel import ReceiveEnd, SendEnd, create_pair
from septum.runtime.clock import Clock
from septum.runtime.codec import Codec
from septum.runtime.partition import Partition

pytestmark = pytest.mark.timeout(60)


class Rig:
    def __init__(self, inputs: int = 2, rate: float | None = None) -> None:
        self.codec = Codec.build("M", {"n": {"type": "int", "min": 0}, "s": {"type": "str", "max_len": 4}})
        clock = Clock.start()
        self.tx: list[SendEnd] = []
        rx = {}
        for i in range(inputs):
            snd, rcv = create_pair()
            self.tx.append(SendEnd(f"in{i}", snd, self.codec))
            rx[f"in{i}"] = ReceiveEnd(f"in{i}", rcv, self.codec, queue=16, rate_per_s=rate, clock=clock)
        ctl, self.sup = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.p = Partition("p", inputs=rx, outputs={}, control=ctl, clock=clock, data_dir=Path("/tmp"),
                           config={}, heartbeat_ms=60_000)
        self.loops: list[str] = []
        real = self.p._run_polling

        def spy() -> None:
            self.loops.append("polling")
            real()
        self.p._run_polling = spy  # type: ignore[method-assign]

    def send(self, i: int, n: int = 1) -> bool:
        return self.tx[i].send(self.codec.make(n=n, s="x"))

    def stop(self) -> None:
        self.sup.send(proto.encoder.encode(proto.Stop("test")))

    def run(self) -> None:
        guard = threading.Timer(20.0, self.stop)  # should the test's own stop not come
        guard.daemon = True
        guard.start()
        try:
            self.p.run()
        finally:
            guard.cancel()
        assert self.loops == ["polling"]

    def control_messages(self) -> list[Any]:
        return control_messages(self.sup)


def _later(fn: Any, delay: float) -> None:
    def go() -> None:
        time.sleep(delay)
        fn()
    threading.Thread(target=go, daemon=True).start()


@pytest.mark.parametrize("inputs", [2, 4])
def test_a_flooded_input_does_not_starve_the_others(inputs: int) -> None:
    rig = Rig(inputs)
    flood = 0
    while rig.send(0, n=flood):  # the flooded input's socket is full before the loop starts
        flood += 1
    for i in range(1, inputs):
        for n in range(5):
            assert rig.send(i, n=n)
    order: list[str] = []
    total = flood + 5 * (inputs - 1)
    for i in range(inputs):
        rig.p.on(f"in{i}", lambda msg, name=f"in{i}": (order.append(name), len(order) == total and rig.p.stop()))
    rig.run()
    assert len(order) == total
    # every turn takes one message from each ready input: the quiet inputs' messages are all handled in the
    # first five turns, the flood's messages one per turn among them
    first = order[: 5 * inputs]
    assert first == [f"in{i}" for i in range(inputs)] * 5
    assert rig.p.stats()["in0"]["received"] == flood and rig.p._inputs["in0"].dropped() == 0


def test_every_hostile_message_is_refused_counted_and_reported_and_the_partition_carries_on() -> None:
    rig = Rig(2, rate=5)  # a burst of 5, then 5 per second
    other: list[int] = []
    rig.p.on("in0", lambda msg: None)
    rig.p.on("in1", lambda msg: other.append(msg.n))

    def traffic() -> None:
        tx = rig.tx[0]
        tx.send_raw(msgspec.msgpack.encode([1, "toolong"]))  # malformed (fails validation)
        tx.send_raw(b"\xc1")  # not msgpack at all
        tx.send_raw(b"")  # an empty frame
        tx.send_raw(b"\x00" * (rig.codec.max_size + 10))  # oversize
        for _ in range(20):
            rig.send(0)
        rig.send(1, n=42)  # the other input is still served
        time.sleep(0.4)  # a drop report is due every 0.2 s
        rig.send(1, n=43)
        time.sleep(0.05)
        rig.stop()

    _later(traffic, 0.05)
    rig.run()
    drops = rig.p.stats()["in0"]
    assert drops["oversize"] == 1 and drops["malformed"] == 3 and drops["overflow"] == 0
    # the rate limit is checked before decoding: the three malformed frames took tokens of the burst
    assert drops["received"] + drops["rate"] == 20 and drops["rate"] >= 15
    assert other == [42, 43]
    assert rig.p._inputs["in0"].last_error
    reports = [m for m in rig.control_messages() if isinstance(m, proto.Drops)]
    assert reports and reports[-1].channel == "in0"
    assert reports[-1].drops == {k: v for k, v in drops.items() if k != "received"}


def test_stop_from_a_handler_ends_the_turn_before_the_next_input() -> None:
    rig = Rig(2)
    seen: list[str] = []
    rig.p.on("in0", lambda msg: (seen.append("in0"), rig.p.stop()))
    rig.p.on("in1", lambda msg: seen.append("in1"))
    assert rig.send(0) and rig.send(1)  # both ready in the first turn
    rig.run()
    assert seen == ["in0"]


def test_stop_is_handled_while_the_loop_waits() -> None:
    rig = Rig(3)
    got: list[int] = []
    rig.p.on("in2", lambda msg: got.append(msg.n))
    _later(lambda: rig.send(2, n=9), 0.05)
    _later(rig.stop, 0.2)
    rig.run()
    assert got == [9]


def test_a_closed_sending_end_is_not_read_again_and_the_other_inputs_still_work() -> None:
    rig = Rig(2)
    got: list[int] = []
    rig.p.on("in1", lambda msg: got.append(msg.n))
    rig.tx[0].sock.close()  # end of file on in0: readable for ever, nothing to read
    _later(lambda: rig.send(1, n=5), 0.1)
    _later(rig.stop, 0.3)
    rig.run()
    assert got == [5]
    end = rig.p._inputs["in0"]
    assert end.dropped() == 0, "end of file is not a stream of malformed messages"
    assert "closed" in end.last_error
