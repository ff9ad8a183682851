"""Retention per record class for the sealed audit log, by compaction that keeps it verifiable.

Every record belongs to a *class* (first matching event pattern of the policy; see ``DEFAULT_POLICY``),
and each class has a retention period in days. A record is never removed before its class's period is over
(``septum audit compact`` enforces it: the period is checked record by record, whatever is asked).

The log is a hash chain sealed at every commit, so records cannot simply be cut out. Compaction replaces a
*prefix* of the log, up to a seal ``S``, with one signed ``Compacted`` record (the log's first frame) that:

* names the chain head the rest of the log commits to (``head_digest``, the frame hash of seal ``S``) and
  holds that seal's own payload, whose Ed25519 signature ``verify`` re-checks;
* says what was compacted: the sequence range, records removed per class, seals removed, the time range of
  the removed records, the policy applied, and how many compactions there were;
* binds the records of the prefix that are still within their retention (``carried`` frames, byte for byte
  the original entries, right after it) by a SHA-256 over their frame hashes.

It is signed with the device's audit key, over every field. ``verify`` therefore checks: the Compacted
record's signature, the seal it names, each carried frame against ``carried_digest``, and then the rest of
the chain exactly as before (the first entry after ``S`` must commit to ``head_digest``). A record edited,
removed or inserted after compaction -- carried or in the chain -- is still found, and the head file and
every anchor exported after ``S`` still check. Anchors of seals inside the compacted prefix cannot be
checked any more; ``verify`` says so.

Compaction is offline: it takes the writer's lock (so the audit service must be stopped), refuses a log
that does not verify (it never launders damage), keeps the head's seal and everything after it, rewrites
the head file's offsets, and is crash-safe by roll-forward: the new log and head are written and flushed
beside the old ones and a marker names them before either is renamed; running it again finishes an
interrupted compaction first. ``--archive`` keeps a copy of the log as it was before.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from septum.crypto.keys import key_id
from septum.errors import InvariantBroken
from septum.staged_write import fsync_dir, write_atomic

from .audit_log import (
    _LEN,
    HEAD_SLOT,
    MAGIC,
    ZERO_HASH,
    AuditError,
    Checkpoint,
    Compacted,
    Damage,
    Entry,
    Head,
    LogEntry,
    Record,
    _Bad,
    _decode,
    _decode_slot,
    _Frame,
    _frames,
    _nonzero_end,
    _seal_message,
    encode_head,
    head_path_for,
    verify,
)

_COMPACT_DOMAIN = b"septum-audit-compacted-v1\x00"
_encode = msgspec.msgpack.Encoder().encode
_entry_decoder = msgspec.msgpack.Decoder(Entry)
DAY_S = 86400.0

# The default policy (days). Classes are tried in order; the first whose patterns match the event wins.
# Illustrative defaults: a manufacturer states its own in the device's documentation.
DEFAULT_POLICY: dict[str, Any] = {
    "classes": [
        {"name": "security", "retain_days": 2190, "events": [
            "auth.*", "breakglass.*", "break_glass_*", "audit.*", "tls_*", "connection_*", "*refused*", "*rejected*",
            "*denied*", "*_failed", "order_rate_limited", "order_busy", "keypad_*", "supervisor.*", "update.*"]},
        {"name": "therapy", "retain_days": 3650, "events": [
            "command", "order_*", "bolus_*", "infusion_*", "alarm*", "program*", "soft_limit*", "fault_*",
            "device_failed", "drug_library_*", "emergency_*", "safe_state*"]},
        {"name": "operational", "retain_days": 90, "events": ["operational"]},
        {"name": "diagnostic", "retain_days": 365, "events": ["*"]},
    ],
}


class RetentionError(AuditError):
    """A policy or compaction request that must be refused (bad policy, log damaged, writer running...)."""


@dataclass(frozen=True)
class RecordClass:
    name: str
    retain_days: float
    events: tuple[str, ...]


@dataclass(frozen=True)
class RetentionPolicy:
    classes: tuple[RecordClass, ...]

    @classmethod
    def from_dict(cls, raw: Any) -> RetentionPolicy:
        if not isinstance(raw, dict) or set(raw) != {"classes"} or not isinstance(raw["classes"], list):
            raise RetentionError("a retention policy is {\"classes\": [{name, retain_days, events}, ...]}")
        out: list[RecordClass] = []
        for i, c in enumerate(raw["classes"]):
            where = f"classes[{i}]"
            if not isinstance(c, dict) or set(c) != {"name", "retain_days", "events"}:
                raise RetentionError(f"{where}: needs exactly name, retain_days and events")
            name, days, events = c["name"], c["retain_days"], c["events"]
            if not isinstance(name, str) or not name or len(name) > 32 or not name.isidentifier():
                raise RetentionError(f"{where}.name: a short identifier")
            if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 36500:
                raise RetentionError(f"{where}.retain_days: a number of days in (0, 36500]")
            if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
                raise RetentionError(f"{where}.events: a non-empty list of event patterns")
            if name in {o.name for o in out}:
                raise RetentionError(f"{where}.name: {name!r} twice")
            out.append(RecordClass(name, float(days), tuple(events)))
        if not out or "*" not in out[-1].events:
            raise RetentionError("the last class must match every event ('*'), so no record is left unclassed")
        return cls(tuple(out))

    @classmethod
    def load(cls, path: Path | None) -> RetentionPolicy:
        if path is None:
            return cls.from_dict(DEFAULT_POLICY)
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise RetentionError(f"{path}: not a readable JSON retention policy ({exc})") from None
        return cls.from_dict(raw)

    def class_of(self, event: str) -> RecordClass:
        for c in self.classes:
            if any(fnmatch.fnmatchcase(event, pat) for pat in c.events):
                return c
        return self.classes[-1]

    def expired(self, rec: Record, now: float) -> bool:
        return rec.time + self.class_of(rec.event).retain_days * DAY_S <= now

    def days(self) -> dict[str, float]:
        return {c.name: c.retain_days for c in self.classes}


# ---------------------------------------------------------------------------------------------- reading


def compacted_message(cp: Compacted) -> bytes:
    return _COMPACT_DOMAIN + _encode(msgspec.structs.replace(cp, signature=b""))


@dataclass(frozen=True)
class Opened:
    """Where the chain of a compacted log resumes, and the prefix summary it resumes from."""

    compacted: Compacted
    offset: int  # first byte after the carried frames
    index: int  # frame index there
    carried: list[LogEntry] = field(default_factory=list)

    def describe(self) -> str:
        import datetime as dt

        cp = self.compacted
        removed = sum(cp.removed.values())
        by_class = ", ".join(f"{k} {v}" for k, v in sorted(cp.removed.items())) or "none"
        at = dt.datetime.fromtimestamp(cp.time, dt.UTC).isoformat(timespec="seconds")
        return (f"compacted: seq {cp.first_seq}..{cp.cut_seq} replaced by a signed compaction record "
                f"({cp.compactions} compaction(s), last at {at}): {removed} record(s) removed by retention "
                f"({by_class}), {cp.removed_seals} seal(s) removed, {cp.carried} record(s) kept and verified "
                f"against it; the chain is verified from seq {cp.cut_seq + 1}")


def _bad(index: int, offset: int, msg: str, seq: int | None = None) -> Damage:
    return Damage("edited", seq, index, offset, msg)


def open_compacted(data: bytes, public_key: Ed25519PublicKey | None) -> Opened | Damage | None:
    """The compaction at the start of ``data`` (None: not a compacted log). With ``public_key`` the
    signatures are checked (verify); without, only the structure (read_entries)."""
    first = next(_frames(data, len(MAGIC)), None)
    if not isinstance(first, _Frame):
        return None
    entry = _decode(first)
    if entry is None or not isinstance(entry.body, Compacted):
        return None
    cp = entry.body
    if public_key is not None:
        if cp.key_id != key_id(public_key):
            return Damage("wrong-key", cp.cut_seq, 0, first.offset,
                          f"compaction signed by key {cp.key_id.hex()}, verifying with {key_id(public_key).hex()}")
        try:
            public_key.verify(cp.signature, compacted_message(cp))
        except InvalidSignature:
            return _bad(0, first.offset, "the compaction record does not match its signature: it was altered")
    try:
        seal = _entry_decoder.decode(cp.seal_entry)
    except msgspec.DecodeError:
        return _bad(0, first.offset, "the compaction record's seal does not decode")
    if (seal.seq != cp.cut_seq or entry.seq != cp.cut_seq or not isinstance(seal.body, Checkpoint)
            or hashlib.sha256(cp.seal_entry).digest() != cp.head_digest):
        return _bad(0, first.offset, "the compaction record's chain head is not the seal it names")
    if public_key is not None:
        try:
            public_key.verify(seal.body.signature, _seal_message(seal.seq, seal.prev, seal.body))
        except InvalidSignature:
            return _bad(0, first.offset, f"the seal seq {seal.seq} in the compaction record is not signed")
    carried: list[LogEntry] = []
    digests = hashlib.sha256()
    offset, index, last = first.end, 1, -1
    frames = _frames(data, offset, index)
    for _ in range(cp.carried):
        item = next(frames, None)
        if not isinstance(item, _Frame):
            where = (item.index, item.offset) if isinstance(item, _Bad) else (index, offset)
            return _bad(*where, f"the compaction record keeps {cp.carried} record(s); {len(carried)} are there")
        rec = _decode(item)
        if rec is None or not isinstance(rec.body, Record) or not last < rec.seq <= cp.cut_seq:
            return _bad(item.index, item.offset, "a record kept by the compaction was altered or reordered", last + 1)
        digests.update(item.digest)
        carried.append(LogEntry(rec.seq, rec.body))
        offset, index, last = item.end, item.index + 1, rec.seq
    if digests.digest() != cp.carried_digest:
        return _bad(1, first.end, "the records kept by the compaction are not the ones it signed: one was "
                    "altered, removed or replaced")
    return Opened(cp, offset, index, carried)


# ---------------------------------------------------------------------------------------------- compacting


@dataclass
class CompactReport:
    compacted: bool
    message: str
    cut_seq: int = -1
    removed: dict[str, int] = field(default_factory=dict)
    removed_seals: int = 0
    carried: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


@dataclass(frozen=True)
class _Item:
    entry: Entry
    payload: bytes
    digest: bytes
    offset: int
    end: int


def _frame_bytes(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload + hashlib.sha256(payload).digest()


def _paths(log: Path) -> tuple[Path, Path, Path]:
    return Path(str(log) + ".compact-new"), Path(str(head_path_for(log)) + ".compact-new"), \
        Path(str(log) + ".compacting")


def finish_interrupted(log: Path) -> bool:
    """Roll an interrupted compaction forward (its new files were complete before the marker was written)."""
    new_log, new_head, marker = _paths(log)
    if not marker.exists():
        for stale in (new_log, new_head):  # written, but the marker was not: the old files stand
            stale.unlink(missing_ok=True)
        return False
    if new_head.exists():
        os.replace(new_head, head_path_for(log))
    if new_log.exists():
        os.replace(new_log, log)
    fsync_dir(log.parent)
    marker.unlink()
    fsync_dir(log.parent)
    return True


def compact(log: Path, key: Ed25519PrivateKey, policy: RetentionPolicy, now: float, *,
            archive: Path | None = None, dry_run: bool = False) -> CompactReport:
    """Compact the prefix of ``log`` whose records are past their retention (see the module docstring)."""
    log = Path(log)
    public = key.public_key()
    fd = os.open(log, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetentionError(f"{log}: the audit service holds this log; stop it before compacting") from None
        if finish_interrupted(log):
            os.close(fd)
            fd = os.open(log, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if Path(str(log) + ".torn").exists():
            raise RetentionError(f"{log}: a torn-tail repair is pending; start the audit service once first")
        return _compact_locked(log, key, public, policy, now, archive, dry_run)
    finally:
        os.close(fd)


def _compact_locked(log: Path, key: Ed25519PrivateKey, public: Ed25519PublicKey, policy: RetentionPolicy,
                    now: float, archive: Path | None, dry_run: bool) -> CompactReport:
    checked = verify(log, public)
    if checked.damage is not None:
        raise RetentionError(f"{log}: does not verify, not compacted (compaction never hides damage): "
                             f"{checked.damage.describe()}")
    data = log.read_bytes()
    end = _nonzero_end(data, len(MAGIC))
    opened = open_compacted(data, public)
    if isinstance(opened, Damage):  # verify passed
        raise InvariantBroken("internal invariant broken: not isinstance(opened, Damage)")
    prior = opened.compacted if opened is not None else None
    carried_before: list[tuple[Record, int, bytes, bytes]] = []  # (record, seq, payload, digest)
    start, index = len(MAGIC), 0
    if opened is not None:
        frames = _frames(data, len(MAGIC))
        next(frames)  # the Compacted record itself
        for _ in range(prior.carried if prior else 0):
            item = next(frames)
            if not isinstance(item, _Frame):
                raise InvariantBroken("internal invariant broken: isinstance(item, _Frame)")
            e = _decode(item)
            if not (e is not None and isinstance(e.body, Record)):
                raise InvariantBroken("internal invariant broken: e is not None and isinstance(e.body, Record)")
            carried_before.append((e.body, e.seq, item.payload, item.digest))
        start, index = opened.offset, opened.index
    chain: list[_Item] = []
    for item in _frames(data[:end], start, index):
        if not isinstance(item, _Frame):
            raise InvariantBroken("internal invariant broken: isinstance(item, _Frame)")
        e = _decode(item)
        if e is None:
            raise InvariantBroken("internal invariant broken: e is not None")
        chain.append(_Item(e, item.payload, item.digest, item.offset, item.end))
    head_file = head_path_for(log)
    raw_head = head_file.read_bytes()
    slots = [_decode_slot(raw_head[:HEAD_SLOT]), _decode_slot(raw_head[HEAD_SLOT:2 * HEAD_SLOT])]
    keep_from = min(h.seq for h in slots if h is not None)  # every valid head slot must stay in the log
    seals = [i for i, it in enumerate(chain) if isinstance(it.entry.body, Checkpoint) and it.entry.seq < keep_from]
    expired = [i for i, it in enumerate(chain) if isinstance(it.entry.body, Record) and it.entry.seq < keep_from
               and policy.expired(it.entry.body, now)]
    expired_carried = [c for c in carried_before if policy.expired(c[0], now)]
    if not seals or (not expired and not expired_carried):
        return CompactReport(False, "nothing to compact: no record before the head's seal is past its retention",
                             bytes_before=len(data), bytes_after=len(data))
    # cut at the first seal after the last expired record (keeps the fewest records out of the chain)
    last_expired = expired[-1] if expired else -1
    after = [i for i in seals if i > last_expired]
    cut = after[0] if after else seals[-1]
    cut_item = chain[cut]
    removed: dict[str, int] = dict(prior.removed) if prior else {}
    kept: list[tuple[int, bytes, bytes]] = []  # (seq, payload, digest) carried into the new log
    times: list[float] = []
    seals_removed = prior.removed_seals if prior else 0
    for rec, seq, payload, digest in carried_before:
        if policy.expired(rec, now):
            name = policy.class_of(rec.event).name
            removed[name] = removed.get(name, 0) + 1
            times.append(rec.time)
        else:
            kept.append((seq, payload, digest))
    for it in chain[: cut + 1]:
        body = it.entry.body
        if isinstance(body, Checkpoint):
            seals_removed += 1
        elif isinstance(body, Record):
            if policy.expired(body, now):
                name = policy.class_of(body.event).name
                removed[name] = removed.get(name, 0) + 1
                times.append(body.time)
            else:
                kept.append((it.entry.seq, it.payload, it.digest))
    if not times:
        return CompactReport(False, "nothing to compact: the records past their retention are all after the "
                             "last seal that can be cut (the head's seal and what follows stay)",
                             bytes_before=len(data), bytes_after=len(data))
    carried_digest = hashlib.sha256(b"".join(d for _, _, d in kept)).digest()
    lo = min([*times, *([prior.removed_from] if prior and prior.removed_from else [])])
    hi = max([*times, *([prior.removed_to] if prior else [])])
    unsigned = Compacted(time=now, key_id=key_id(public), signature=b"", cut_seq=cut_item.entry.seq,
                         head_digest=cut_item.digest, seal_entry=cut_item.payload,
                         first_seq=prior.first_seq if prior else 0, removed=removed, removed_seals=seals_removed,
                         removed_from=lo, removed_to=hi, carried=len(kept), carried_digest=carried_digest,
                         policy=policy.days(), compactions=(prior.compactions + 1) if prior else 1)
    cp = msgspec.structs.replace(unsigned, signature=key.sign(compacted_message(unsigned)))
    head_frame = _frame_bytes(_encode(Entry(cp.cut_seq, ZERO_HASH, cp)))
    prefix = MAGIC + head_frame + b"".join(_frame_bytes(p) for _, p, _ in kept)
    delta = len(prefix) - cut_item.end
    new = prefix + data[cut_item.end:end]
    report = CompactReport(True, "", cp.cut_seq, {k: v - (prior.removed.get(k, 0) if prior else 0)
                                                  for k, v in removed.items()},
                           seals_removed - (prior.removed_seals if prior else 0), len(kept), len(data), len(new))
    report.removed = {k: v for k, v in report.removed.items() if v}
    report.message = (f"compacted seq {cp.first_seq}..{cp.cut_seq}: removed "
                      f"{sum(report.removed.values())} record(s) past retention "
                      f"({', '.join(f'{k} {v}' for k, v in sorted(report.removed.items())) or 'none'}) and "
                      f"{report.removed_seals} seal(s); kept {len(kept)} record(s) still within retention; "
                      f"{len(data)} -> {len(new)} bytes")
    if dry_run:
        report.message = "dry run: would have " + report.message
        return report
    new_head = b""
    for h, raw in zip(slots, (raw_head[:HEAD_SLOT], raw_head[HEAD_SLOT:2 * HEAD_SLOT]), strict=True):
        new_head += raw if h is None else encode_head(Head(seq=h.seq, offset=h.offset + delta, digest=h.digest,
                                                           entry=h.entry))
    if archive is not None:
        shutil.copyfile(log, archive)
        with open(archive, "rb") as f:
            os.fsync(f.fileno())
    new_log_path, new_head_path, marker = _paths(log)
    write_atomic(new_log_path, new)
    write_atomic(new_head_path, new_head + raw_head[2 * HEAD_SLOT:])
    for old_path, new_path in ((log, new_log_path), (head_file, new_head_path)):
        st = old_path.stat()  # the audit service runs under its own uid: it must still own its files
        os.chown(new_path, st.st_uid, st.st_gid)
        os.chmod(new_path, st.st_mode & 0o7777)
    write_atomic(marker, b"compacting\n")  # from here on, a crash is finished by the next run
    finish_interrupted(log)
    again = verify(log, public)  # the compacted log must verify as a whole before we say it is done
    if again.damage is not None:
        raise RetentionError(f"{log}: compacted log does not verify: {again.damage.describe()}")
    return report
