"""Typed round trip through Septum channels vs a raw SEQPACKET socketpair round trip of the same bytes.

Both run in the same run, as two forked processes, pinned to one CPU and unpinned; prints medians, p99
and the typed/raw ratio, plus one-way typed throughput. Figures only, no assertions.

The typed side is the real thing on both ends: two ``Partition`` objects running their event loops
(each has one input, so the single-input loop: blocking read, waker thread on the control channel,
timers, heartbeats on the control channel), with real ``SendEnd``/``ReceiveEnd``
(size, rate, strict decoding and queue bounds all enforced). The client partition sends a message,
the echo partition's handler sends it back, and the client's handler takes the time and sends the next
one. The raw side sends exactly the encoded bytes of those messages with one blocking ``send`` and one
blocking ``recv`` per hop. One-way throughput is a sender flooding a ``SendEnd`` into a receiving
``Partition`` whose handler counts messages.

    .venv/bin/python benchmarks/channel_latency.py [--n 20000] [--size 64] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from septum.runtime import protocol as proto
from septum.runtime.channel import ReceiveEnd, SendEnd, create_pair
from septum.runtime.clock import Clock
from septum.runtime.codec import Codec
from septum.runtime.partition import Partition

CODEC_FIELDS = {"seq": {"type": "int", "min": 0}, "payload": {"type": "bytes", "max_len": 64}}
HEARTBEAT_MS = 1000  # the loops heartbeat (every 0.5 s) as in production
RATE_PER_S = 1e6  # rate limit on, so the token bucket is in the path (high enough never to drop)
SEQ0 = 2**40  # a fixed-width msgpack int, so every message has the same size


def typed_codec() -> Codec:
    return Codec.build("Bench", CODEC_FIELDS)


def _payload_for(size: int, c: Codec) -> bytes:
    # choose the payload so that one encoded message is exactly `size` bytes (bin 8: 2 header bytes)
    base = len(c.encode(c.type(seq=SEQ0, payload=b"")))
    payload = b"x" * (size - base)
    assert len(c.encode(c.type(seq=SEQ0, payload=payload))) == size
    return payload


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _partition(name: str, inputs: dict[str, ReceiveEnd], outputs: dict[str, SendEnd],
               control: socket.socket, clock: Clock) -> Partition:
    return Partition(name, inputs=inputs, outputs=outputs, control=control, clock=clock,
                     data_dir=Path(tempfile.gettempdir()), config={}, heartbeat_ms=HEARTBEAT_MS)


def _stop(sup_end: socket.socket, pid: int) -> None:
    sup_end.send(proto.encoder.encode(proto.Stop("benchmark")))
    os.waitpid(pid, 0)


def raw_rtt(n: int, size: int, cpu: int | None) -> list[float]:
    c = typed_codec()
    data = c.encode(c.type(seq=SEQ0, payload=_payload_for(size, c)))  # the same bytes as the typed side
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        _pin(cpu)
        a.close()
        buf = bytearray(256)
        for _ in range(n):
            k = b.recv_into(buf)
            b.send(memoryview(buf)[:k])
        os._exit(0)
    _pin(cpu)
    b.close()
    buf = bytearray(256)
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        a.send(data)
        a.recv_into(buf)
        out.append((time.perf_counter_ns() - t) / 1000)
    os.waitpid(pid, 0)
    a.close()
    return out


def typed_rtt(n: int, size: int, cpu: int | None) -> list[float]:
    c = typed_codec()
    payload = _payload_for(size, c)
    clock = Clock.start()
    fwd_s, fwd_r = create_pair()
    back_s, back_r = create_pair()
    echo_ctl, echo_sup = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        _pin(cpu)
        for s in (fwd_s, back_r, echo_sup):
            s.close()
        echo = _partition("echo", {"fwd": ReceiveEnd("fwd", fwd_r, c, queue=16, rate_per_s=RATE_PER_S, clock=clock)},
                          {"back": SendEnd("back", back_s, c)}, echo_ctl, clock)
        echo.on("fwd", lambda msg: echo.send("back", msg))  # received messages are already validated
        echo.run()
        os._exit(0)
    _pin(cpu)
    for s in (fwd_r, back_s, echo_ctl):
        s.close()
    client_ctl, client_sup = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client = _partition("client", {"back": ReceiveEnd("back", back_r, c, queue=16, rate_per_s=RATE_PER_S,
                                                       clock=clock)},
                        {"fwd": SendEnd("fwd", fwd_s, c)}, client_ctl, clock)
    out: list[float] = []
    sent_at = [0]
    msg_type: Any = c.type

    def send_next(seq: int) -> None:
        sent_at[0] = time.perf_counter_ns()
        client.send("fwd", msg_type(seq=seq, payload=payload))

    def on_back(msg: Any) -> None:
        out.append((time.perf_counter_ns() - sent_at[0]) / 1000)
        if len(out) == n:
            client.stop()
        else:
            send_next(msg.seq + 1)

    client.on("back", on_back)
    client.after(0, lambda: send_next(SEQ0))
    client.run()
    _stop(echo_sup, pid)
    for s in (fwd_s, back_r, echo_sup, client_ctl, client_sup):
        s.close()
    return out


def one_way(n: int, size: int, cpu: int | None) -> tuple[float, dict[str, int]]:
    c = typed_codec()
    payload = _payload_for(size, c)
    snd, rcv = create_pair()
    pid = os.fork()
    if pid == 0:
        _pin(cpu)
        rcv.close()
        tx = SendEnd("flow", snd, c)
        poller = select.poll()
        poller.register(snd.fileno(), select.POLLOUT)
        sent = 0
        while sent < n:
            if tx.send(c.type(seq=SEQ0 + sent, payload=payload)):
                sent += 1
            else:
                poller.poll()  # a full channel refuses the send: wait for room, then retry
        os._exit(0)
    _pin(cpu)
    # the sender end stays open here, as the supervisor keeps its copies: the receiver never sees EOF
    ctl, sup = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    clock = Clock.start()
    # the queue bound is sized for the whole run: a throughput figure, not an overflow test
    rx = ReceiveEnd("flow", rcv, c, queue=n, rate_per_s=None, clock=clock)
    p = _partition("sink", {"flow": rx}, {}, ctl, clock)
    got = [0]

    def on_flow(msg: Any) -> None:
        got[0] += 1
        if got[0] == n:
            p.stop()

    p.on("flow", on_flow)
    t = time.perf_counter()
    p.run()
    elapsed = time.perf_counter() - t
    os.waitpid(pid, 0)
    for s in (snd, rcv, ctl, sup):
        s.close()
    return n / elapsed, dict(rx.drops)


def p99(xs: list[float]) -> float:
    return sorted(xs)[int(len(xs) * 0.99)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each measurement (medians are printed)")
    args = ap.parse_args()
    everything = set(range(os.cpu_count() or 1))
    for label, cpu in (("pinned to CPU 0", 0), ("unpinned", None)):
        raws: list[list[float]] = []
        typeds: list[list[float]] = []
        rates: list[float] = []
        drops: dict[str, int] = {}
        for _ in range(args.repeat):
            os.sched_setaffinity(0, everything)  # forked children inherit the parent's mask
            raws.append(raw_rtt(args.n, args.size, cpu)[100:])
            os.sched_setaffinity(0, everything)
            typeds.append(typed_rtt(args.n, args.size, cpu)[100:])
            os.sched_setaffinity(0, everything)
            rate, d = one_way(args.n * 10, args.size, cpu)
            rates.append(rate)
            drops = {k: drops.get(k, 0) + v for k, v in d.items()}
        os.sched_setaffinity(0, everything)
        rm = statistics.median(statistics.median(r) for r in raws)
        tm = statistics.median(statistics.median(t) for t in typeds)
        rp = statistics.median(p99(r) for r in raws)
        tp = statistics.median(p99(t) for t in typeds)
        ratios = [statistics.median(t) / statistics.median(r) for r, t in zip(raws, typeds, strict=True)]
        print(f"{label}: {args.size}-byte round trip over {args.n} messages, {args.repeat} run(s)")
        print(f"  raw socketpair   median {rm:7.2f} us   p99 {rp:7.2f} us")
        print(f"  typed partitions median {tm:7.2f} us   p99 {tp:7.2f} us")
        print(f"  ratio typed/raw  median {statistics.median(ratios):5.2f}x  p99 {tp / rp:5.2f}x"
              f"  (per run: {' '.join(f'{x:.2f}' for x in ratios)})")
        print(f"  one-way typed    {statistics.median(rates) / 1000:7.1f} k msg/s  (drops {drops})")


if __name__ == "__main__":
    main()
