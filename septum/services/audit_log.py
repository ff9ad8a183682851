"""The audit log: append-only, hash-chained, signed at checkpoints, durable by group commit.

On-disk format (all integers big-endian)::

    file   = MAGIC frame*
    frame  = u32 length | payload (length bytes, msgpack Entry) | SHA-256(payload) (32 bytes)
    Entry  = [seq, prev, body]      prev = the 32-byte frame hash of the previous entry (zeros for seq 0)
    body   = Record | Checkpoint    (msgpack tagged arrays)

Each frame carries its own hash, so a torn final frame (a crash in the middle of a write) is told apart
from an edit; each payload names the previous frame's hash, so deleting, inserting or reordering frames
breaks the chain at a known place; and a checkpoint, an entry signed with Ed25519 over (its seq, prev,
time, key id), makes a rewritten chain detectable without a secret on the verifier's side. The writer also
keeps a *head* file beside the log (``LOG.head``): a copy of the latest durable checkpoint, replaced
atomically, so cutting records off the end of the log (truncation at a frame boundary) is detected too.

The writer is made for a single-threaded event loop: ``append`` only encodes into a buffer and returns the
sequence number; ``commit`` writes the batch and fsyncs it, and only then are the records acknowledged
(``durable_seq``). ``due(now)``/``deadline`` tell the loop when the bounded batching delay is up.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import time as _time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .durable import fsync_dir, write_atomic
from .keys import key_id

MAGIC = b"SEPTAUD\x01"
HASH_LEN = 32
ZERO_HASH = b"\x00" * HASH_LEN
MAX_PAYLOAD = 64 * 1024  # a record larger than this is a bug or an attack, not an audit event
_LEN = struct.Struct(">I")
_SIGN_DOMAIN = b"septum-audit-checkpoint-v1\x00"

Severity = Literal["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"]
# RFC 5424 numeric severities; lower is more severe.
SEVERITY_RANK: dict[str, int] = {
    "emergency": 0, "alert": 1, "critical": 2, "error": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7,
}
DetailValue = str | int | float | bool


class Record(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag="r"):
    """One audit event. ``time`` is Unix seconds (UTC) as given by the producer."""

    time: float
    partition: str
    event: str
    severity: Severity = "info"
    message: str = ""
    principal: str = ""
    detail: dict[str, DetailValue] = {}


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag="c"):
    time: float
    key_id: bytes
    signature: bytes


class Entry(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    prev: bytes
    body: Record | Checkpoint


class Head(msgspec.Struct, frozen=True, kw_only=True):
    """The latest durable checkpoint, kept outside the log to detect truncation."""

    seq: int
    offset: int
    digest: bytes
    entry: bytes


_encode = msgspec.msgpack.Encoder().encode
_entry_decoder = msgspec.msgpack.Decoder(Entry)
_head_decoder = msgspec.msgpack.Decoder(Head)


class AuditError(Exception):
    """A record or call the writer must refuse (too large, writer closed, ...)."""


class AuditLogDamaged(AuditError):
    """The log is damaged in a way the writer must not repair by itself (anything but a torn tail)."""

    def __init__(self, damage: Damage) -> None:
        super().__init__(damage.describe())
        self.damage = damage


DamageKind = Literal[
    "bad-header", "edited", "deleted", "reordered", "truncated", "torn-tail", "wrong-key", "bad-head"
]


@dataclass(frozen=True)
class Damage:
    kind: DamageKind
    seq: int | None  # the first bad record's sequence number (or the first that cannot be trusted)
    index: int  # position of the first bad frame in the file, counting from 0
    offset: int  # byte offset of the first bad frame
    message: str
    last_seq: int | None = None  # end of the suspect range when only a range can be named

    def describe(self) -> str:
        where = f"record seq {self.seq}" if self.seq is not None else f"frame {self.index}"
        return f"{self.kind} at {where} (frame {self.index}, byte {self.offset}): {self.message}"


@dataclass
class VerifyResult:
    ok: bool
    records: int = 0
    checkpoints: int = 0
    last_seq: int = -1
    last_checkpoint_seq: int = -1
    head_seq: int | None = None
    damage: Damage | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def unsealed(self) -> int:
        """Entries after the last checkpoint: not yet covered by a signature."""
        return self.last_seq - self.last_checkpoint_seq if self.last_seq >= 0 else 0


def head_path_for(log_path: Path) -> Path:
    return Path(str(log_path) + ".head")


def checkpoint_message(seq: int, prev: bytes, at: float, kid: bytes) -> bytes:
    return _SIGN_DOMAIN + struct.pack(">Q", seq) + prev + struct.pack(">d", at) + kid


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Frame:
    index: int
    offset: int
    end: int
    payload: bytes
    digest: bytes


@dataclass(frozen=True)
class _Bad:
    """Where frame parsing stopped: a torn tail or bytes that are not a frame."""

    index: int
    offset: int
    torn: bool
    message: str


def _frames(data: bytes | memoryview, offset: int, index: int = 0) -> Iterator[_Frame | _Bad]:
    """Split ``data`` into frames from ``offset``; a final ``_Bad`` says why parsing stopped early."""
    size = len(data)
    while offset < size:
        remaining = size - offset
        if remaining < _LEN.size:
            yield _Bad(index, offset, True, f"{remaining} byte(s) of an incomplete length prefix")
            return
        (length,) = _LEN.unpack_from(data, offset)
        if length == 0 or length > MAX_PAYLOAD:
            # A crash on a file system that zero-fills the unwritten tail looks like this too.
            if not any(bytes(data[offset:])):
                yield _Bad(index, offset, True, f"{remaining} zero byte(s) after the last frame")
            else:
                yield _Bad(index, offset, False, f"impossible frame length {length}")
            return
        end = offset + _LEN.size + length + HASH_LEN
        if end > size:
            yield _Bad(index, offset, True, f"frame of {length} bytes cut off after {remaining} byte(s)")
            return
        payload = bytes(data[offset + _LEN.size : offset + _LEN.size + length])
        digest = bytes(data[end - HASH_LEN : end])
        yield _Frame(index, offset, end, payload, digest)
        offset = end
        index += 1


def _decode(frame: _Frame) -> Entry | None:
    if hashlib.sha256(frame.payload).digest() != frame.digest:
        return None
    try:
        entry = _entry_decoder.decode(frame.payload)
    except msgspec.DecodeError:
        return None
    if len(entry.prev) != HASH_LEN:
        return None
    return entry


def _seq_appears_later(data: bytes, offset: int, index: int, wanted: int) -> bool:
    for item in _frames(data, offset, index):
        if isinstance(item, _Bad):
            return False
        entry = _decode(item)
        if entry is not None and entry.seq == wanted:
            return True
    return False


def read_head(path: Path) -> Head:
    try:
        return _head_decoder.decode(Path(path).read_bytes())
    except OSError as exc:
        raise AuditError(f"{path}: cannot read head file ({exc.strerror})") from None
    except msgspec.DecodeError as exc:
        raise AuditError(f"{path}: not a head file ({exc})") from None


def verify(
    path: Path, public_key: Ed25519PublicKey, *, head: Path | Literal["auto"] | None = "auto"
) -> VerifyResult:
    """Check the whole log; stop at and name the first bad record.

    ``head="auto"`` uses ``LOG.head`` when it exists (and says in ``notes`` when it does not); ``None``
    skips the truncation check; a path uses that head file (a copy kept off the device, for instance).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuditError(f"{path}: cannot read log ({exc.strerror})") from None
    result = VerifyResult(ok=False)
    if data[: len(MAGIC)] != MAGIC:
        result.damage = Damage("bad-header", None, 0, 0, "not a Septum audit log (bad magic)")
        return result
    kid = key_id(public_key)
    expected = 0
    prev = ZERO_HASH
    last_good_checkpoint = -1
    frame_digests: dict[int, tuple[int, bytes]] = {}  # checkpoint seq -> (offset, digest), for the head
    last_frame_end = len(MAGIC)
    prev_offset = len(MAGIC)

    for item in _frames(data, len(MAGIC)):
        if isinstance(item, _Bad):
            kind: DamageKind = "torn-tail" if item.torn else "edited"
            msg = item.message + ("" if item.torn else "; the frame was altered")
            result.damage = Damage(kind, expected, item.index, item.offset, msg)
            break
        entry = _decode(item)
        if entry is None:
            result.damage = Damage(
                "edited", expected, item.index, item.offset, "the record does not match its own hash"
            )
            break
        if entry.seq != expected:
            if entry.seq < expected:
                msg = f"record seq {entry.seq} appears after seq {expected - 1}"
                result.damage = Damage("reordered", expected, item.index, item.offset, msg)
            elif _seq_appears_later(data, item.end, item.index + 1, expected):
                msg = f"record seq {entry.seq} appears before seq {expected}"
                result.damage = Damage("reordered", expected, item.index, item.offset, msg)
            else:
                msg = f"record(s) seq {expected}..{entry.seq - 1} are missing"
                result.damage = Damage("deleted", expected, item.index, item.offset, msg, entry.seq - 1)
            break
        if entry.prev != prev:
            # The previous frame is self-consistent but is not the one this entry committed to: it was
            # replaced (with its hash recomputed). The chain before it cannot tell us more.
            msg = f"record seq {expected - 1} is not the record that seq {expected} commits to"
            result.damage = Damage("edited", expected - 1, item.index - 1, prev_offset, msg)
            break
        if isinstance(entry.body, Checkpoint):
            cp = entry.body
            if cp.key_id != kid:
                msg = f"checkpoint signed by key {cp.key_id.hex()}, verifying with key {kid.hex()}"
                result.damage = Damage("wrong-key", entry.seq, item.index, item.offset, msg)
                break
            try:
                public_key.verify(cp.signature, checkpoint_message(entry.seq, entry.prev, cp.time, cp.key_id))
            except InvalidSignature:
                first = last_good_checkpoint + 1
                msg = (
                    f"checkpoint seq {entry.seq} does not match the chain: records seq {first}.."
                    f"{entry.seq - 1} were rewritten"
                )
                result.damage = Damage("edited", first, item.index, item.offset, msg, entry.seq - 1)
                break
            last_good_checkpoint = entry.seq
            result.checkpoints += 1
            frame_digests[entry.seq] = (item.offset, item.digest)
        else:
            result.records += 1
        result.last_seq = entry.seq
        prev = item.digest
        expected += 1
        last_frame_end = item.end
        prev_offset = item.offset
    result.last_checkpoint_seq = last_good_checkpoint

    head_file = head_path_for(path) if head == "auto" else head
    if head_file is not None and not (head == "auto" and not Path(head_file).exists()):
        _check_head(result, Path(head_file), public_key, frame_digests, last_frame_end, expected)
    elif head == "auto":
        result.notes.append(f"no head file {head_file}: truncation at a record boundary is not checked")
    if result.unsealed > 0 and result.damage is None:
        result.notes.append(
            f"{result.unsealed} entr{'y' if result.unsealed == 1 else 'ies'} after the last checkpoint "
            "are chained but not yet signed"
        )
    result.ok = result.damage is None
    return result


def _check_head(
    result: VerifyResult,
    head_file: Path,
    public_key: Ed25519PublicKey,
    digests: dict[int, tuple[int, bytes]],
    log_end: int,
    next_seq: int,
) -> None:
    try:
        head = read_head(head_file)
        entry = _entry_decoder.decode(head.entry)
    except (AuditError, msgspec.DecodeError) as exc:
        result.damage = result.damage or Damage("bad-head", None, 0, 0, f"head file unusable: {exc}")
        return
    cp = entry.body
    valid = isinstance(cp, Checkpoint) and entry.seq == head.seq
    if valid:
        assert isinstance(cp, Checkpoint)
        try:
            public_key.verify(cp.signature, checkpoint_message(entry.seq, entry.prev, cp.time, cp.key_id))
        except InvalidSignature:
            valid = False
    if not valid:
        result.damage = result.damage or Damage(
            "bad-head", None, 0, 0, f"{head_file}: head checkpoint is not signed by this key"
        )
        return
    result.head_seq = head.seq
    if result.damage is not None and result.damage.kind != "torn-tail":
        return  # the first damage is already named; the head cannot add anything earlier
    if head.seq in digests:
        if digests[head.seq][1] != head.digest:
            result.damage = Damage("edited", head.seq, -1, digests[head.seq][0], "log differs from head checkpoint")
        return
    if head.seq >= next_seq:
        # Everything up to the head was fsynced before the head was written: a crash cannot lose it.
        damage = result.damage
        index = damage.index if damage else -1
        result.damage = Damage(
            "truncated", next_seq, index, damage.offset if damage else log_end,
            f"the log ends before seq {next_seq} but the head checkpoint shows seq {head.seq} was written",
            head.seq,
        )


# ---------------------------------------------------------------------------------------------- reading API


@dataclass(frozen=True)
class LogEntry:
    seq: int
    body: Record | Checkpoint


def read_entries(path: Path) -> tuple[list[LogEntry], Damage | None]:
    """Structurally valid entries in order (hashes and chain links checked, not signatures)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuditError(f"{path}: cannot read log ({exc.strerror})") from None
    if data[: len(MAGIC)] != MAGIC:
        return [], Damage("bad-header", None, 0, 0, "not a Septum audit log (bad magic)")
    out: list[LogEntry] = []
    prev = ZERO_HASH
    for item in _frames(data, len(MAGIC)):
        if isinstance(item, _Bad):
            return out, Damage("torn-tail" if item.torn else "edited", len(out), item.index, item.offset, item.message)
        entry = _decode(item)
        if entry is None or entry.seq != len(out) or entry.prev != prev:
            return out, Damage("edited", len(out), item.index, item.offset, "chain broken; run verify")
        out.append(LogEntry(entry.seq, entry.body))
        prev = item.digest
    return out, None


# ---------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Recovery:
    """What opening an existing log found: where it continues and what (if anything) was cut off."""

    created: bool
    next_seq: int
    torn_bytes: int = 0
    torn_offset: int = 0


class _TornMarker(msgspec.Struct, frozen=True, kw_only=True):
    offset: int
    bytes: int
    next_seq: int


class AuditWriter:
    """Group-committing writer. Not thread-safe: one event loop owns it (and a file lock enforces one
    writer per log)."""

    def __init__(
        self,
        path: Path,
        signing_key: Ed25519PrivateKey,
        *,
        partition: str = "audit",
        checkpoint_every: int = 10_000,
        checkpoint_interval: float = 1.0,
        max_batch: int = 4096,
        max_delay: float = 0.005,
    ) -> None:
        self.path = Path(path)
        self.head_path = head_path_for(self.path)
        self.partition = partition
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._key = signing_key
        self._kid = key_id(signing_key.public_key())
        self._buf = bytearray()
        self._pending = 0
        self._first_pending_at: float | None = None
        self._since_checkpoint = 0
        self._closed = False
        self._last_checkpoint_at = _time.monotonic()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise AuditError(f"{self.path}: another writer holds this log") from None
        try:
            self.recovery = self._recover()
        except BaseException:
            os.close(self._fd)
            raise

    # -- recovery ---------------------------------------------------------------------------------

    def _recover(self) -> Recovery:
        now = _time.time()
        size = os.fstat(self._fd).st_size
        if size == 0 and self.head_path.exists():
            # An emptied log with a head beside it was truncated; starting afresh would hide that.
            raise AuditLogDamaged(Damage("truncated", 0, 0, 0, "the log is empty but its head file exists"))
        if size == 0:
            os.write(self._fd, MAGIC)
            self._next_seq, self._prev, self._durable = 0, ZERO_HASH, -1
            self.append(Record(time=now, partition=self.partition, event="audit.log-created",
                               severity="notice", detail={"key_id": self._kid.hex()}))
            self.commit(force_checkpoint=True)
            fsync_dir(self.path.parent)
            return Recovery(created=True, next_seq=self._next_seq)
        start, seq, prev = len(MAGIC), 0, ZERO_HASH
        if self.head_path.exists():
            head = read_head(self.head_path)
            start, seq, prev = head.offset, head.seq, None  # prev is re-read from the head frame
        with open(self.path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise AuditLogDamaged(Damage("bad-header", None, 0, 0, "not a Septum audit log (bad magic)"))
            f.seek(start)
            data = f.read()
        last_end = start
        bad: _Bad | None = None
        unsealed = 0
        for item in _frames(data, 0):
            if isinstance(item, _Bad):
                bad = item
                break
            entry = _decode(item)
            absolute = start + item.offset
            if prev is None:  # the head's own frame must be exactly what the head says
                if entry is None or entry.seq != seq or item.digest != head.digest:
                    raise AuditLogDamaged(Damage("edited", seq, -1, absolute, "log differs from its head file"))
            elif entry is None or entry.seq != seq or entry.prev != prev:
                raise AuditLogDamaged(Damage("edited", seq, -1, absolute, "chain broken after the last checkpoint"))
            if prev is not None:
                unsealed = 0 if entry is not None and isinstance(entry.body, Checkpoint) else unsealed + 1
            prev, seq, last_end = item.digest, seq + 1, start + item.end
        if prev is None:
            raise AuditLogDamaged(Damage("truncated", seq, -1, start, "the log ends before its head checkpoint"))
        self._next_seq, self._prev, self._durable = seq, prev, seq - 1
        self._since_checkpoint = unsealed  # so that close() seals what the last run left unsigned
        marker = Path(str(self.path) + ".torn")
        if bad is not None and not bad.torn:
            raise AuditLogDamaged(Damage("edited", seq, -1, start + bad.offset, bad.message))
        if bad is not None:
            # A torn tail is the expected result of a crash mid-write: those records were never
            # acknowledged. Note the cut in a marker file first, so that a crash between cutting and
            # logging the cut still ends with an audit record about it, then cut and make it durable.
            torn_bytes = os.fstat(self._fd).st_size - last_end
            write_atomic(marker, _encode(_TornMarker(offset=last_end, bytes=torn_bytes, next_seq=seq)))
            os.ftruncate(self._fd, last_end)
            os.fsync(self._fd)
        if not marker.exists():
            return Recovery(created=False, next_seq=seq)
        try:
            info = msgspec.msgpack.decode(marker.read_bytes(), type=_TornMarker)
        except (OSError, msgspec.DecodeError):
            info = _TornMarker(offset=last_end, bytes=-1, next_seq=seq)  # the cut happened; size unknown
        self.append(Record(time=now, partition=self.partition, event="audit.torn-tail-truncated",
                           severity="warning",
                           message=f"removed {info.bytes} byte(s) of an incomplete final record after a crash",
                           detail={"offset": info.offset, "bytes": info.bytes, "next_seq": info.next_seq}))
        self.commit(force_checkpoint=True)
        marker.unlink()
        fsync_dir(self.path.parent)
        return Recovery(created=False, next_seq=seq, torn_bytes=info.bytes, torn_offset=info.offset)

    # -- appending --------------------------------------------------------------------------------

    @property
    def durable_seq(self) -> int:
        """The highest sequence number that is on stable storage (acknowledge up to this)."""
        return self._durable

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def deadline(self) -> float | None:
        """When the oldest pending record must be committed (None: nothing pending)."""
        if self._first_pending_at is None:
            return None
        return self._first_pending_at + self.max_delay

    def due(self, now: float) -> bool:
        if not self._pending:
            return False
        assert self._first_pending_at is not None
        return self._pending >= self.max_batch or now - self._first_pending_at >= self.max_delay

    def _add(self, body: Record | Checkpoint) -> int:
        seq = self._next_seq
        payload = _encode(Entry(seq, self._prev, body))
        if len(payload) > MAX_PAYLOAD:
            raise AuditError(f"record of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
        digest = hashlib.sha256(payload).digest()
        self._buf += _LEN.pack(len(payload))
        self._buf += payload
        self._buf += digest
        self._prev = digest
        self._next_seq = seq + 1
        return seq

    def append(self, record: Record, now: float | None = None) -> int:
        """Queue a record; it is durable (and may be acknowledged) once ``durable_seq`` reaches it."""
        if self._closed:
            raise AuditError("audit writer is closed")
        if not isinstance(record, Record):
            raise AuditError(f"expected an audit Record, got {type(record).__name__}")
        seq = self._add(record)
        if self._first_pending_at is None:
            self._first_pending_at = _time.monotonic() if now is None else now
        self._pending += 1
        self._since_checkpoint += 1
        return seq

    def _checkpoint(self, now: float) -> tuple[int, int]:
        seq = self._next_seq
        wall = _time.time()  # recorded for readers; decisions use the loop's monotonic ``now``
        sig = self._key.sign(checkpoint_message(seq, self._prev, wall, self._kid))
        offset_in_buf = len(self._buf)
        self._add(Checkpoint(time=wall, key_id=self._kid, signature=sig))
        self._since_checkpoint = 0
        self._last_checkpoint_at = now
        return seq, offset_in_buf

    def commit(self, now: float | None = None, *, force_checkpoint: bool = False) -> int:
        """Write and fsync everything pending (plus a checkpoint when one is due); return durable_seq.

        ``now`` is the loop's monotonic clock (the same one given to ``append`` and ``due``)."""
        if self._closed:
            raise AuditError("audit writer is closed")
        now = _time.monotonic() if now is None else now
        checkpoint: tuple[int, int] | None = None
        if self._since_checkpoint and (
            force_checkpoint
            or self._since_checkpoint >= self.checkpoint_every
            or now - self._last_checkpoint_at >= self.checkpoint_interval
        ):
            checkpoint = self._checkpoint(now)
        if not self._buf:
            return self._durable
        base = os.lseek(self._fd, 0, os.SEEK_END)
        view = memoryview(self._buf)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        view.release()
        os.fdatasync(self._fd)
        if checkpoint is not None:
            self._write_head(checkpoint[0], base + checkpoint[1])
        self._buf.clear()
        self._pending = 0
        self._first_pending_at = None
        self._durable = self._next_seq - 1
        return self._durable

    def _write_head(self, seq: int, offset: int) -> None:
        # Re-read the frame just written so the head holds exactly the bytes in the log.
        (length,) = _LEN.unpack(os.pread(self._fd, _LEN.size, offset))
        frame = os.pread(self._fd, _LEN.size + length + HASH_LEN, offset)
        payload, digest = frame[_LEN.size : _LEN.size + length], frame[-HASH_LEN:]
        write_atomic(self.head_path, _encode(Head(seq=seq, offset=offset, digest=digest, entry=payload)))

    def close(self, now: float | None = None) -> None:
        """Commit what is pending, seal it with a final checkpoint, release the log."""
        if self._closed:
            return
        try:
            self.commit(now, force_checkpoint=True)
        finally:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
