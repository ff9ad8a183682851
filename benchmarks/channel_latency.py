"""Typed round trip through Septum channels vs a raw SEQPACKET socketpair, for every partition shape of the pump
(1, 2, 4, 8 input channels), and one-way typed throughput with rate limits on.

Round trip. The typed side is the real thing on both ends: two forked ``Partition`` objects running their
event loops (heartbeats on, every input rate-limited so the token bucket is in the path, real
``SendEnd``/``ReceiveEnd`` with size, rate and strict decoding enforced). Both partitions have the shape's
number of inputs, and the traffic uses all of them: round trip ``i`` goes out on ``fwd[i % k]`` and comes
back on ``back[i % k]``, so a multi-input loop never knows in advance which input the next message takes.
One input is the single-input loop (blocking read plus waker thread), two or more the polling loop. The
baseline sends exactly the same encoded bytes over one raw socketpair, one blocking ``send`` and one
blocking ``recv`` per hop. Raw and typed trials alternate (raw, typed 1, raw, typed 2, ...), each ratio is
a typed trial over the raw trial just before it, and everything is run pinned to one CPU and unpinned.

Throughput. A forked sender floods a ``SendEnd`` (retrying when the channel is full) into a receiving
``Partition`` whose inputs are rate-limited (at a rate above what it can reach, so nothing is dropped;
a drop fails the trial) and whose handler counts messages.

A trial fails when a child exits badly, a message is dropped or lost, or it does not finish in time; failed
trials are counted and printed, never dropped silently. The GOAL lines use the worse of pinned and unpinned.

    .venv/bin/python benchmarks/channel_latency.py [--n 10000] [--runs 5] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from septum.runtime import protocol as proto
from septum.runtime.channel import ReceiveEnd, SendEnd, create_pair
from septum.runtime.clock import Clock
from septum.runtime.codec import Codec
from septum.runtime.partition import Partition

CODEC_FIELDS = {"seq": {"type": "int", "min": 0}, "payload": {"type": "bytes", "max_len": 64}}
HEARTBEAT_MS = 1000  # the loops heartbeat (every 0.5 s) as in production
RATE_PER_S = 1e7  # rate limit on, so the token bucket is in the path (high enough never to drop)
SEQ0 = 2**40  # a fixed-width msgpack int, so every message has the same size
SHAPES = (1, 2, 4, 8)
RTT_GOAL = 1.3
THROUGHPUT_GOAL = 300_000
WARMUP = 100  # round trips left out of each trial's figures
TRIAL_TIMEOUT_S = 60.0


class TrialFailed(Exception):
    pass


def typed_codec() -> Codec:
    return Codec.build("Bench", CODEC_FIELDS)


def _payload_for(size: int, c: Codec) -> bytes:
    # choose the payload so that one encoded message is exactly `size` bytes (bin 8: 2 header bytes)
    base = len(c.encode(c.type(seq=SEQ0, payload=b"")))
    payload = b"x" * (size - base)
    if len(c.encode(c.type(seq=SEQ0, payload=payload))) != size:
        raise SystemExit(f"cannot make a {size}-byte message")
    return payload


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _partition(name: str, inputs: dict[str, ReceiveEnd], outputs: dict[str, SendEnd],
               control: socket.socket, clock: Clock) -> Partition:
    return Partition(name, inputs=inputs, outputs=outputs, control=control, clock=clock,
                     data_dir=Path(tempfile.gettempdir()), config={}, heartbeat_ms=HEARTBEAT_MS)


def _reap(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise TrialFailed(f"child exited with {os.waitstatus_to_exitcode(status)}")


def _child(fn: Callable[[], None]) -> None:
    """Run a forked child's work; its exit code says whether it went right."""
    try:
        fn()
    except BaseException:  # any failure is reported to the parent as the exit code
        os._exit(1)
    os._exit(0)


def raw_rtt(n: int, size: int, cpu: int | None) -> list[float]:
    c = typed_codec()
    data = c.encode(c.type(seq=SEQ0, payload=_payload_for(size, c)))  # the same bytes as the typed side
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        def echo() -> None:
            _pin(cpu)
            a.close()
            buf = bytearray(256)
            for _ in range(n):
                k = b.recv_into(buf)
                b.send(memoryview(buf)[:k])
        _child(echo)
    _pin(cpu)
    b.close()
    buf = bytearray(256)
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        a.send(data)
        if a.recv_into(buf) != len(data):
            raise TrialFailed("raw echo lost its peer")
        out.append((time.perf_counter_ns() - t) / 1000)
    _reap(pid)
    a.close()
    return out


def _ends(k: int, c: Codec, clock: Clock, prefix: str) -> tuple[list[SendEnd], dict[str, ReceiveEnd]]:
    tx, rx = [], {}
    for i in range(k):
        snd, rcv = create_pair()
        tx.append(SendEnd(f"{prefix}{i}", snd, c))
        rx[f"{prefix}{i}"] = ReceiveEnd(f"{prefix}{i}", rcv, c, queue=16, rate_per_s=RATE_PER_S, clock=clock)
    return tx, rx


def typed_rtt(n: int, size: int, k: int, cpu: int | None) -> list[float]:
    c = typed_codec()
    payload = _payload_for(size, c)
    clock = Clock.start()
    fwd_tx, fwd_rx = _ends(k, c, clock, "fwd")
    back_tx, back_rx = _ends(k, c, clock, "back")
    echo_ctl, echo_sup = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        def echo() -> None:
            _pin(cpu)
            for e in fwd_tx:
                e.sock.close()
            for r in back_rx.values():
                r.sock.close()
            echo_sup.close()
            p = _partition("echo", fwd_rx, {e.name: e for e in back_tx}, echo_ctl, clock)
            def echo_on(back: str) -> Callable[[Any], None]:
                def on(msg: Any) -> None:  # received messages are already validated: sent back as they are
                    p.send(back, msg)
                return on
            for i in range(k):
                p.on(f"fwd{i}", echo_on(f"back{i}"))
            p.run()
            if any(r.dropped() for r in fwd_rx.values()):
                raise TrialFailed("echo dropped a message")
        _child(echo)
    _pin(cpu)
    for r in fwd_rx.values():
        r.sock.close()
    for e in back_tx:
        e.sock.close()
    echo_ctl.close()
    client_ctl, client_sup = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client = _partition("client", back_rx, {e.name: e for e in fwd_tx}, client_ctl, clock)
    out: list[float] = []
    sent_at = [0]
    msg_type: Any = c.type
    fwd_names = [f"fwd{i}" for i in range(k)]
    timed_out = [False]

    def send_next(seq: int) -> None:
        sent_at[0] = time.perf_counter_ns()
        client.send(fwd_names[seq % k], msg_type(seq=seq, payload=payload))

    def on_back(msg: Any) -> None:
        out.append((time.perf_counter_ns() - sent_at[0]) / 1000)
        if len(out) == n:
            client.stop()
        else:
            send_next(msg.seq + 1)

    def give_up() -> None:
        timed_out[0] = True
        client.stop()

    for i in range(k):
        client.on(f"back{i}", on_back)
    client.after(0, lambda: send_next(SEQ0))
    client.after(TRIAL_TIMEOUT_S, give_up)
    client.run()
    echo_sup.send(proto.encoder.encode(proto.Stop("benchmark")))
    _reap(pid)
    for s in (echo_sup, client_ctl, client_sup, *(e.sock for e in fwd_tx), *(r.sock for r in back_rx.values())):
        s.close()
    if timed_out[0] or len(out) != n:
        raise TrialFailed(f"{len(out)} of {n} round trips in {TRIAL_TIMEOUT_S:.0f} s")
    if any(r.dropped() for r in back_rx.values()):
        raise TrialFailed("client dropped a message")
    return out


def one_way(n: int, size: int, k: int, cpu: int | None) -> tuple[float, float]:
    """Messages per second into a partition with ``k`` rate-limited inputs, the flood on one of them, and
    the receiver's CPU time per message in us (how much of the time it was busy, not waiting for the sender)."""
    c = typed_codec()
    payload = _payload_for(size, c)
    clock = Clock.start()
    tx, rx = _ends(k, c, clock, "in")
    pid = os.fork()
    if pid == 0:
        def flood() -> None:
            _pin(cpu)
            for r in rx.values():
                r.sock.close()
            poller = select.poll()
            poller.register(tx[0].sock.fileno(), select.POLLOUT)
            sent = 0
            while sent < n:
                if tx[0].send(c.type(seq=SEQ0 + sent, payload=payload)):
                    sent += 1
                else:
                    poller.poll()  # a full channel refuses the send: wait for room, then retry
        _child(flood)
    _pin(cpu)
    # the sender ends stay open here, as the supervisor keeps its copies: the receiver never sees EOF
    ctl, sup = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    p = _partition("sink", rx, {}, ctl, clock)
    got = [0]
    timed_out = [False]

    def on_msg(msg: Any) -> None:
        got[0] += 1
        if got[0] == n:
            p.stop()

    def give_up() -> None:
        timed_out[0] = True
        p.stop()

    p.on("in0", on_msg)
    p.after(TRIAL_TIMEOUT_S, give_up)
    t, busy = time.perf_counter(), time.thread_time()
    p.run()
    elapsed, busy = time.perf_counter() - t, time.thread_time() - busy
    _reap(pid)
    for s in (ctl, sup, *(e.sock for e in tx), *(r.sock for r in rx.values())):
        s.close()
    dropped = sum(r.dropped() for r in rx.values())
    if timed_out[0] or got[0] != n or dropped:
        raise TrialFailed(f"{got[0]} of {n} messages, {dropped} dropped")
    return n / elapsed, busy / n * 1e6


def _spread(xs: list[float], fmt: str = "{:.2f}") -> str:
    if not xs:
        return "no successful trial"
    return f"median {fmt.format(statistics.median(xs))} (min {fmt.format(min(xs))} - max {fmt.format(max(xs))})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000, help="round trips per trial")
    ap.add_argument("--runs", type=int, default=5, help="trials of each measurement (medians are printed)")
    ap.add_argument("--size", type=int, default=64, help="bytes of one encoded message")
    ap.add_argument("--flood", type=int, default=200_000, help="messages per throughput trial")
    args = ap.parse_args()
    everything = set(range(os.cpu_count() or 1))
    print(f"{args.size}-byte messages, {args.n} round trips per trial, {args.runs} runs, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    worst_ratio: dict[int, float | None] = {}
    worst_rate: float | None = None
    failures = 0
    for label, cpu in (("pinned to CPU 0", 0), ("unpinned", None)):
        raw_med: list[float] = []
        ratios: dict[int, list[float]] = {k: [] for k in SHAPES}
        typed_med: dict[int, list[float]] = {k: [] for k in SHAPES}
        rates: dict[int, list[float]] = {1: [], 8: []}
        busy: dict[int, list[float]] = {1: [], 8: []}
        failed: dict[str, int] = {}
        for _ in range(args.runs):
            for k in SHAPES:  # A B A B: every typed trial next to its own raw baseline
                os.sched_setaffinity(0, everything)  # forked children inherit the parent's mask
                try:
                    raw = statistics.median(raw_rtt(args.n, args.size, cpu)[WARMUP:])
                    os.sched_setaffinity(0, everything)
                    typed = statistics.median(typed_rtt(args.n, args.size, k, cpu)[WARMUP:])
                except TrialFailed as exc:
                    failed[f"rtt {k}"] = failed.get(f"rtt {k}", 0) + 1
                    print(f"  failed trial ({label}, {k} inputs): {exc}")
                    continue
                raw_med.append(raw)
                typed_med[k].append(typed)
                ratios[k].append(typed / raw)
            for k in rates:
                os.sched_setaffinity(0, everything)
                try:
                    rate, cpu_us = one_way(args.flood, args.size, k, cpu)
                    rates[k].append(rate)
                    busy[k].append(cpu_us)
                except TrialFailed as exc:
                    failed[f"one-way {k}"] = failed.get(f"one-way {k}", 0) + 1
                    print(f"  failed trial ({label}, one-way {k} inputs): {exc}")
        os.sched_setaffinity(0, everything)
        failures += sum(failed.values())
        print(f"{label}:")
        print(f"  raw socketpair round trip          {_spread(raw_med)} us")
        for k in SHAPES:
            print(f"  typed, {k} input(s) round trip      {_spread(typed_med[k])} us   "
                  f"ratio {_spread(ratios[k])}x")
            if ratios[k]:
                r = statistics.median(ratios[k])
                prev = worst_ratio.get(k, 0.0)
                worst_ratio[k] = max(r, prev if prev is not None else 0.0)
            else:
                worst_ratio[k] = None
        for k, xs in rates.items():
            print(f"  one-way typed, rate-limited, {k} input(s)  "
                  f"{_spread([x / 1000 for x in xs], '{:.1f}')} k msg/s; receiver CPU per message "
                  f"{_spread(busy[k])} us")
        r1 = statistics.median(rates[1]) if rates[1] else None
        worst_rate = r1 if worst_rate is None or r1 is None else min(worst_rate, r1)
        print(f"  failed trials: {sum(failed.values())} {failed if failed else ''}")
    print(f"load average {os.getloadavg()[0]:.2f} at end; failed trials in all: {failures}")
    for k in SHAPES:
        ratio = worst_ratio.get(k)
        if ratio is None:
            print(f"GOAL channel_rtt_{k}_inputs: no successful trial vs <= {RTT_GOAL}x — missed")
        else:
            print(f"GOAL channel_rtt_{k}_inputs: {ratio:.2f}x vs <= {RTT_GOAL}x — "
                  f"{'met' if ratio <= RTT_GOAL else 'missed'}")
    if worst_rate is None:
        print("GOAL channel_throughput_rate_limited: no successful trial vs >= 300k msg/s — missed")
    else:
        print(f"GOAL channel_throughput_rate_limited: {worst_rate / 1000:.0f}k msg/s vs >= 300k msg/s — "
              f"{'met' if worst_rate >= THROUGHPUT_GOAL else 'missed'}")


if __name__ == "__main__":
    main()
