"""Channels: typed, bounded, one-way; a flood or malformed input is dropped, counted and reported."""

from __future__ import annotations

import socket
from pathlib import Path

import msgspec
import pytest
from runtime_helpers import running

from septum.runtime.channel import ReceiveEnd, SendEnd, create_pair
from septum.runtime.clock import Clock
from septum.runtime.codec import Codec


def _codec() -> Codec:
    return Codec.build("M", {"n": {"type": "int", "min": 0, "max": 9}, "s": {"type": "str", "max_len": 4}})


def test_receiver_counts_each_drop_reason() -> None:
    c = _codec()
    snd, rcv = create_pair()
    tx = SendEnd("m", snd, c)
    rx = ReceiveEnd("m", rcv, c, queue=2, rate_per_s=None, clock=Clock.start())
    assert tx.send(c.make(n=1, s="ok"))
    tx.send_raw(msgspec.msgpack.encode([10, "ok"]))  # out of range
    tx.send_raw(msgspec.msgpack.encode([1, "toolong"]))  # too long
    tx.send_raw(b"\xc1")  # not msgpack
    tx.send_raw(b"\x00" * (c.max_size + 10))  # oversize
    tx.send(c.make(n=2, s="a"))
    tx.send(c.make(n=3, s="b"))  # queue holds 2: this one overflows
    rx.drain(100)
    assert [m.n for m in rx.queue] == [1, 2]
    assert rx.drops == {"malformed": 3, "oversize": 1, "rate": 0, "overflow": 1}


def test_rate_limit_on_runtime_clock() -> None:
    c = _codec()
    snd, rcv = create_pair()
    tx = SendEnd("m", snd, c)
    # a clock frozen in time: the bucket never refills, so exactly its burst (5) gets through
    frozen = Clock(origin=0.0, scale=1e-12)
    rx = ReceiveEnd("m", rcv, c, queue=100, rate_per_s=5, clock=frozen)
    for _ in range(20):
        tx.send(c.make(n=1, s="x"))
    rx.drain(100)
    assert len(rx.queue) == 5 and rx.drops["rate"] == 15


def test_one_way_and_no_send_when_full() -> None:
    c = _codec()
    snd, rcv = create_pair()
    with pytest.raises(BrokenPipeError):
        rcv.send(b"\x92\x01\xa1x")  # backwards
    tx = SendEnd("m", snd, c)
    while tx.send(c.make(n=1, s="x")):  # never blocks: a full channel refuses and counts
        pass
    assert tx.full == 1
    assert snd.recv(10, socket.MSG_DONTWAIT) == b""  # the sender end reads nothing (shut down)


def test_codec_rejects_wrong_type_and_sender_validates() -> None:
    c = _codec()
    with pytest.raises(msgspec.ValidationError):
        c.make(n=11, s="x")
    with pytest.raises(msgspec.ValidationError):
        c.make(n=1, s="x", extra=1)
    with pytest.raises(TypeError):
        c.encode(Codec.build("Other", {"n": {"type": "int"}}).type(n=1))


def test_flood_and_malformed_leave_receiver_working(tmp_path: Path) -> None:
    with running("flood.yaml", tmp_path) as sup:
        done = sup.events.wait_for(lambda e: e.kind == "flood_done", timeout=15)
        assert done is not None
        # the receiver keeps answering pings after the flood
        pong = sup.events.wait_for(lambda e: e.kind == "pong", timeout=10, after=done.seq)
        assert pong is not None, "receiver stopped handling its other channel"
        drops = sup.events.wait_for(
            lambda e: e.kind == "channel_drops" and e.fields["drops"]["malformed"] >= 5
            and e.fields["drops"]["rate"] > 0, timeout=10)
        assert drops is not None, [e for e in sup.events.history if e.kind == "channel_drops"]
        assert drops.partition == "receiver" and drops.fields["channel"] == "flood"
        assert drops.fields["drops"]["oversize"] + drops.fields["drops"]["malformed"] == 6
        assert sup.partition_state("receiver") == "ready"
        assert not [e for e in sup.events.history if e.kind in ("heartbeat_missed", "exited")]


def test_drain_skipping_read_ahead_still_reads_every_message() -> None:
    # request/reply traffic makes drain() stop probing for a second message; a later burst must still
    # be read completely (a message per drain at worst, whole batches again once a probe finds more)
    c = _codec()
    snd, rcv = create_pair()
    tx = SendEnd("m", snd, c)
    rx = ReceiveEnd("m", rcv, c, queue=1000, rate_per_s=None, clock=Clock.start())
    for _ in range(10):  # one message at a time: every read-ahead probe finds nothing
        tx.send(c.make(n=1, s="x"))
        assert rx.drain(256) == 1
    for i in range(100):  # fits in the socket buffer
        assert tx.send(c.make(n=i % 10, s="b"))
    reads = []
    while len(rx.queue) < 110:
        reads.append(rx.drain(256))
        assert reads[-1] >= 1
    assert max(reads) > 1, "a backlog is drained in batches again"
    assert rx.received == 110 and rx.dropped() == 0
    assert rx.drain(256) == 0
