"""One-way, typed, bounded channels between partitions.

A channel is one ``socketpair(AF_UNIX, SOCK_SEQPACKET)``. The supervisor makes the pair, shuts the
receiver's write side and the sender's read side (a SEQPACKET end is bidirectional, and a shutdown
cannot be undone by the process that later holds the end), and passes each end only to its partition.
A partition therefore cannot send on a channel it was not granted (it holds no handle) and cannot send
backwards on one it receives from (EPIPE).

The receiving end enforces the channel's contract, in this order, for every message:
size (at most the schema's maximum encoded size), rate (``token_bucket.TokenBucket`` on device time), strict
typed decoding, and (in ``drain``, which the audit service uses) the queue bound (tail drop). The partition
loops hold nothing in-process, so for them a backlog waits in the kernel's socket buffer and the sender's
``full`` count is the bound (docs/model.md, ``queue``). Every dropped message is counted by reason; the
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
from .token_bucket import TokenBucket

DROP_REASONS = ("malformed", "oversize", "rate", "overflow")
_DONTWAIT = socket.MSG_DONTWAIT
PROBE_BACKOFF_MAX = 63  # drains that may skip the read-ahead probe after it keeps finding nothing


def create_pair() -> tuple[socket.socket, socket.socket]:
    """A fresh channel: (sender end, receiver end), each already one-way."""
    snd, rcv = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    rcv.shutdown(socket.SHUT_WR)
    snd.shutdown(socket.SHUT_RD)
    return snd, rcv


class SendEnd:
    def __init__(self, name: str, sock: socket.socket, codec: Codec, rate_per_s: float | None = None) -> None:
        self.name = name
        self.sock = sock
        self.codec = codec
        # the rate the receiver enforces (from the model): a sender that answers outside callers (the
        # network partition) can refuse what the receiver would drop instead of sending it into the void
        self.rate_per_s = rate_per_s
        self._type = codec.type
        self._encode = codec.encoder.encode
        self._send = sock.send
        self.sent = 0
        self.full = 0  # sends refused because the receiver's buffer was full

    def send(self, msg: msgspec.Struct) -> bool:
        # Codec.encode inlined (same type check): this is on the path of every message
        if type(msg) is not self._type:
            raise TypeError(f"expected a {self.codec.message} message, got {type(msg).__name__}")
        try:
            self._send(self._encode(msg), _DONTWAIT)
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
        self.clock = clock  # rate limits count device time
        self.bucket = TokenBucket(rate_per_s, clock.now()) if rate_per_s is not None else None
        # one byte more than the largest valid message, so an oversized one is visible as such
        self._buf = bytearray(codec.max_size + 1)
        self._view = memoryview(self._buf)
        self.received = 0
        self.drops: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.last_error = ""
        self._probe_backoff = 0  # see drain()
        self._probe_skip = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self, budget: int) -> int:
        """Read up to ``budget`` waiting messages into the queue; returns how many were read.

        Every message read is accounted for: queued, or dropped and counted by reason. After the first
        message, reading on until the socket is empty costs a failed ``recv`` (a system call plus a
        Python exception, ~0.7 us) whenever only one message was waiting, which is the usual case for
        request/reply traffic. So that probe is skipped for a while after it finds nothing (backing off
        up to ``PROBE_BACKOFF_MAX`` drains) and resumes as soon as one finds a backlog; the event loop
        polls again anyway, so a message left in the socket is read on the next turn, and under a
        flood the receiver still empties the socket ``budget`` messages at a time.
        """
        recv_into = self.sock.recv_into
        buf = self._buf
        view = self._view
        limit = self.codec.max_size
        decode = self.codec.decoder.decode
        bucket = self.bucket
        queue = self.queue
        drops = self.drops
        # one clock reading for the batch (they arrived together; the refill differs by nanoseconds)
        now = self.clock.now() if bucket is not None else 0.0
        read = 0
        while read < budget:
            if read == 1 and self._probe_skip:
                self._probe_skip -= 1
                break
            try:
                n = recv_into(buf, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if read == 1:  # the probe found nothing: probe less often
                    self._probe_backoff = min(PROBE_BACKOFF_MAX, 2 * self._probe_backoff + 1)
                    self._probe_skip = self._probe_backoff
                break
            read += 1
            if n > limit:
                drops["oversize"] += 1
                continue
            if bucket is not None and not bucket.admit(now):
                drops["rate"] += 1
                continue
            try:
                msg = decode(view[:n])
            except DecodeErrors as exc:
                drops["malformed"] += 1
                self.last_error = str(exc)[:200]
                continue
            if len(queue) >= self.queue_limit:
                drops["overflow"] += 1
                continue
            self.received += 1
            queue.append(msg)
        if read > 1:  # a backlog: keep draining whole batches
            self._probe_backoff = 0
        return read

    def dropped(self) -> int:
        return sum(self.drops.values())
