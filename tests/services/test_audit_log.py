"""Tamper cases on the audit log: each is detected, classified, and pinned to the right record."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.services import audit_log as al
from septum.services.audit_log import (
    AuditError,
    AuditLogDamaged,
    AuditWriter,
    Checkpoint,
    Record,
    read_entries,
    verify,
)


def _rec(i: int) -> Record:
    return Record(time=1_700_000_000.0 + i, partition="pump", event="test.event", message=f"record {i}",
                  detail={"i": i})


def _build(path: Path, key: Ed25519PrivateKey, batches: int = 10, per_batch: int = 5) -> None:
    w = AuditWriter(path, key, checkpoint_every=10, checkpoint_interval=1e9)
    for b in range(batches):
        for i in range(per_batch):
            w.append(_rec(b * per_batch + i))
        w.commit()
    w.close()


def _frames(path: Path) -> list[tuple[int, int, al.Entry]]:
    """(offset, end, entry) for every frame."""
    data = path.read_bytes()
    out = []
    for f in al._frames(data, len(al.MAGIC)):
        assert isinstance(f, al._Frame)
        out.append((f.offset, f.end, msgspec.msgpack.decode(f.payload, type=al.Entry)))
    return out


def _frame(entry: al.Entry) -> bytes:
    payload = msgspec.msgpack.encode(entry)
    return len(payload).to_bytes(4, "big") + payload + hashlib.sha256(payload).digest()


def _splice(path: Path, start: int, end: int, new: bytes) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:start] + new + data[end:])


def _record_index(frames: list[tuple[int, int, al.Entry]], after_seq: int) -> int:
    """Index of the first plain record with seq >= after_seq whose successor is also a plain record."""
    for i, (_, _, e) in enumerate(frames):
        if e.seq >= after_seq and isinstance(e.body, Record) and isinstance(frames[i + 1][2].body, Record):
            return i
    raise AssertionError("no such record")


@pytest.fixture
def log(tmp_path: Path, audit_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "audit.log"
    _build(path, audit_key)
    return path


def test_clean_log_verifies(log: Path, audit_key: Ed25519PrivateKey) -> None:
    r = verify(log, audit_key.public_key())
    assert r.ok and r.damage is None
    assert r.records == 51  # 50 + the log-created record
    assert r.checkpoints >= 5 and r.unsealed == 0 and r.head_seq == r.last_seq


def test_flipped_byte_is_edited_at_that_record(log: Path, audit_key: Ed25519PrivateKey) -> None:
    frames = _frames(log)
    i = _record_index(frames, 20)
    off, end, entry = frames[i]
    data = bytearray(log.read_bytes())
    pos = data.index(b"record", off, end)
    data[pos] ^= 0x20
    log.write_bytes(bytes(data))
    r = verify(log, audit_key.public_key())
    assert not r.ok and r.damage is not None
    assert (r.damage.kind, r.damage.seq, r.damage.offset) == ("edited", entry.seq, off)


def test_rewritten_record_with_fixed_hash_is_named(log: Path, audit_key: Ed25519PrivateKey) -> None:
    frames = _frames(log)
    i = _record_index(frames, 20)
    off, end, entry = frames[i]
    assert isinstance(entry.body, Record)
    forged = al.Entry(entry.seq, entry.prev, msgspec.structs.replace(entry.body, message="nothing happened"))
    _splice(log, off, end, _frame(forged))
    r = verify(log, audit_key.public_key())
    assert r.damage is not None and (r.damage.kind, r.damage.seq) == ("edited", entry.seq)


def test_rewritten_chain_is_caught_by_the_checkpoint(log: Path, audit_key: Ed25519PrivateKey) -> None:
    frames = _frames(log)
    i = _record_index(frames, 20)
    target = frames[i][2].seq
    data = log.read_bytes()
    # Forge the record and re-link every later entry up to and including the next checkpoint.
    prev = frames[i][2].prev
    out = bytearray(data[: frames[i][0]])
    j = i
    while True:
        e = frames[j][2]
        body = e.body
        if j == i:
            assert isinstance(body, Record)
            body = msgspec.structs.replace(body, severity="debug")
        fr = _frame(al.Entry(e.seq, prev, body))
        prev = fr[-32:]
        out += fr
        if isinstance(e.body, Checkpoint):
            break
        j += 1
    out += data[frames[j][1]:]
    log.write_bytes(bytes(out))
    r = verify(log, audit_key.public_key(), head=None)
    d = r.damage
    assert d is not None and d.kind == "edited" and d.seq is not None and d.last_seq is not None
    assert d.seq <= target <= d.last_seq and d.last_seq - d.seq < 10


def test_deleted_record(log: Path, audit_key: Ed25519PrivateKey) -> None:
    frames = _frames(log)
    i = _record_index(frames, 30)
    _splice(log, frames[i][0], frames[i][1], b"")
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and (d.kind, d.seq, d.index) == ("deleted", frames[i][2].seq, i)


def test_swapped_records_are_reordered(log: Path, audit_key: Ed25519PrivateKey) -> None:
    frames = _frames(log)
    i = _record_index(frames, 12)
    data = log.read_bytes()
    a = data[frames[i][0] : frames[i][1]]
    b = data[frames[i + 1][0] : frames[i + 1][1]]
    _splice(log, frames[i][0], frames[i + 1][1], b + a)
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and (d.kind, d.seq, d.index) == ("reordered", frames[i][2].seq, i)


def test_duplicated_record_is_reordered(log: Path, audit_key: Ed25519PrivateKey) -> None:
    frames = _frames(log)
    i = _record_index(frames, 12)
    data = log.read_bytes()
    _splice(log, frames[i][1], frames[i][1], data[frames[i][0] : frames[i][1]])
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and (d.kind, d.seq, d.index) == ("reordered", frames[i][2].seq + 1, i + 1)


@pytest.mark.parametrize("at_a_seal", [True, False], ids=["after-a-seal", "mid-commit"])
def test_truncation_at_a_frame_boundary_is_detected_by_the_head(
    log: Path, audit_key: Ed25519PrivateKey, at_a_seal: bool
) -> None:
    frames = _frames(log)
    cut = len(frames) - 8
    if at_a_seal:  # the hardest cut: what remains ends with a valid seal
        cut = max(i for i in range(cut) if isinstance(frames[i][2].body, Checkpoint)) + 1
    log.write_bytes(log.read_bytes()[: frames[cut][0]])
    r = verify(log, audit_key.public_key())
    assert r.damage is not None and (r.damage.kind, r.damage.seq) == ("truncated", frames[cut][2].seq)
    # Without the head, a cut right after a seal cannot be told from a log that simply ends there.
    r2 = verify(log, audit_key.public_key(), head=None)
    assert r2.ok if at_a_seal else (r2.damage is not None and r2.damage.kind == "unsealed")


def test_truncating_a_sealed_checkpoint_mid_frame_is_truncation_not_a_crash(
    log: Path, audit_key: Ed25519PrivateKey
) -> None:
    log.write_bytes(log.read_bytes()[:-5])  # the final frame is the closing checkpoint, fsynced and in the head
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and d.kind == "truncated"


def test_missing_head_is_an_error(log: Path, audit_key: Ed25519PrivateKey) -> None:
    al.head_path_for(log).unlink()
    r = verify(log, audit_key.public_key())
    assert not r.ok and r.damage is not None and r.damage.kind == "missing-head"
    assert verify(log, audit_key.public_key(), head=None).ok  # only when the caller explicitly skips it
    with pytest.raises(AuditLogDamaged, match="missing-head"):
        AuditWriter(log, audit_key)  # the writer does not start a new head over a hidden cut either


def test_forged_head_is_rejected(log: Path, audit_key: Ed25519PrivateKey) -> None:
    al.head_path_for(log).write_bytes(b"\x93garbage")
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and d.kind == "bad-head"


def test_wrong_key_is_named(log: Path) -> None:
    d = verify(log, Ed25519PrivateKey.generate().public_key()).damage
    assert d is not None and d.kind == "wrong-key" and "signed by key" in d.message


def test_not_a_log(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    p = tmp_path / "x.log"
    p.write_bytes(b"hello world\n")
    d = verify(p, audit_key.public_key()).damage
    assert d is not None and d.kind == "bad-header"


def test_appended_garbage_is_not_mistaken_for_a_torn_tail(log: Path, audit_key: Ed25519PrivateKey) -> None:
    size = log.stat().st_size
    log.write_bytes(log.read_bytes() + b"\xff\xff\xff\xffjunk")
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and d.kind == "edited" and d.offset == size
    with pytest.raises(AuditLogDamaged):
        AuditWriter(log, audit_key)


def _crashed_log(path: Path, key: Ed25519PrivateKey, *, mid_commit: bool = False) -> tuple[int, int]:
    """A log whose writer 'crashed' after a commit (sealed, not pinned): (its first seq, its seal's seq).

    ``mid_commit``: the crash came while that commit was written, so the head is the one from before it
    (the tip slot is updated only after the commit's flush); the caller then damages the commit."""
    w = AuditWriter(path, key, checkpoint_every=10**9, checkpoint_interval=1e9)
    head_before = al.head_path_for(path).read_bytes()
    first = w.next_seq
    for i in range(5):
        w.append(_rec(i))
    durable = w.commit()
    al.os.close(w._fd)  # abandon the writer without close(): as after kill -9
    w._close_fds = lambda: None  # type: ignore[method-assign]
    w._closed = True
    if mid_commit:
        al.head_path_for(path).write_bytes(head_before)
    return first, durable


@pytest.mark.parametrize("zero_filled", [False, True], ids=["cut-at-eof", "over-zero-fill"])
@pytest.mark.parametrize("cut", [3, 4, 10, 40, -33, -1])
def test_torn_tail_is_reported_then_repaired_with_a_record(
    tmp_path: Path, audit_key: Ed25519PrivateKey, cut: int, zero_filled: bool
) -> None:
    # Zeroing the cut-off bytes of the seal tears nothing when they already were zeros (a signature's last
    # byte is 0x00 one time in 256): such a log is made again, so that every case damages the file.
    for attempt in range(32):
        log = tmp_path / f"try{attempt}" / "audit.log"
        log.parent.mkdir()
        first, durable = _crashed_log(log, audit_key, mid_commit=True)
        last_off, last_end, last = _frames(log)[-1]
        keep = last_off + cut if cut > 0 else last_end + cut
        data = log.read_bytes()
        if not zero_filled or any(data[keep:last_end]):
            break
    assert any(data[keep:last_end]) or not zero_filled, "32 logs in a row ended on zeros"
    assert last.seq == durable and isinstance(last.body, Checkpoint)  # every commit ends with its seal
    start = next(off for off, _, e in _frames(log) if e.seq == first)  # where the commit began
    if cut == 3:  # make the third length byte non-zero so that the three bytes kept are not all zero
        assert data[last_off:last_off + 2] == b"\x00\x00"
        data = data[:last_off + 2] + b"\x01" + data[last_off + 3 :]
    # A crash mid-commit leaves a prefix of the batch: at the end of the file (a log that grows) or
    # over the zeros the writer wrote ahead (the file keeps its size).
    log.write_bytes(data[:keep] + (bytes(len(data) - keep) if zero_filled else b""))
    r = verify(log, audit_key.public_key())
    # The whole unfinished commit is the torn tail: its records were never acknowledged or sealed.
    assert r.damage is not None and (r.damage.kind, r.damage.seq, r.damage.offset) == ("torn-tail", first, start)
    assert r.last_seq == first - 1
    w = AuditWriter(log, audit_key)
    # Bytes written, not counting zeros the cut happens to end on (the seal's random signature may end so).
    written = len(data[:keep].rstrip(b"\x00")) - start
    assert w.recovery.torn_bytes == written and w.recovery.next_seq == first
    w.close()
    assert verify(log, audit_key.public_key()).ok
    entries, _ = read_entries(log)
    notes = [e for e in entries if isinstance(e.body, Record) and e.body.event == "audit.torn-tail-truncated"]
    assert len(notes) == 1 and notes[0].seq == first and notes[0].body.detail["bytes"] == written
    assert notes[0].body.detail["entries"] == durable - first  # the five records, not their cut seal


@pytest.mark.parametrize("zeros", [0, 2, 512, 3 << 20])
def test_zero_filled_tail_is_space_not_yet_written(
    tmp_path: Path, audit_key: Ed25519PrivateKey, zeros: int
) -> None:
    """Zeros after the last frame are the space the writer fills ahead, or a crash that wrote nothing
    but zero bytes (the first bytes of every length prefix): never records, nothing to repair."""
    log = tmp_path / "audit.log"
    _, durable = _crashed_log(log, audit_key)
    last_end = _frames(log)[-1][1]
    log.write_bytes(log.read_bytes()[:last_end] + bytes(zeros))
    r = verify(log, audit_key.public_key())
    assert r.ok and r.last_seq == durable
    w = AuditWriter(log, audit_key)
    assert w.recovery.torn_bytes == 0 and w.recovery.next_seq == durable + 1
    w.append(_rec(99))
    w.close()
    assert log.stat().st_size == _frames(log)[-1][1]  # a closed log ends at its last frame
    entries, damage = read_entries(log)
    assert damage is None and [e.body.event for e in entries if isinstance(e.body, Record)][-1] == "test.event"
    assert not any(isinstance(e.body, Record) and e.body.event == "audit.torn-tail-truncated" for e in entries)
    assert verify(log, audit_key.public_key()).ok


def test_edited_final_record_before_the_zero_fill_is_edited_not_torn(
    tmp_path: Path, audit_key: Ed25519PrivateKey
) -> None:
    log = tmp_path / "audit.log"
    _, durable = _crashed_log(log, audit_key)
    off, end, _ = _frames(log)[-1]
    data = bytearray(log.read_bytes())
    assert len(data) > end  # the writer left zero-filled space after the final frame
    data[off + 20] ^= 0x20  # inside the final seal's payload
    data[end - 1] = 0  # even when the hash's last byte reads as zero fill
    log.write_bytes(bytes(data))
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and (d.kind, d.seq, d.offset) == ("edited", durable, off)
    with pytest.raises(AuditLogDamaged):
        AuditWriter(log, audit_key)


def test_zeroed_sealed_records_are_truncation(log: Path, audit_key: Ed25519PrivateKey) -> None:
    """Overwriting the end of the log with zeros is not "space not yet written" when the head proves
    those records were written."""
    frames = _frames(log)
    cut = len(frames) - 8
    data = log.read_bytes()
    log.write_bytes(data[: frames[cut][0]] + bytes(len(data) - frames[cut][0]))
    r = verify(log, audit_key.public_key())
    assert r.damage is not None and (r.damage.kind, r.damage.seq) == ("truncated", frames[cut][2].seq)
    with pytest.raises(AuditLogDamaged, match="truncated"):
        AuditWriter(log, audit_key)


def test_zeroed_middle_is_edited(log: Path, audit_key: Ed25519PrivateKey) -> None:
    frames = _frames(log)
    i = _record_index(frames, 20)
    off, end, entry = frames[i]
    data = bytearray(log.read_bytes())
    data[off:end] = bytes(end - off)
    log.write_bytes(bytes(data))
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and (d.kind, d.seq, d.offset) == ("edited", entry.seq, off)


def test_crash_between_cut_and_its_record_still_logs_the_cut(
    tmp_path: Path, audit_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "audit.log"
    first, _ = _crashed_log(log, audit_key, mid_commit=True)
    log.write_bytes(log.read_bytes()[: _frames(log)[-1][1] - 7])

    def crash(self: AuditWriter, *a: object, **k: object) -> int:
        raise KeyboardInterrupt("simulated crash after the cut")

    with monkeypatch.context() as m:
        m.setattr(AuditWriter, "commit", crash)
        with pytest.raises(KeyboardInterrupt):
            AuditWriter(log, audit_key)
    assert verify(log, audit_key.public_key()).ok  # the tail is already gone ...
    AuditWriter(log, audit_key).close()  # ... and the next start logs that it was cut
    entries, _ = read_entries(log)
    notes = [e for e in entries if isinstance(e.body, Record) and e.body.event == "audit.torn-tail-truncated"]
    assert [n.seq for n in notes] == [first]


def test_emptied_log_with_head_is_refused(log: Path, audit_key: Ed25519PrivateKey) -> None:
    log.write_bytes(b"")
    with pytest.raises(AuditLogDamaged, match="truncated"):
        AuditWriter(log, audit_key)


def test_group_commit_acknowledges_only_after_commit(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    w = AuditWriter(tmp_path / "a.log", audit_key, max_batch=3, max_delay=0.010)
    before = w.durable_seq
    s1 = w.append(_rec(1), now=100.0)
    assert w.durable_seq == before and w.pending == 1
    assert w.deadline == pytest.approx(100.010)
    assert not w.due(100.005) and w.due(100.010)
    w.append(_rec(2), now=100.001)
    w.append(_rec(3), now=100.002)
    assert w.due(100.002)  # batch full
    assert w.commit() >= s1 + 2 and w.pending == 0 and w.deadline is None
    w.close()


def test_bad_records_are_refused(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    w = AuditWriter(tmp_path / "a.log", audit_key)
    with pytest.raises(AuditError, match="exceeds"):
        w.append(Record(time=0.0, partition="p", event="e", message="x" * 70_000))
    with pytest.raises(AuditError, match="expected an audit Record"):
        w.append({"event": "x"})  # type: ignore[arg-type]
    w.close()
    with pytest.raises(AuditError, match="closed"):
        w.append(_rec(1))
    assert verify(tmp_path / "a.log", audit_key.public_key()).ok


def test_one_writer_per_log(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    w = AuditWriter(tmp_path / "a.log", audit_key)
    with pytest.raises(AuditError, match="another writer"):
        AuditWriter(tmp_path / "a.log", audit_key)
    w.close()
