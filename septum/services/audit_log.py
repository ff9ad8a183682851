"""The audit log: append-only, hash-chained, every commit sealed by a signature, durable by group commit.

On-disk format (all integers big-endian)::

    file   = MAGIC frame*
    frame  = u32 length | payload (length bytes, msgpack Entry) | SHA-256(payload) (32 bytes)
    Entry  = [seq, prev, body]      prev = the 32-byte frame hash of the previous entry (zeros for seq 0)
    body   = Record | Checkpoint    (msgpack tagged arrays)

Each frame carries its own hash, so a torn final frame (a crash in the middle of a write) is told apart
from an edit; each payload names the previous frame's hash, so deleting, inserting or reordering frames
breaks the chain at a known place. **Every group commit ends with a seal**: a checkpoint entry signed with
Ed25519 over (its seq, prev, time, key id, pinned). A record is acknowledged only once the commit that
holds it, seal included, is on stable storage, so no acknowledged record is ever outside a signature:
records after the last seal are either an interrupted commit (never acknowledged; the next start removes
them and says so) or forged, and ``verify`` fails on them either way.

The *head* file beside the log (``LOG.head``, two 512-byte slots) names the latest seal, so cutting
sealed commits off the end is detected too: the *tip* slot is rewritten after every commit (not flushed:
a kill keeps it, a power cut may lose the last few updates), the *durable* slot at *pinned* seals (every
``checkpoint_every`` records or ``checkpoint_interval`` seconds, and at close), flushed before the next
commit starts. A seal says in its signed body whether it is pinned, so a head older than the last pinned
seal that has anything after it is proof that the head was rolled back. A head can be rebuilt from the
log's own bytes, so an attacker who rolls back log *and* head together is caught only by an anchor: the
last seal's digest, exported off the device (``septum audit anchor``) and checked by ``verify(anchors=)``.

The writer is made for a single-threaded event loop: ``append`` only encodes into a buffer and returns the
sequence number; ``commit`` seals the batch, writes and fsyncs it, and only then are the records
acknowledged (``durable_seq``). ``due(now)``/``deadline`` tell the loop when the bounded batching delay is up.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import time as _time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec
import nacl.bindings
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from septum.crypto.keys import key_id
from septum.errors import InvariantBroken, SeptumError
from septum.staged_write import fsync_dir, write_atomic

from .audit_anchor import Anchor

# Format 2: every commit sealed, pinned flag in the seal, two-slot head file. A format-1 log (sealed only
# now and then) is refused as "bad-header" rather than judged by rules it was not written under.
MAGIC = b"SEPTAUD\x02"
HASH_LEN = 32
ZERO_HASH = b"\x00" * HASH_LEN
MAX_PAYLOAD = 64 * 1024  # a record larger than this is a bug or an attack, not an audit event
_LEN = struct.Struct(">I")
_SIGN_DOMAIN = b"septum-audit-seal-v2\x00"
HEAD_SLOT = 512  # one sector per head slot: a power cut keeps the old or the new slot, each hash-checked
_SEAL_RESERVE = 512  # room kept in every commit part for the seal that ends it (a seal frame is ~200 bytes)
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
if not (_LEN.size + MAX_PAYLOAD + HASH_LEN < MAX_COMMIT_BYTES):
    raise InvariantBroken("internal invariant broken: _LEN.size + MAX_PAYLOAD + HASH_LEN < MAX_COMMIT_BYTES")

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
    """A seal: ends every commit (and every part of a commit larger than MAX_COMMIT_BYTES)."""

    time: float
    key_id: bytes
    signature: bytes
    pinned: bool = False  # the writer flushed the head's durable slot for this seal (signed, see below)


class Compacted(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag="k"):
    """Stands for a compacted prefix (first frame of a compacted log; see ``audit_retention``): the chain
    head it replaces (``head_digest``, the frame hash of seal ``cut_seq``, and that seal's own payload, so its
    signature is re-checked), what was removed per record class, and the records kept from it (``carried``
    frames that follow, bound by ``carried_digest``). Signed with the audit key over all its fields."""

    time: float
    key_id: bytes
    signature: bytes
    cut_seq: int
    head_digest: bytes
    seal_entry: bytes
    first_seq: int = 0
    removed: dict[str, int] = {}
    removed_seals: int = 0
    removed_from: float = 0.0
    removed_to: float = 0.0
    carried: int = 0
    carried_digest: bytes = b""
    policy: dict[str, float] = {}
    compactions: int = 1


class Entry(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    prev: bytes
    body: Record | Checkpoint | Compacted


class Head(msgspec.Struct, frozen=True, kw_only=True):
    """A seal the log is known to reach, kept outside the log to detect truncation (one per head slot)."""

    seq: int
    offset: int
    digest: bytes
    entry: bytes


_encode = msgspec.msgpack.Encoder().encode
_entry_decoder = msgspec.msgpack.Decoder(Entry)
_head_decoder = msgspec.msgpack.Decoder(Head)


class AuditError(SeptumError):
    """A record or call the writer must refuse (too large, writer closed, ...)."""


class AuditLogDamaged(AuditError):
    """The log is damaged in a way the writer must not repair by itself (anything but a torn tail)."""

    def __init__(self, damage: Damage) -> None:
        super().__init__(damage.describe())
        self.damage = damage


DamageKind = Literal[
    "bad-header", "edited", "deleted", "reordered", "truncated", "torn-tail", "wrong-key", "bad-head",
    "unsealed", "missing-head", "old-head", "rolled-back",
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
        # index/offset -1: damage found through the head or an anchor, not at a place in the file
        if self.seq is not None:
            where = f" at record seq {self.seq}"
        else:
            where = f" at frame {self.index}" if self.index >= 0 else ""
        if self.index >= 0:
            pos = f" (frame {self.index}, byte {self.offset})"
        else:
            pos = f" (byte {self.offset})" if self.offset >= 0 else ""
        return f"{self.kind}{where}{pos}: {self.message}"


@dataclass
class VerifyResult:
    ok: bool
    records: int = 0
    checkpoints: int = 0
    last_seq: int = -1
    last_checkpoint_seq: int = -1
    head_seq: int | None = None
    pinned_seq: int = -1  # the last seal that says the head was flushed for it
    last_checkpoint_digest: bytes = b""  # frame hash of the last seal: what an anchor records
    last_checkpoint_time: float = 0.0
    anchors_checked: int = 0
    damage: Damage | None = None
    notes: list[str] = field(default_factory=list)
    compacted: Compacted | None = None  # the log's compacted prefix, verified by its signature

    @property
    def unsealed(self) -> int:
        """Entries after the last checkpoint: not yet covered by a signature."""
        return self.last_seq - self.last_checkpoint_seq if self.last_seq >= 0 else 0


def head_path_for(log_path: Path) -> Path:
    return Path(str(log_path) + ".head")


def checkpoint_message(seq: int, prev: bytes, at: float, kid: bytes, pinned: bool = False) -> bytes:
    return _SIGN_DOMAIN + struct.pack(">Q", seq) + prev + struct.pack(">d", at) + kid + (b"\x01" if pinned else b"\x00")


def _seal_message(seq: int, prev: bytes, cp: Checkpoint) -> bytes:
    return checkpoint_message(seq, prev, cp.time, cp.key_id, cp.pinned)


def encode_head(head: Head) -> bytes:
    """One head slot: u32 length | msgpack Head | SHA-256, zero-padded to HEAD_SLOT bytes."""
    payload = _encode(head)
    blob = _LEN.pack(len(payload)) + payload + hashlib.sha256(payload).digest()
    if len(blob) > HEAD_SLOT:
        raise AuditError(f"head of {len(blob)} bytes does not fit a {HEAD_SLOT}-byte slot")
    return blob.ljust(HEAD_SLOT, b"\x00")


def _decode_slot(blob: bytes) -> Head | None:
    if len(blob) < _LEN.size:
        return None
    (length,) = _LEN.unpack_from(blob)
    if length == 0 or _LEN.size + length + HASH_LEN > len(blob):
        return None
    payload = blob[_LEN.size : _LEN.size + length]
    if hashlib.sha256(payload).digest() != blob[_LEN.size + length : _LEN.size + length + HASH_LEN]:
        return None
    try:
        return _head_decoder.decode(payload)
    except msgspec.DecodeError:
        return None


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
    """The newest valid slot of a head file (a slot torn by a power cut is skipped)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuditError(f"{path}: cannot read head file ({exc.strerror})") from None
    slots = [h for h in (_decode_slot(data[:HEAD_SLOT]), _decode_slot(data[HEAD_SLOT : 2 * HEAD_SLOT])) if h]
    if not slots:
        raise AuditError(f"{path}: not a head file (no valid slot)")
    return max(slots, key=lambda h: h.seq)


def required_head(pinned: list[tuple[int, bool]]) -> int:
    """The oldest seal a genuine head may name, from the log's pinned seals (seq, anything after it?).

    The writer flushes the head's durable slot for a pinned seal before the next commit starts, so once
    anything follows a pinned seal the head names it or a later one; only a crash right after the
    pinned commit's flush can leave the head at the pinned seal before it."""
    if not pinned:
        return -1
    seq, followed = pinned[-1]
    if followed:
        return seq
    return pinned[-2][0] if len(pinned) > 1 else -1


@dataclass
class _Walk:
    """Where the last seal is and what follows it, while walking the log."""

    seal_seq: int = -1
    records_after: int = 0  # plain records after the last seal
    first_after: tuple[int, int, int] | None = None  # (seq, index, offset) of the first entry after it
    pinned: list[tuple[int, bool]] = field(default_factory=list)


def verify(
    path: Path,
    public_key: Ed25519PublicKey,
    *,
    head: Path | Literal["auto"] | None = "auto",
    anchors: Sequence[Anchor] = (),
    allow_unsealed_tail: bool = False,
) -> VerifyResult:
    """Check the whole log; stop at and name the first bad record.

    ``head="auto"`` checks against ``LOG.head`` and fails when it is missing or older than it must be; a
    path uses that head file (a copy kept off the device, for instance: its seal must be in the log, and it
    may be older); ``None`` skips the head checks (the caller accepts that a cut at a seal cannot be seen).
    Every anchor must name a seal in the log (else ``rolled-back``).
    Records after the last seal fail the log (``unsealed``) unless ``allow_unsealed_tail``, which turns
    that into a note: they are then *not* authenticated by anything.

    The head is read before and again after the log, so that a log still being written verifies: the
    truncation check uses the first read (every seal it names was on disk before the log was read), the
    rolled-back-head check the second (every pinned seal in the log read had its head flushed by then).
    """
    head_file = head_path_for(path) if head == "auto" else head
    first_head: Head | Damage | None = None
    if head_file is not None:
        if head == "auto" and not Path(head_file).exists():
            first_head = Damage("missing-head", None, -1, -1,
                                f"no head file {head_file}: deleted, or not copied with the log; without it a cut "
                                "after a seal cannot be seen")
        else:
            first_head = _load_head(Path(head_file), public_key)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuditError(f"{path}: cannot read log ({exc.strerror})") from None
    second_head = (_load_head(Path(head_file), public_key)
                   if isinstance(first_head, Head) and head_file is not None else first_head)
    result = VerifyResult(ok=False)
    if data[: len(MAGIC)] != MAGIC:
        old = data[: len(MAGIC) - 1] == MAGIC[:-1]
        msg = "a format-1 Septum audit log (written before every commit was sealed)" if old else (
            "not a Septum audit log (bad magic)")
        result.damage = Damage("bad-header", None, 0, 0, msg)
        return result
    kid = key_id(public_key)
    expected = 0
    prev = ZERO_HASH
    wanted = {a.seq for a in anchors} | ({first_head.seq} if isinstance(first_head, Head) else set())
    digests: dict[int, tuple[int, bytes]] = {}  # seq -> (offset, frame hash), for the head and the anchors
    walk = _Walk()
    last_frame_end = len(MAGIC)
    prev_offset = len(MAGIC)
    start, start_index = len(MAGIC), 0
    from .audit_retention import open_compacted  # a compacted log begins with its signed Compacted record

    opened = open_compacted(data, public_key)
    if isinstance(opened, Damage):
        result.damage = opened
        return result
    if opened is not None:
        cp0 = opened.compacted
        result.compacted = cp0
        expected, prev, start, start_index = cp0.cut_seq + 1, cp0.head_digest, opened.offset, opened.index
        last_frame_end = prev_offset = opened.offset
        digests[cp0.cut_seq] = (-1, cp0.head_digest)
        result.notes.append(opened.describe())
    # Nothing up to the seal the head names can be a torn commit: it was flushed before the head was
    # written, and every later commit began after that.
    floor = first_head.offset + 1 if isinstance(first_head, Head) else 0

    for item in _frames(data, start, start_index, floor=floor):
        if isinstance(item, _Bad):
            if item.torn:
                if walk.pinned:  # a commit began after the last pinned seal: its head was flushed first
                    walk.pinned[-1] = (walk.pinned[-1][0], True)
                # The unfinished commit starts right after the last seal: all of it is the torn tail.
                seq, index, offset = walk.first_after or (expected, item.index, item.offset)
                result.damage = Damage("torn-tail", seq, index, offset,
                                       item.message + " (an unfinished commit: never acknowledged)")
                result.records -= walk.records_after
                result.last_seq = walk.seal_seq
            else:
                result.damage = Damage("edited", expected, item.index, item.offset,
                                       item.message + "; the frame was altered")
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
        if entry.seq in wanted:
            digests[entry.seq] = (item.offset, item.digest)
        if isinstance(entry.body, Compacted):
            result.damage = Damage("edited", entry.seq, item.index, item.offset,
                                   "a compaction record in the middle of the chain: only a log's first frame is one")
            break
        if isinstance(entry.body, Checkpoint):
            cp = entry.body
            if cp.key_id != kid:
                msg = f"checkpoint signed by key {cp.key_id.hex()}, verifying with key {kid.hex()}"
                result.damage = Damage("wrong-key", entry.seq, item.index, item.offset, msg)
                break
            try:
                public_key.verify(cp.signature, _seal_message(entry.seq, entry.prev, cp))
            except InvalidSignature:
                first = walk.seal_seq + 1
                msg = (
                    f"checkpoint seq {entry.seq} does not match the chain: records seq {first}.."
                    f"{entry.seq - 1} were rewritten"
                )
                result.damage = Damage("edited", first, item.index, item.offset, msg, entry.seq - 1)
                break
            if walk.pinned and not walk.pinned[-1][1]:
                walk.pinned[-1] = (walk.pinned[-1][0], True)
            if cp.pinned:
                walk.pinned.append((entry.seq, False))
            walk.seal_seq = entry.seq
            walk.records_after, walk.first_after = 0, None
            result.checkpoints += 1
            result.last_checkpoint_digest, result.last_checkpoint_time = item.digest, cp.time
        else:
            if walk.pinned and not walk.pinned[-1][1]:
                walk.pinned[-1] = (walk.pinned[-1][0], True)
            if walk.first_after is None:
                walk.first_after = (entry.seq, item.index, item.offset)
            walk.records_after += 1
            result.records += 1
        result.last_seq = entry.seq
        prev = item.digest
        expected += 1
        last_frame_end = item.end
        prev_offset = item.offset
    result.last_checkpoint_seq = walk.seal_seq
    result.pinned_seq = walk.pinned[-1][0] if walk.pinned else -1

    if result.damage is None and walk.first_after is not None:
        seq, index, offset = walk.first_after
        msg = (f"record(s) seq {seq}..{result.last_seq} follow the last seal (seq {walk.seal_seq}) and are not "
               "signed: forged, or an interrupted commit that was never acknowledged")
        if allow_unsealed_tail:
            result.notes.append(f"--allow-unsealed-tail: {msg}; they are NOT authenticated")
        else:
            result.damage = Damage("unsealed", seq, index, offset, msg, result.last_seq)
    if first_head is not None:
        _check_head(result, first_head, digests, last_frame_end, expected)
        if result.damage is None and isinstance(second_head, Head) and head == "auto":
            # Only the head beside the log must keep up; a copy given by path is older by nature.
            need = required_head(walk.pinned)
            if second_head.seq < need:
                result.damage = Damage(
                    "old-head", need, -1, -1,
                    f"the head names seal seq {second_head.seq}, older than pinned seal seq {need} that the "
                    "writer flushed it for: the head file was replaced by an older one", None)
        elif result.damage is None and isinstance(second_head, Damage):
            result.damage = second_head
    if result.damage is None or result.damage.kind == "torn-tail":
        _check_anchors(result, anchors, digests, data)
    result.ok = result.damage is None
    return result


def _check_anchors(result: VerifyResult, anchors: Sequence[Anchor], digests: dict[int, tuple[int, bytes]],
                   data: bytes) -> None:
    for anchor in anchors:
        found = digests.get(anchor.seq)
        if found is None and result.compacted is not None and anchor.seq < result.compacted.cut_seq:
            # its seal was compacted away; the compaction's signature vouches for the prefix it replaced
            result.notes.append(f"anchor at seal seq {anchor.seq} lies in the compacted prefix (seq "
                                f"{result.compacted.first_seq}..{result.compacted.cut_seq}): not checkable")
            continue
        if found is None:
            result.damage = Damage(
                "rolled-back", anchor.seq, -1, -1,
                f"the log ends at seq {result.last_seq} but an anchor exported earlier names seal seq "
                f"{anchor.seq}: the log was rolled back (with its head, or the head check would have said so)")
            return
        if found[1] != anchor.digest:
            result.damage = Damage(
                "rolled-back", anchor.seq, -1, found[0],
                f"the entry at seq {anchor.seq} is not the seal an anchor exported earlier names: the log was "
                "replaced or rewritten from there on")
            return
        result.anchors_checked += 1


def _load_head(head_file: Path, public_key: Ed25519PublicKey) -> Head | Damage:
    """The head file's seal when it is signed by this key, else the ``bad-head`` damage."""
    try:
        head = read_head(head_file)
        entry = _entry_decoder.decode(head.entry)
    except (AuditError, msgspec.DecodeError) as exc:
        return Damage("bad-head", None, -1, -1, f"head file unusable: {exc}")
    cp = entry.body
    valid = isinstance(cp, Checkpoint) and entry.seq == head.seq
    if valid:
        if not isinstance(cp, Checkpoint):
            raise InvariantBroken("internal invariant broken: isinstance(cp, Checkpoint)")
        try:
            public_key.verify(cp.signature, _seal_message(entry.seq, entry.prev, cp))
        except InvalidSignature:
            valid = False
    if not valid:
        return Damage("bad-head", None, -1, -1, f"{head_file}: head checkpoint is not signed by this key")
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
    if result.damage is not None and result.damage.kind not in ("torn-tail", "unsealed"):
        return  # the first damage is already named; the head cannot add anything earlier
    if head.seq in digests:
        if digests[head.seq][1] != head.digest:
            result.damage = Damage("edited", head.seq, -1, digests[head.seq][0], "log differs from head checkpoint")
        return
    if head.seq >= next_seq or (result.damage is not None and result.damage.seq is not None
                                and head.seq >= result.damage.seq):
        # Everything up to the head was fsynced before the head was written: a crash cannot lose it.
        cut_from = "" if result.damage is None else f" ({result.damage.kind} from seq {result.damage.seq})"
        result.damage = Damage(
            "truncated", next_seq, -1, log_end,
            f"the log ends before seq {next_seq}{cut_from} but the head shows seal seq {head.seq} was written",
            head.seq,
        )


# ---------------------------------------------------------------------------------------------- reading API


@dataclass(frozen=True)
class LogEntry:
    seq: int
    body: Record | Checkpoint | Compacted


def read_entries(path: Path) -> tuple[list[LogEntry], Damage | None]:
    """Structurally valid entries in order (hashes and chain links checked, not signatures).

    Whole entries after the last seal are left out and reported as ``unsealed`` damage: nothing vouches
    for them (a forged tail, or a commit not finished yet), so they are never presented as events."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuditError(f"{path}: cannot read log ({exc.strerror})") from None
    if data[: len(MAGIC)] != MAGIC:
        return [], Damage("bad-header", None, 0, 0, "not a Septum audit log (bad magic)")
    out: list[LogEntry] = []
    prev = ZERO_HASH
    sealed, sealed_index, sealed_end = 0, 0, len(MAGIC)  # entries up to the last seal, and where it ends
    floor = 0  # as in verify: nothing up to the head's checkpoint is ever a torn commit
    if head_path_for(path).exists():
        try:
            floor = read_head(head_path_for(path)).offset + 1
        except AuditError:
            pass  # no signatures are checked here; verify reports an unusable head
    from .audit_retention import open_compacted

    expected, start, start_index = 0, len(MAGIC), 0
    opened = open_compacted(data, None)  # structure only, as for the rest: verify checks the signatures
    if isinstance(opened, Damage):
        return out, opened
    if opened is not None:
        out.extend(opened.carried)  # records kept from the compacted prefix, in their own seq order
        expected, prev, start, start_index = opened.compacted.cut_seq + 1, opened.compacted.head_digest, \
            opened.offset, opened.index
        sealed, sealed_index, sealed_end = len(out), start_index, start
    for item in _frames(data, start, start_index, floor=floor):
        if isinstance(item, _Bad):
            return out, Damage("torn-tail" if item.torn else "edited", expected, item.index, item.offset,
                               item.message)
        entry = _decode(item)
        if entry is None or entry.seq != expected or entry.prev != prev or isinstance(entry.body, Compacted):
            return out, Damage("edited", expected, item.index, item.offset, "chain broken; run verify")
        out.append(LogEntry(entry.seq, entry.body))
        prev = item.digest
        expected += 1
        if isinstance(entry.body, Checkpoint):
            sealed, sealed_index, sealed_end = len(out), item.index + 1, item.end
    if len(out) > sealed:
        first = out[sealed].seq
        msg = f"record(s) seq {first}..{out[-1].seq} follow the last seal and are not signed; run verify"
        return out[:sealed], Damage("unsealed", first, sealed_index, sealed_end, msg, out[-1].seq)
    return out, None


def read_entries_after(path: Path, offset: int) -> list[LogEntry]:
    """Whole, self-consistent entries from byte ``offset`` (a frame boundary) to the end; nothing checked
    beyond each frame's own hash. For a reader that knows where it stopped before (the audit service)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError as exc:
        raise AuditError(f"{path}: cannot read log ({exc.strerror})") from None
    out: list[LogEntry] = []
    for item in _frames(data, 0):
        entry = None if isinstance(item, _Bad) else _decode(item)
        if entry is None:
            break
        out.append(LogEntry(entry.seq, entry.body))
    return out


# ---------------------------------------------------------------------------------------------- writing


class Sealer:
    """Ed25519 signing through libsodium, for the seal on every commit.

    Ed25519 (RFC 8032) is deterministic, so the signatures are byte for byte those OpenSSL makes with the
    same key (verification stays with ``cryptography``); libsodium makes them with about 60% of the CPU,
    which is what a commit of one record spends beside its fsync."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        _public, self._secret = nacl.bindings.crypto_sign_seed_keypair(seed)

    def sign(self, message: bytes) -> bytes:
        return nacl.bindings.crypto_sign(message, self._secret)[: nacl.bindings.crypto_sign_BYTES]


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
    entries: int = -1  # whole unsealed entries removed (-1: unknown)


_cuts_decoder = msgspec.msgpack.Decoder(list[_TornMarker])


def _read_cuts(marker: Path) -> list[_TornMarker]:
    """The cuts a marker file records ([] when there is none)."""
    try:
        return _cuts_decoder.decode(marker.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, msgspec.DecodeError):
        return [_TornMarker(offset=-1, bytes=-1, next_seq=-1)]  # a cut happened; what it removed is unreadable


class AuditWriter:
    """Group-committing writer. Not thread-safe: one event loop owns it (and a file lock enforces one
    writer per log).

    Every commit is sealed. ``checkpoint_every``/``checkpoint_interval`` say how often a seal is *pinned*:
    the head file's durable slot is flushed for it (the tip slot follows every commit unflushed)."""

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
        self._sealer = Sealer(signing_key)
        self._kid = key_id(signing_key.public_key())
        self._buf = bytearray()
        self._parts: list[int] = []  # buffer offsets where a commit part ends (right after its seal)
        self._part_start = 0
        self._pending = 0
        self._first_pending_at: float | None = None
        self._since_checkpoint = 0  # records since the last seal
        self._since_pin = 0  # records since the head's durable slot was last flushed
        self._closed = False
        self._last_pin_at = _time.monotonic()
        self._tip: Head | None = None  # the last seal written (what the head's tip slot holds)
        # The last seal not yet written: (offset in buf, seq, its payload); the head is built from it.
        self._tip_in_buf: tuple[int, int, bytes] | None = None
        self._last_payload = b""  # the payload of the last frame added (a seal's, right after _seal)
        self._durable_head_seq = -1  # the seal the head's durable slot was last flushed for
        self._head_fd: int | None = None
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
            self._close_fds()
            raise

    # -- recovery ---------------------------------------------------------------------------------

    def _create(self, now: float) -> Recovery:
        os.pwrite(self._fd, MAGIC, 0)
        self._end = self._size = len(MAGIC)
        self._next_seq, self._prev, self._durable = 0, ZERO_HASH, -1
        self.append(Record(time=now, partition=self.partition, event="audit.log-created",
                           severity="notice", detail={"key_id": self._kid.hex()}))
        self.commit(force_checkpoint=True)
        fsync_dir(self.path.parent)
        return Recovery(created=True, next_seq=self._next_seq)

    def _only_a_creation(self, data: bytes) -> bool:
        """Is this at most the first commit of a new log (a crash before its head file was written)?"""
        for item in _frames(data, len(MAGIC)):
            if isinstance(item, _Bad):
                return item.torn
            entry = _decode(item)
            if entry is None or entry.seq > 1:
                return False
        return True

    def _damaged(self, kind: DamageKind, seq: int | None, offset: int, message: str) -> AuditLogDamaged:
        return AuditLogDamaged(Damage(kind, seq, -1, offset, message))

    def _recover(self) -> Recovery:
        now = _time.time()
        size = os.fstat(self._fd).st_size
        if size == 0 and self.head_path.exists():
            # An emptied log with a head beside it was truncated; starting afresh would hide that.
            raise AuditLogDamaged(Damage("truncated", 0, 0, 0, "the log is empty but its head file exists"))
        if size == 0:
            return self._create(now)
        with open(self.path, "rb") as f:
            magic = f.read(len(MAGIC))
            if magic != MAGIC:
                raise AuditLogDamaged(Damage("bad-header", None, 0, 0, "not a Septum audit log (bad magic)"))
            if not self.head_path.exists():
                f.seek(0)
                if self._only_a_creation(f.read()):
                    os.ftruncate(self._fd, 0)  # nothing in it was ever acknowledged: begin again
                    return self._create(now)
                raise self._damaged("missing-head", None, -1, "the log has records but no head file beside it")
            try:
                head = read_head(self.head_path)
            except AuditError as exc:
                raise self._damaged("bad-head", None, -1, str(exc)) from None
            start = head.offset
            aligned = start - start % SECTOR  # read whole sectors: a power cut keeps or loses sectors
            f.seek(aligned)
            data = f.read()
        floor = start + 1  # the head's seal and everything before it can never be torn
        seq, prev = head.seq, b""
        last_end = start
        bad: _Bad | None = None
        seal: tuple[Entry, Head] | None = None  # the last seal found, and the head that would name it
        seal_end = start
        pinned: list[tuple[int, bool]] = []
        for item in _frames(data, start - aligned, base=aligned, floor=floor):
            if isinstance(item, _Bad):
                bad = item
                break
            entry = _decode(item)
            absolute = aligned + item.offset
            if not prev:  # the head's own frame must be exactly what the head says
                if entry is None or entry.seq != seq or item.digest != head.digest:
                    raise self._damaged("edited", seq, absolute, "log differs from its head file")
            elif entry is None or entry.seq != seq or entry.prev != prev:
                raise self._damaged("edited", seq, absolute, "chain broken after the head's seal")
            if pinned and not pinned[-1][1]:
                pinned[-1] = (pinned[-1][0], True)
            if isinstance(entry.body, Checkpoint):
                seal = (entry, Head(seq=entry.seq, offset=absolute, digest=item.digest, entry=item.payload))
                seal_end = aligned + item.end
                if entry.body.pinned and prev:
                    pinned.append((entry.seq, False))
            prev, seq, last_end = item.digest, seq + 1, aligned + item.end
        if not prev and bad is not None and not bad.torn:
            raise self._damaged("edited", seq, start, "log differs from its head file")
        if not prev or seal is None:
            raise self._damaged("truncated", seq, start, "the log ends before the seal its head names")
        if bad is not None and not bad.torn:
            raise self._damaged("edited", seq, aligned + bad.offset, bad.message)
        if pinned and bad is not None:
            pinned[-1] = (pinned[-1][0], True)
        need = required_head(pinned)
        if head.seq < need:
            raise self._damaged("old-head", need, -1, f"the head names seal seq {head.seq}, older than pinned "
                                f"seal seq {need}: the head file was replaced by an older one")
        entry, tip = seal
        if not isinstance(entry.body, Checkpoint):
            raise InvariantBroken("internal invariant broken: isinstance(entry.body, Checkpoint)")
        # The last seal vouches for the whole chain before it: never continue (and so re-seal) a chain
        # whose last seal this key did not make.
        if entry.body.key_id != self._kid:
            raise self._damaged("wrong-key", entry.seq, tip.offset, "the last seal was made by another key")
        try:
            self._key.public_key().verify(entry.body.signature, _seal_message(entry.seq, entry.prev, entry.body))
        except InvalidSignature:
            raise self._damaged("edited", entry.seq, tip.offset, "the last seal's signature is not valid") from None
        self._next_seq, self._prev, self._durable = entry.seq + 1, tip.digest, entry.seq
        self._tip = tip
        self._durable_head_seq = head.seq
        self._head_fd = os.open(self.head_path, os.O_RDWR)
        marker = Path(str(self.path) + ".torn")
        if bad is not None or last_end > seal_end:
            # What follows the last seal is a commit that never finished (a crash mid-write: never
            # acknowledged) or was forged; either way it is not sealed and must not be sealed now. Note the
            # cut in a marker file first, so that a crash between cutting and logging the cut still ends
            # with an audit record about it, then cut and make it durable.
            cut_end = aligned + bad.end if bad is not None else last_end  # zeros after it were never written
            entries = seq - (entry.seq + 1)
            # A marker left by a repair that was itself cut short keeps its cut: both get their record.
            cut = _TornMarker(offset=seal_end, bytes=cut_end - seal_end, next_seq=entry.seq + 1, entries=entries)
            cuts = [*_read_cuts(marker), cut]
            write_atomic(marker, _encode(cuts))
            os.ftruncate(self._fd, seal_end)
            os.fsync(self._fd)
        # Continue right after the last seal; zeros beyond it (written ahead) are overwritten.
        self._end, self._size = seal_end, os.fstat(self._fd).st_size
        if not marker.exists():
            if head.seq < tip.seq:  # the head lagged (a power cut lost tip updates): bring it up to date
                self._write_head(tip, durable=True)
            return Recovery(created=False, next_seq=self._next_seq)
        cuts = _read_cuts(marker) or [_TornMarker(offset=-1, bytes=-1, next_seq=-1)]
        first_repair = self._next_seq
        for info in cuts:
            self.append(Record(time=now, partition=self.partition, event="audit.torn-tail-truncated",
                               severity="warning",
                               message=f"removed {info.bytes} byte(s) of an unfinished, unsealed commit after a crash",
                               detail={"offset": info.offset, "bytes": info.bytes, "next_seq": info.next_seq,
                                       "entries": info.entries}))
        self.commit(force_checkpoint=True)
        marker.unlink()
        fsync_dir(self.path.parent)
        last = cuts[-1]
        return Recovery(created=False, next_seq=first_repair, torn_bytes=last.bytes, torn_offset=last.offset)

    # -- appending --------------------------------------------------------------------------------

    @property
    def durable_seq(self) -> int:
        """The highest sequence number that is on stable storage (acknowledge up to this)."""
        return self._durable

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def end_offset(self) -> int:
        """Where the durable log ends (the byte after the last committed seal)."""
        return self._end

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
        if self._first_pending_at is None:
            raise InvariantBroken("internal invariant broken: self._first_pending_at is not None")
        return self._pending >= self.max_batch or now - self._first_pending_at >= self.max_delay

    def _add(self, body: Record | Checkpoint) -> int:
        payload = _encode(Entry(self._next_seq, self._prev, body))
        if len(payload) > MAX_PAYLOAD:
            raise AuditError(f"record of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
        frame_len = _LEN.size + len(payload) + HASH_LEN
        if (isinstance(body, Record) and len(self._buf) > self._part_start
                and len(self._buf) - self._part_start + frame_len + _SEAL_RESERVE > MAX_COMMIT_BYTES):
            # This part is full: seal it, so that a crash after it is flushed leaves only sealed records.
            self._seal(pinned=False)
            payload = _encode(Entry(self._next_seq, self._prev, body))
        seq = self._next_seq
        digest = hashlib.sha256(payload).digest()
        self._last_payload = payload
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
        self._since_pin += 1
        return seq

    def _seal(self, *, pinned: bool) -> None:
        seq = self._next_seq
        wall = _time.time()  # recorded for readers; decisions use the loop's monotonic clock
        sig = self._sealer.sign(checkpoint_message(seq, self._prev, wall, self._kid, pinned))
        offset_in_buf = len(self._buf)
        self._add(Checkpoint(time=wall, key_id=self._kid, signature=sig, pinned=pinned))
        self._tip_in_buf = (offset_in_buf, seq, self._last_payload)
        self._parts.append(len(self._buf))
        self._part_start = len(self._buf)
        self._since_checkpoint = 0

    def _pin_due(self, now: float, force: bool) -> bool:
        return (force or self._since_pin >= self.checkpoint_every
                or now - self._last_pin_at >= self.checkpoint_interval)

    def commit(self, now: float | None = None, *, force_checkpoint: bool = False) -> int:
        """Seal everything pending, write and fsync it, update the head; return durable_seq.

        The seal is pinned (the head's durable slot flushed for it) when ``force_checkpoint`` is given or
        a pin is due; an idle log gets its head flushed when a pin is due. ``now`` is the loop's
        monotonic clock (the same one given to ``append`` and ``due``)."""
        if self._closed:
            raise AuditError("audit writer is closed")
        now = _time.monotonic() if now is None else now
        pin = self._pin_due(now, force_checkpoint)
        if self._since_checkpoint:
            self._seal(pinned=pin)
        elif pin and self._tip is not None and self._durable_head_seq < self._tip.seq and not self._buf:
            self._write_head(self._tip, durable=True)  # idle: flush the head for the last seal
            self._last_pin_at, self._since_pin = now, 0
            return self._durable
        if not self._buf:
            return self._durable
        base = self._end
        start = 0
        for stop in self._parts:  # one part unless the batch exceeds MAX_COMMIT_BYTES
            self._write_at(base + start, start, stop)
            # Flush before the next part starts: only the last part written can ever be torn.
            os.fdatasync(self._fd)
            start = stop
        if not (start == len(self._buf)):
            raise InvariantBroken("every commit part ends with a seal")
        self._end = base + len(self._buf)
        if self._tip_in_buf is None:
            raise InvariantBroken("internal invariant broken: self._tip_in_buf is not None")
        at, seq, payload = self._tip_in_buf
        # The seal is the last frame of the batch, so its frame hash is the chain's current digest.
        self._write_head(Head(seq=seq, offset=base + at, digest=self._prev, entry=payload), durable=pin)
        if pin:
            self._last_pin_at, self._since_pin = now, 0
        self._buf.clear()
        self._parts.clear()
        self._part_start = 0
        self._tip_in_buf = None
        self._pending = 0
        self._first_pending_at = None
        self._durable = self._next_seq - 1
        return self._durable

    def _write_at(self, base: int, lo: int, hi: int) -> None:
        """Write ``_buf[lo:hi]`` at ``base`` with one system call (more only after a short write).

        When the batch does not fit in the zero-filled space, the same call also writes zeros up to the
        next ``EXTEND_CHUNK`` boundary, so only one commit in many changes the file's size."""
        end = base + hi - lo
        if end <= self._size and lo == 0 and hi == len(self._buf):
            # The common commit: the whole batch into zero-filled space, one call with no views to build.
            n = os.pwrite(self._fd, self._buf, base)
            if n == hi:
                return
            lo += n
            base += n
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

    def _write_head(self, head: Head, *, durable: bool) -> None:
        """Name ``head`` (a seal already flushed in the log) in the tip slot, and in the durable slot
        (flushed) when ``durable``. Both slots are written in place: no new inode, no directory flush."""
        blob = encode_head(head)
        self._tip = head
        if self._head_fd is None:  # the first seal of a new log: create the file with both slots
            write_atomic(self.head_path, blob + blob, 0o640)
            self._head_fd = os.open(self.head_path, os.O_RDWR)
            self._durable_head_seq = head.seq
            return
        os.pwrite(self._head_fd, blob, HEAD_SLOT)
        if durable:
            os.pwrite(self._head_fd, blob, 0)
            os.fdatasync(self._head_fd)
            self._durable_head_seq = head.seq

    def _close_fds(self) -> None:
        os.close(self._fd)
        if self._head_fd is not None:
            os.close(self._head_fd)
            self._head_fd = None

    def close(self, now: float | None = None) -> None:
        """Commit what is pending, pin its seal (head flushed), release the log."""
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
            self._close_fds()

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
