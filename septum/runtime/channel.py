"""One-way, typed, bounded channels between partitions.

A channel is one ``socketpair(AF_UNIX, SOCK_SEQPACKET)``. The supervisor makes the pair, shuts the
receiver's write side and the sender's read side (a SEQPACKET end is bidirectional, and a shutdown
cannot be undone by the process that later holds the end), and passes each end only to its partition.
A partition therefore cannot send on a channel it was not granted (it holds no handle) and cannot send
backwards on one it receives from (EPIPE).

The receiving end enforces the channel's contract, in this order, for every message:
size (at most the schema's maximum encoded size), rate (token bucket on the runtime clock), strict
typed decoding, and the queue bound (tail drop). Every dropped message is counted by reason; the
partition runtime reports the counters to the supervisor, which turns them into events.
Sends never block: a full channel makes ``send`` return False and count a ``full`` drop, so a stuck
receiver cannot stall its sender.
"""

from __future__ import annotations

import socket
from collections import deque
from typing import Any

import msgspec

from .clock import Clock
from .codec import Codec, DecodeErrors

DROP_REASONS = ("malformed", "oversize", "rate", "overflow")


def create_pair() -> tuple[socket.socket, socket.socket]:
    """A fresh channel: (sender end, receiver end), each already one-way."""
    snd, rcv = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    rcv.shutdown(socket.SHUT_WR)
    snd.shutdown(socket.SHUT_RD)
    return snd, rcv


class TokenBucket:
    """Admits ``rate`` messages per second of device time, with a burst of one second's worth."""

    __slots__ = ("capacity", "clock", "last", "rate", "tokens")

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.last = clock.now()

    def admit(self) -> bool:
        now = self.clock.now()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SendEnd:
    def __init__(self, name: str, sock: socket.socket, codec: Codec) -> None:
        self.name = name
        self.sock = sock
        self.codec = codec
        self.sent = 0
        self.full = 0  # sends refused because the receiver's buffer was full

    def send(self, msg: msgspec.Struct) -> bool:
        data = self.codec.encode(msg)
        try:
            self.sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            self.full += 1
            return False
        self.sent += 1
        return True

    def send_raw(self, data: bytes) -> bool:
        """Send already-encoded bytes (tests and benchmarks; the receiver still validates them)."""
        try:
            self.sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            self.full += 1
            return False
        self.sent += 1
        return True

    def fileno(self) -> int:
        return self.sock.fileno()


class ReceiveEnd:
    def __init__(
        self,
        name: str,
        sock: socket.socket,
        codec: Codec,
        *,
        queue: int,
        rate_per_s: float | None,
        clock: Clock,
    ) -> None:
        self.name = name
        self.sock = sock
        self.codec = codec
        self.queue_limit = queue
        self.queue: deque[Any] = deque()
        self.bucket = TokenBucket(rate_per_s, clock) if rate_per_s is not None else None
        # one byte more than the largest valid message, so an oversized one is visible as such
        self._buf = bytearray(codec.max_size + 1)
        self._view = memoryview(self._buf)
        self.received = 0
        self.drops: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.last_error = ""

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self, budget: int) -> int:
        """Read up to ``budget`` waiting messages into the queue; returns how many were read."""
        recv_into = self.sock.recv_into
        limit = self.codec.max_size
        read = 0
        while read < budget:
            try:
                n = recv_into(self._buf, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            read += 1
            if n > limit:
                self.drops["oversize"] += 1
                continue
            if self.bucket is not None and not self.bucket.admit():
                self.drops["rate"] += 1
                continue
            try:
                msg = self.codec.decode(self._view[:n])
            except DecodeErrors as exc:
                self.drops["malformed"] += 1
                self.last_error = str(exc)[:200]
                continue
            if len(self.queue) >= self.queue_limit:
                self.drops["overflow"] += 1
                continue
            self.received += 1
            self.queue.append(msg)
        return read

    def dropped(self) -> int:
        return sum(self.drops.values())
