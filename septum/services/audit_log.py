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
# The writer keeps the file this far ahead of the log, filled with real zero bytes (not fallocate, whose
# unwritten extents still need a journalled metadata update on first write): a commit then overwrites
# blocks that are allocated and written, and its fdatasync flushes data only, not a size change.
EXTEND_CHUNK = 1 << 20
_ZEROS = bytes(EXTEND_CHUNK)
# One commit never writes more than this many bytes in one go (a larger batch is written and flushed in
# parts, each ending at a frame boundary). A power cut can only damage the last part written, so damage
# that reaches further than this from the first bad frame is never a torn commit. Readers and the writer
# must use the same value: it is part of the format.
MAX_COMMIT_BYTES = 1 << 20
SECTOR = 512  # the unit a power cut keeps or loses
assert _LEN.size + MAX_PAYLOAD + HASH_LEN < MAX_COMMIT_BYTES

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
    end: int  # where the damaged bytes end (zero bytes after them are unwritten space)


def _nonzero_end(data: bytes | memoryview, lo: int) -> int:
    """One past the last non-zero byte at or after ``lo`` (``lo`` when everything from there is zero).

    Scans backwards in blocks: the zero-filled region the writer keeps ahead of the log is at most a
    few MiB, and copying the whole log to strip it would double the memory a verify needs."""
    end = len(data)
    while end > lo:
        start = max(lo, end - 65536)
        kept = bytes(data[start:end]).rstrip(b"\x00")
        if kept:
            return start + len(kept)
        end = start
    return lo


def _frames(
    data: bytes | memoryview, offset: int, index: int = 0, *, base: int = 0, floor: int = 0
) -> Iterator[_Frame | _Bad]:
    """Split ``data`` into frames from ``offset``; a final ``_Bad`` says why parsing stopped early.

    The writer extends the file ahead of the log with zero bytes, so the log ends where only zero bytes
    remain: that region is "not yet written", never records. A crash (power cut) in the middle of a commit
    can keep any subset of the commit's sectors, so the damage it leaves is *torn* only when it fits
    what one unfinished commit can leave (see ``_torn_commit``); anything else is an edit. A file that
    simply ends inside a frame is torn as before (the head file tells a cut of pinned records apart).

    ``base`` is the file offset of ``data[0]`` (sectors are aligned in the file); damage followed by
    more data in a frame starting before ``floor`` (a file offset: the checkpoint the head file pins)
    is never torn."""
    size = len(data)
    nonzero_end = _nonzero_end(data, offset)
    while offset < nonzero_end:
        remaining = size - offset
        if remaining < _LEN.size:
            yield _Bad(index, offset, True, f"{remaining} byte(s) of an incomplete length prefix", nonzero_end)
            return
        (length,) = _LEN.unpack_from(data, offset)
        # Only the last commit can be torn, and it lies within MAX_COMMIT_BYTES of its first bad frame.
        window = offset + MAX_COMMIT_BYTES >= nonzero_end and base + offset >= floor
        if length == 0 or length > MAX_PAYLOAD:
            # Lost sectors read as zeros and can only lower a length (at most MAX_PAYLOAD): a zero length
            # may be a lost sector, anything larger was written by no writer.
            torn = window and length == 0
            msg = "a frame that was never written completely" if torn else f"impossible frame length {length}"
            yield _Bad(index, offset, torn, msg, nonzero_end)
            return
        end = offset + _LEN.size + length + HASH_LEN
        if end > size:
            # The file ends inside the frame. Before ``floor`` that is a cut the head file will name as
            # truncation; after it, a commit that was cut short.
            torn = base + offset < floor or _torn_commit(data, offset, end, base, nonzero_end)
            msg = f"frame of {length} bytes cut off after {remaining} byte(s)"
            yield _Bad(index, offset, torn, msg if torn else msg + " and not a prefix of a valid frame", nonzero_end)
            return
        payload = bytes(data[offset + _LEN.size : end - HASH_LEN])
        digest = bytes(data[end - HASH_LEN : end])
        if window and hashlib.sha256(payload).digest() != digest:
            if _torn_commit(data, offset, end, base, nonzero_end):
                yield _Bad(index, offset, True,
                           f"frame of {length} bytes with zero-filled sector(s) in the last commit", nonzero_end)
            else:
                yield _Bad(index, offset, False, "the record does not match its own hash", nonzero_end)
            return
        yield _Frame(index, offset, end, payload, digest)
        offset = end
        index += 1


def _torn_commit(data: bytes | memoryview, offset: int, end: int, base: int, nonzero_end: int) -> bool:
    """Can a crash during the commit that wrote the bad frame at ``offset`` explain it?

    Each commit writes one contiguous range over zero bytes; a power cut keeps any subset of its
    512-byte sectors, so a sector that was not kept reads as zeros (within the frame), bytes past the
    end of the file were not written, and a write cut anywhere leaves zeros from there to the end. The
    frame is torn when some of its bytes are "lost" that way and, if the lost bytes are only in the
    hash, the hash bytes that were kept are the payload's real hash (an edited payload whose hash
    happens to contain zero bytes stays edited)."""
    size = len(data)
    lost: list[tuple[int, int]] = []
    if end > nonzero_end:
        lost.append((nonzero_end, end))
    stop = min(end, size)
    sector = (base + offset) // SECTOR * SECTOR - base
    while sector < stop:
        lo, hi = max(sector, offset), min(sector + SECTOR, stop)
        if not any(bytes(data[lo:hi])):
            lost.append((lo, hi))
        sector += SECTOR
    if not lost:
        return False
    digest_at = end - HASH_LEN
    if any(lo < digest_at for lo, _ in lost):
        return True  # part of the length or payload was lost: nothing left to check it against
    real = hashlib.sha256(bytes(data[offset + _LEN.size : digest_at])).digest()
    kept = bytes(data[digest_at:stop]).ljust(HASH_LEN, b"\x00")
    for lo, hi in lost:
        real = real[: lo - digest_at] + bytes(hi - lo) + real[hi - digest_at :]
    return kept == real


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
    head_file = head_path_for(path) if head == "auto" else head
    use_head = head_file is not None and not (head == "auto" and not Path(head_file).exists())
    pinned = _load_head(Path(head_file), public_key) if use_head and head_file is not None else None
    # Nothing up to the checkpoint the head pins can be a torn commit: it was flushed before the head
    # was written, and every later commit began after that.
    floor = pinned.offset + 1 if isinstance(pinned, Head) else 0

    for item in _frames(data, len(MAGIC), floor=floor):
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

    if pinned is not None:
        _check_head(result, pinned, frame_digests, last_frame_end, expected)
    elif head == "auto":
        result.notes.append(f"no head file {head_file}: truncation at a record boundary is not checked")
    if result.unsealed > 0 and result.damage is None:
        result.notes.append(
            f"{result.unsealed} entr{'y' if result.unsealed == 1 else 'ies'} after the last checkpoint "
            "are chained but not yet signed"
        )
    result.ok = result.damage is None
    return result


def _load_head(head_file: Path, public_key: Ed25519PublicKey) -> Head | Damage:
    """The head file's checkpoint when it is signed by this key, else the ``bad-head`` damage."""
    try:
        head = read_head(head_file)
        entry = _entry_decoder.decode(head.entry)
    except (AuditError, msgspec.DecodeError) as exc:
        return Damage("bad-head", None, 0, 0, f"head file unusable: {exc}")
    cp = entry.body
    valid = isinstance(cp, Checkpoint) and entry.seq == head.seq
    if valid:
        assert isinstance(cp, Checkpoint)
        try:
            public_key.verify(cp.signature, checkpoint_message(entry.seq, entry.prev, cp.time, cp.key_id))
        except InvalidSignature:
            valid = False
    if not valid:
        return Damage("bad-head", None, 0, 0, f"{head_file}: head checkpoint is not signed by this key")
    return head


def _check_head(
    result: VerifyResult,
    head: Head | Damage,
    digests: dict[int, tuple[int, bytes]],
    log_end: int,
    next_seq: int,
) -> None:
    if isinstance(head, Damage):
        result.damage = result.damage or head
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
    floor = 0  # as in verify: nothing up to the head's checkpoint is ever a torn commit
    if head_path_for(path).exists():
        try:
            floor = read_head(head_path_for(path)).offset + 1
        except AuditError:
            pass  # no signatures are checked here; verify reports an unusable head
    for item in _frames(data, len(MAGIC), floor=floor):
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
        # Not O_APPEND: commits overwrite the zero-filled space ahead of the log at ``_end``.
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        self._end = 0  # where the next frame goes (the log's logical end)
        self._size = 0  # the file's size: bytes from _end to here are zeros written ahead
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
            os.pwrite(self._fd, MAGIC, 0)
            self._end = self._size = len(MAGIC)
            self._next_seq, self._prev, self._durable = 0, ZERO_HASH, -1
            self.append(Record(time=now, partition=self.partition, event="audit.log-created",
                               severity="notice", detail={"key_id": self._kid.hex()}))
            self.commit(force_checkpoint=True)
            fsync_dir(self.path.parent)
            return Recovery(created=True, next_seq=self._next_seq)
        start, seq, prev, floor = len(MAGIC), 0, ZERO_HASH, 0
        if self.head_path.exists():
            head = read_head(self.head_path)
            start, seq, prev = head.offset, head.seq, None  # prev is re-read from the head frame
            floor = start + 1  # the head's checkpoint and everything before it can never be torn
        aligned = start - start % SECTOR  # read whole sectors: a power cut keeps or loses sectors
        with open(self.path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise AuditLogDamaged(Damage("bad-header", None, 0, 0, "not a Septum audit log (bad magic)"))
            f.seek(aligned)
            data = f.read()
        last_end = start
        bad: _Bad | None = None
        unsealed = 0
        for item in _frames(data, start - aligned, base=aligned, floor=floor):
            if isinstance(item, _Bad):
                bad = item
                break
            entry = _decode(item)
            absolute = aligned + item.offset
            if prev is None:  # the head's own frame must be exactly what the head says
                if entry is None or entry.seq != seq or item.digest != head.digest:
                    raise AuditLogDamaged(Damage("edited", seq, -1, absolute, "log differs from its head file"))
            elif entry is None or entry.seq != seq or entry.prev != prev:
                raise AuditLogDamaged(Damage("edited", seq, -1, absolute, "chain broken after the last checkpoint"))
            if prev is not None:
                unsealed = 0 if entry is not None and isinstance(entry.body, Checkpoint) else unsealed + 1
            prev, seq, last_end = item.digest, seq + 1, aligned + item.end
        if prev is None and bad is not None and not bad.torn:
            raise AuditLogDamaged(Damage("edited", seq, -1, start, "log differs from its head file"))
        if prev is None:
            raise AuditLogDamaged(Damage("truncated", seq, -1, start, "the log ends before its head checkpoint"))
        self._next_seq, self._prev, self._durable = seq, prev, seq - 1
        self._since_checkpoint = unsealed  # so that close() seals what the last run left unsigned
        marker = Path(str(self.path) + ".torn")
        if bad is not None and not bad.torn:
            raise AuditLogDamaged(Damage("edited", seq, -1, aligned + bad.offset, bad.message))
        if bad is not None:
            # A torn tail is the expected result of a crash mid-write: those records were never
            # acknowledged. Note the cut in a marker file first, so that a crash between cutting and
            # logging the cut still ends with an audit record about it, then cut and make it durable.
            # A torn tail is what a power cut during the last commit leaves: any subset of its sectors.
            torn_bytes = aligned + bad.end - last_end  # what was written; the zeros after it never were
            write_atomic(marker, _encode(_TornMarker(offset=last_end, bytes=torn_bytes, next_seq=seq)))
            os.ftruncate(self._fd, last_end)
            os.fsync(self._fd)
        # Continue right after the last good frame; zeros beyond it (written ahead) are overwritten.
        self._end, self._size = last_end, os.fstat(self._fd).st_size
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
        base = self._end
        pos = 0
        while pos < len(self._buf):  # one part unless the batch exceeds MAX_COMMIT_BYTES
            stop = self._part_end(pos)
            self._write_at(base + pos, pos, stop)
            # Flush before the next part starts: only the last part written can ever be torn.
            os.fdatasync(self._fd)
            pos = stop
        self._end = base + len(self._buf)
        if checkpoint is not None:
            self._write_head(checkpoint[0], base + checkpoint[1])
        self._buf.clear()
        self._pending = 0
        self._first_pending_at = None
        self._durable = self._next_seq - 1
        return self._durable

    def _part_end(self, pos: int) -> int:
        """End of the longest run of whole frames from ``pos`` that is at most MAX_COMMIT_BYTES long."""
        if len(self._buf) - pos <= MAX_COMMIT_BYTES:
            return len(self._buf)
        end = pos
        while True:
            (length,) = _LEN.unpack_from(self._buf, end)
            after = end + _LEN.size + length + HASH_LEN
            if after - pos > MAX_COMMIT_BYTES:
                return end  # > pos: one frame always fits (MAX_PAYLOAD is far below MAX_COMMIT_BYTES)
            end = after

    def _write_at(self, base: int, lo: int, hi: int) -> None:
        """Write ``_buf[lo:hi]`` at ``base`` with one system call (more only after a short write).

        When the batch does not fit in the zero-filled space, the same call also writes zeros up to the
        next ``EXTEND_CHUNK`` boundary, so only one commit in many changes the file's size."""
        end = base + hi - lo
        parts = [memoryview(self._buf)[lo:hi]]
        if end > self._size:
            new_size = (end // EXTEND_CHUNK + 1) * EXTEND_CHUNK
            parts.append(memoryview(_ZEROS)[: new_size - end])
        total = sum(len(p) for p in parts)
        written = 0
        while written < total:
            n = os.pwritev(self._fd, parts, base + written)
            written += n
            while parts and n >= len(parts[0]):  # drop what was written, keep the rest
                n -= len(parts[0])
                parts.pop(0)
            if parts and n:
                parts[0] = parts[0][n:]
        self._size = max(self._size, base + total)

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
            if self._size > self._end:
                # A closed log ends at its last frame: the zeros were only there for future commits.
                os.ftruncate(self._fd, self._end)
                os.fsync(self._fd)
        finally:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
