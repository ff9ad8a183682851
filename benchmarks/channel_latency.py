"""Typed round trip through Septum channels vs a raw SEQPACKET socketpair round trip of the same bytes.

Both run in this one process pair (fork), in the same run, pinned to one CPU and unpinned; prints
medians, p99 and the typed/raw ratio, plus one-way typed throughput. Figures only, no assertions.

    .venv/bin/python benchmarks/channel_latency.py [--n 20000]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import time

from septum.runtime.channel import ReceiveEnd, SendEnd, create_pair
from septum.runtime.clock import Clock
from septum.runtime.codec import Codec

CODEC_FIELDS = {"seq": {"type": "int", "min": 0}, "payload": {"type": "bytes", "max_len": 64}}


def typed_codec() -> Codec:
    return Codec.build("Bench", CODEC_FIELDS)


def _payload_for(size: int, c: Codec) -> bytes:
    # choose the payload so that one encoded message is exactly `size` bytes
    base = len(c.encode(c.type(seq=2**40, payload=b"")))
    return b"x" * (size - base - 1)


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def raw_rtt(n: int, size: int, cpu: int | None) -> list[float]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    data = b"x" * size
    pid = os.fork()
    if pid == 0:
        _pin(cpu)
        a.close()
        for _ in range(n):
            b.send(b.recv(256))
        os._exit(0)
    _pin(cpu)
    b.close()
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        a.send(data)
        a.recv(256)
        out.append((time.perf_counter_ns() - t) / 1000)
    os.waitpid(pid, 0)
    a.close()
    return out


def _wait_one(rx: ReceiveEnd, poller: select.poll) -> object:
    while not rx.queue:
        poller.poll()
        rx.drain(1)
    return rx.queue.popleft()


def typed_rtt(n: int, size: int, cpu: int | None) -> list[float]:
    c = typed_codec()
    payload = _payload_for(size, c)
    clock = Clock.start()
    fwd_s, fwd_r = create_pair()
    back_s, back_r = create_pair()
    pid = os.fork()
    if pid == 0:
        _pin(cpu)
        rx = ReceiveEnd("fwd", fwd_r, c, queue=16, rate_per_s=1e9, clock=clock)
        tx = SendEnd("back", back_s, c)
        poller = select.poll()
        poller.register(rx.fileno(), select.POLLIN)
        for _ in range(n):
            msg = _wait_one(rx, poller)
            tx.send(c.type(seq=msg.seq, payload=msg.payload))  # type: ignore[attr-defined]
        os._exit(0)
    _pin(cpu)
    tx = SendEnd("fwd", fwd_s, c)
    rx = ReceiveEnd("back", back_r, c, queue=16, rate_per_s=1e9, clock=clock)
    poller = select.poll()
    poller.register(rx.fileno(), select.POLLIN)
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        tx.send(c.type(seq=2**40 + i, payload=payload))
        _wait_one(rx, poller)
        out.append((time.perf_counter_ns() - t) / 1000)
    os.waitpid(pid, 0)
    return out


def one_way(n: int, size: int, cpu: int | None) -> float:
    c = typed_codec()
    payload = _payload_for(size, c)
    snd, rcv = create_pair()
    pid = os.fork()
    if pid == 0:
        _pin(cpu)
        tx = SendEnd("flow", snd, c)
        poller = select.poll()
        poller.register(snd.fileno(), select.POLLOUT)
        msg = c.type(seq=2**40, payload=payload)
        sent = 0
        while sent < n:
            if tx.send(msg):
                sent += 1
            else:
                poller.poll()
        os._exit(0)
    _pin(cpu)
    rx = ReceiveEnd("flow", rcv, c, queue=1_000_000, rate_per_s=None, clock=Clock.start())
    poller = select.poll()
    poller.register(rx.fileno(), select.POLLIN)
    got = 0
    t = time.perf_counter()
    while got < n:
        poller.poll()
        got += rx.drain(4096)
        rx.queue.clear()
    elapsed = time.perf_counter() - t
    os.waitpid(pid, 0)
    return n / elapsed


def p99(xs: list[float]) -> float:
    return sorted(xs)[int(len(xs) * 0.99)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    everything = set(range(os.cpu_count() or 1))
    for label, cpu in (("pinned to CPU 0", 0), ("unpinned", None)):
        os.sched_setaffinity(0, everything)  # forked children inherit the parent's mask
        raw = raw_rtt(args.n, args.size, cpu)[100:]
        typed = typed_rtt(args.n, args.size, cpu)[100:]
        rm, tm = statistics.median(raw), statistics.median(typed)
        print(f"{label}: {args.size}-byte round trip over {args.n} messages")
        print(f"  raw socketpair   median {rm:7.2f} us   p99 {p99(raw):7.2f} us")
        print(f"  typed channel    median {tm:7.2f} us   p99 {p99(typed):7.2f} us")
        print(f"  ratio typed/raw  median {tm / rm:5.2f}x  p99 {p99(typed) / p99(raw):5.2f}x")
        rate = one_way(args.n * 10, args.size, cpu)
        print(f"  one-way typed    {rate / 1000:7.1f} k msg/s")


if __name__ == "__main__":
    main()
