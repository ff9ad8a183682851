"""The ``service: audit`` partition: one tamper-evident log of every partition and of the supervisor.

Inputs:
* every model channel into this partition carrying an audit message (``event``, ``severity``, ``detail``,
  ``at_ms``): the record's partition is the channel's sender *from the model*, never a field of the
  message, so a compromised partition can lie about what happened but not about who said it;
* the supervisor's event stream on ``septum.runtime.audit_feed.FEED_NAME`` (starts, exits, restarts, safe
  state, drop reports, partitions' ``p.audit`` records), acknowledged once durable.

Records are appended to ``<data dir>/audit.log`` with ``AuditWriter`` and group-committed on this
partition's event loop: a commit happens when the batch bound is reached or the oldest record has waited
``max_delay`` (a one-shot ``p.after`` timer). Every commit is sealed (signed) before anything in it is
acknowledged; ``checkpoint_interval_s`` is how often a seal is pinned (the head file flushed for it), and a
periodic timer flushes the head of an idle log. The signing key ``audit.key`` is provisioned into the data
dir (``septum provision``).
"""

from __future__ import annotations

import json
import socket
import time
from functools import partial
from typing import Any, cast

import msgspec

from septum.crypto.keys import KeyFileError, parse_private_key
from septum.crypto.secrets_at_rest import SecretsError, secret
from septum.runtime.audit_feed import FEED_NAME, encode_ack, event_decoder
from septum.runtime.events import Event
from septum.runtime.partition import Partition, Timer

from .audit_log import SEVERITY_RANK, AuditError, AuditWriter, Record, Severity, read_entries_after
from .service_io import ServiceSetupError, service_model, write_state

LOG_NAME = "audit.log"
KEY_NAME = "audit.key"
FEED_STATE = "supervisor_feed.json"  # highest supervisor event seq that is durable in the log
MAX_FEED_PACKET = 64 * 1024
MAX_DETAIL_TEXT = 1024
MAX_RESCAN = 16 << 20  # read at most this much of the log at start to find events the state file missed


def _flat(fields: dict[str, Any]) -> dict[str, str | int | float | bool]:
    out: dict[str, str | int | float | bool] = {}
    for k, v in fields.items():
        if isinstance(v, bool | str | float) or (isinstance(v, int) and -(2**63) <= v < 2**64):
            out[str(k)[:64]] = v[:MAX_DETAIL_TEXT] if isinstance(v, str) else v
        else:
            out[str(k)[:64]] = json.dumps(v, default=str, sort_keys=True)[:MAX_DETAIL_TEXT]
    return out


def _should_forward(ev: Event) -> bool:
    return ev.source == "supervisor" or bool(ev.fields.get("audit"))


class AuditService:
    def __init__(self, p: Partition) -> None:
        self.p = p
        model = service_model(p)
        # channel -> sending partition, from the model the supervisor runs
        self.senders = {ch.name: ch.src for ch in model.channels if ch.dst == p.name and ch.name in p.inputs}
        try:
            # sealed at rest under the device key: the supervisor hands the plaintext (secrets_at_rest.py)
            key = parse_private_key(secret(p.config, p.data_dir, KEY_NAME), KEY_NAME)
        except (OSError, SecretsError, KeyFileError) as exc:
            raise ServiceSetupError(f"audit key not provisioned: {exc} (run septum provision)") from None
        cfg = p.config
        self.writer = AuditWriter(
            p.data_dir / LOG_NAME, key, partition=p.name,
            max_batch=int(cfg.get("max_batch", 4096)), max_delay=float(cfg.get("max_delay_s", 0.005)),
            checkpoint_interval=float(cfg.get("checkpoint_interval_s", 1.0)),
        )
        self.feed_state = p.data_dir / FEED_STATE
        self._run = p.clock.wall_origin  # identifies this run of the device (same for every restart)
        # Supervisor events arrive in order, except after a restart of this partition: what the dead process
        # left unread comes first, then the supervisor resends what was never acknowledged. So: every seq
        # <= feed_logged is in the log; feed_above holds seqs logged beyond a gap that a resend will fill.
        self.feed_logged, log_end = self._load_feed_state()
        self.feed_above: set[int] = set()
        self._learn_logged_since(log_end)
        self.feed_durable = self.feed_logged
        self.feed_duplicates = 0
        self._timer: Timer | None = None
        self.feed: socket.socket | None = p.device(FEED_NAME) if FEED_NAME in p.devices else None

    def _load_feed_state(self) -> tuple[int, int | None]:
        """(highest supervisor seq durable in the log, where the log ended then) for this run."""
        try:
            state = json.loads(self.feed_state.read_bytes())
            # sequence numbers restart with every run of the supervisor (a --state-dir may be reused)
            if state.get("run") != self._run:
                return 0, None
            end = state.get("log_end")
            return int(state["durable"]), end if isinstance(end, int) and not isinstance(end, bool) else None
        except FileNotFoundError:
            return 0, None
        except (OSError, ValueError, KeyError, TypeError):
            return 0, None  # at worst supervisor events are logged twice (each carries its sup_seq)

    def _learn_logged_since(self, log_end: int | None) -> None:
        """A kill between a commit and the state file's update leaves supervisor events in the log that the
        state does not name; the supervisor resends them (never acknowledged). Read that last commit, so
        that they are skipped, not logged twice."""
        if log_end is None or not 0 < log_end < self.writer.end_offset or self.writer.end_offset - log_end > MAX_RESCAN:
            return
        try:
            entries = read_entries_after(self.writer.path, log_end)
        except AuditError:
            return  # at worst they are logged twice, each with its sup_seq
        for e in entries:
            seq = e.body.detail.get("sup_seq") if isinstance(e.body, Record) else None
            if isinstance(seq, int) and not isinstance(seq, bool) and seq > self.feed_logged:
                self.feed_above.add(seq)
        while self.feed_logged + 1 in self.feed_above:
            self.feed_above.remove(self.feed_logged + 1)
            self.feed_logged += 1

    # ------------------------------------------------------------------ appending
    def _append(self, rec: Record) -> None:
        now = time.monotonic()
        try:
            self.writer.append(rec, now)
        except AuditError as exc:  # too large: keep who/what/when, say what was cut
            self.writer.append(msgspec.structs.replace(
                rec, message=rec.message[:256], detail={"truncated": True, "error": str(exc)[:200]}), now)
        if self.writer.due(now):
            self.commit()
        elif self._timer is None:
            self._timer = self.p.after(self.writer.max_delay * self.p.clock.scale, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.commit()

    def commit(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.writer.commit(time.monotonic())
        if self.feed_logged > self.feed_durable:
            self.feed_durable = self.feed_logged
            # No fsync: losing this file in a power cut means re-logging some events, never losing one.
            self._save_feed_state(sync=False)
            self._ack()

    def _save_feed_state(self, *, sync: bool) -> None:
        state = {"run": self._run, "durable": self.feed_durable, "log_end": self.writer.end_offset}
        write_state(self.feed_state, json.dumps(state).encode(), sync=sync)

    def _ack(self) -> None:
        if self.feed is None:
            return
        try:
            self.feed.send(encode_ack(self.feed_durable), socket.MSG_DONTWAIT)
        except OSError:
            pass  # the next ack covers this one

    # ------------------------------------------------------------------ sources
    def on_channel(self, channel: str, msg: Any) -> None:
        sev = getattr(msg, "severity", "notice")
        detail: dict[str, str | int | float | bool] = {"channel": channel}
        at_ms = getattr(msg, "at_ms", None)
        if isinstance(at_ms, int):
            detail["at_ms"] = at_ms
        if sev not in SEVERITY_RANK:
            detail["claimed_severity"] = str(sev)[:32]
            sev = "notice"
        self._append(Record(
            time=self.p.clock.wall(), partition=self.senders.get(channel, "?"),
            event=str(getattr(msg, "event", "") or "unnamed")[:64], severity=cast(Severity, sev),  # checked above
            message=str(getattr(msg, "detail", ""))[:MAX_DETAIL_TEXT], detail=detail,
        ))

    def on_feed(self, packet: bytes) -> None:
        if not packet:  # the supervisor is gone; the control channel will stop us
            return
        try:
            ev = event_decoder.decode(packet)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._append(Record(time=time.time(), partition=self.p.name, event="audit.feed-malformed",
                                severity="warning", message=str(exc)[:200]))
            return
        if ev.seq <= self.feed_logged or ev.seq in self.feed_above:
            self.feed_duplicates += 1  # resent after a restart of this partition: already in the log
            return
        if ev.seq == self.feed_logged + 1:
            self.feed_logged = ev.seq
            while self.feed_logged + 1 in self.feed_above:
                self.feed_above.remove(self.feed_logged + 1)
                self.feed_logged += 1
        else:
            self.feed_above.add(ev.seq)
        if _should_forward(ev):
            self._append(self.record_of(ev))
        # else: a partition's plain event (not an audit record): acknowledged at the next commit, not logged

    @staticmethod
    def record_of(ev: Event) -> Record:
        fields = dict(ev.fields)
        principal = fields.pop("principal", "")
        detail = _flat(fields)
        detail["sup_seq"] = ev.seq
        if ev.source == "supervisor":
            partition, event = "supervisor", f"supervisor.{ev.kind}"
            detail["subject"] = ev.partition or ""
        else:  # a partition's record, stamped with its name by the supervisor (not by the partition)
            partition, event = ev.partition or "?", ev.kind
        return Record(time=ev.time, partition=partition, event=event[:64], severity=ev.severity,
                      principal=principal if isinstance(principal, str) else str(principal), detail=detail)

    def drain_at_stop(self) -> None:
        """At stop, log what is already waiting on the feed and the channels before sealing the log."""
        if self.feed is not None:
            for _ in range(100_000):
                try:
                    packet = self.feed.recv(MAX_FEED_PACKET, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError, OSError):
                    break
                if not packet:
                    break
                self.on_feed(packet)
        # The runtime has no public "drain now" call; reading the receive ends here is the same work the
        # event loop does (size, rate, type and queue checks included).
        for name, end in getattr(self.p, "_inputs", {}).items():
            end.drain(100_000)
            while end.queue:
                self.on_channel(name, end.queue.popleft())

    def close(self) -> None:
        self.writer.close()
        if self.feed_logged > self.feed_durable:
            self.feed_durable = self.feed_logged
            self._save_feed_state(sync=True)
            self._ack()


def main(p: Partition) -> None:
    svc = AuditService(p)
    for ch in svc.senders:
        p.on(ch, partial(svc.on_channel, ch))
    if svc.feed is not None:
        p.on_device(FEED_NAME, svc.on_feed)
        svc._ack()  # tell a (re)starting supervisor feed where this log stands
    period = max(0.05, svc.writer.checkpoint_interval)
    p.every(period * p.clock.scale, svc.commit)  # flushes the head of an idle log when a pin is due
    p.audit("audit_started", severity="notice", log=LOG_NAME, next_seq=svc.writer.next_seq,
            torn_bytes=svc.writer.recovery.torn_bytes)
    try:
        p.run()
        svc.drain_at_stop()
    finally:
        svc.close()
