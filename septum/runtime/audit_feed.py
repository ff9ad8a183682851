"""The supervisor's event stream, delivered to the ``service: audit`` partition.

The supervisor's decisions (starts, exits, restarts, safe state, drop reports, partitions' ``p.audit``
records) must end up in the same tamper-evident log as the partitions' own audit records. They travel
over a runtime-created ``socketpair(AF_UNIX, SOCK_SEQPACKET)`` that is not a model channel: one end is
handed to the audit partition like an owned device (``p.device(FEED_NAME)``), the other stays with the
supervisor. Nobody else holds either end.

Delivery is at-least-once and acknowledged: the audit service answers ``FeedAck(durable)`` once every
event up to that supervisor sequence number is on stable storage; the supervisor keeps unacknowledged
events (bounded) and, when the audit partition is restarted, sends them again. The audit service drops
events it has already logged (by sequence number), so a restart neither loses nor duplicates records
except in the narrow case documented in docs/services.md.
"""

from __future__ import annotations

import socket
import threading
from collections import deque

import msgspec

from . import protocol as proto
from .events import Event

FEED_NAME = "__supervisor__"
FEED_KIND = "supervisor-feed"
MAX_UNACKED = 100_000  # events kept for resending; beyond this new events are counted as dropped
MAX_PACKET = 60 * 1024  # under the 64 KiB device packet bound the partition reads with


class FeedAck(msgspec.Struct, frozen=True, tag=True):
    durable: int  # every supervisor event seq <= durable is on stable storage in the audit log


_encode = msgspec.msgpack.Encoder().encode
event_decoder = msgspec.msgpack.Decoder(Event)
ack_decoder = msgspec.msgpack.Decoder(FeedAck)


def encode_ack(durable: int) -> bytes:
    return _encode(FeedAck(durable))


def _encode_event(ev: Event) -> bytes:
    try:
        data = _encode(ev)
    except (TypeError, ValueError, OverflowError):
        data = b""
    if not data or len(data) > MAX_PACKET:
        # keep the record (who, what, when) even when its fields cannot travel
        slim = msgspec.structs.replace(ev, fields={"fields_omitted": True, "size": len(data)})
        data = _encode(slim)
    return data


class AuditFeed:
    """Supervisor side of the feed. ``offer`` is an EventStream subscriber (any thread)."""

    def __init__(self, audit_partition: str) -> None:
        self.partition = audit_partition
        self.sup_end, self.child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sup_end.setblocking(False)
        self._lock = threading.Lock()
        self._unacked: deque[tuple[int, bytes]] = deque()
        self._next = 0  # index in _unacked of the next event to send
        self.acked = 0
        self.dropped = 0  # events not kept because MAX_UNACKED were waiting (they remain in events.jsonl)
        self._dropped_reported = 0

    def device_end(self) -> proto.DeviceEnd:
        return proto.DeviceEnd(name=FEED_NAME, fd=self.child_end.fileno(), kind=FEED_KIND)

    def fileno(self) -> int:
        return self.sup_end.fileno()

    def offer(self, ev: Event) -> None:
        with self._lock:
            if ev.kind == "started" and ev.partition == self.partition and ev.fields.get("restarts"):
                self._next = 0  # a new audit process: send everything it has not acknowledged again
            if len(self._unacked) >= MAX_UNACKED:
                self.dropped += 1
            else:
                self._unacked.append((ev.seq, _encode_event(ev)))
            self._pump()

    def _pump(self) -> None:
        while self._next < len(self._unacked):
            try:
                self.sup_end.send(self._unacked[self._next][1], socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # the feed is closed at teardown; events stay in events.jsonl
            self._next += 1

    def on_readable(self) -> None:
        """Read acknowledgements; forget what is durable."""
        while True:
            try:
                data = self.sup_end.recv(256, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return
            if not data:
                return
            try:
                ack = ack_decoder.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # a confused audit partition cannot make the supervisor forget events
            with self._lock:
                self.acked = max(self.acked, ack.durable)
                while self._unacked and self._unacked[0][0] <= self.acked:
                    self._unacked.popleft()
                    self._next = max(0, self._next - 1)
        self.flush()

    def flush(self) -> None:
        with self._lock:
            self._pump()

    def take_dropped(self) -> int:
        """Events dropped since the last call (the supervisor reports them as an event)."""
        with self._lock:
            n = self.dropped - self._dropped_reported
            self._dropped_reported = self.dropped
            return n

    @property
    def unacked(self) -> int:
        with self._lock:
            return len(self._unacked)

    def close(self) -> None:
        for s in (self.sup_end, self.child_end):
            s.close()
