"""Power cuts over the zero-filled log: a commit overwrites zeros, and a power cut may keep any subset of
the commit's 512-byte sectors. Only the last commit can be hit (every earlier one was flushed before the
next began), so such damage is a torn tail; the same bytes anywhere else are still an edit."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.services import audit_log as al
from septum.services.audit_log import AuditLogDamaged, AuditWriter, Record, read_entries, verify

SECTOR = al.SECTOR


def _rec(i: int, pad: int = 0) -> Record:
    return Record(time=1_700_000_000.0 + i, partition="pump", event="test.event", message=f"record {i}" + "x" * pad,
                  detail={"i": i})


def _abandon(w: AuditWriter) -> None:
    """Drop the writer without close(), as after a power cut (no final pin, no truncation)."""
    w._close_fds()
    w._closed = True


@dataclass
class Cut:
    """The files before and after the last commit, and the range that commit wrote."""

    before: bytes
    after: bytes
    head_before: bytes
    start: int  # where the last commit began (end of the last acknowledged frame)
    end: int  # where it ended
    acked: list[Record]  # every record acknowledged before the last commit, in order
    first_unacked: int  # seq of the first entry of the last commit


def _prepare(path: Path, key: Ed25519PrivateKey, *, last_batch: int, reopen: bool, checkpoint: bool,
             pad: int = 0) -> Cut:
    w = AuditWriter(path, key, checkpoint_every=10**9, checkpoint_interval=1e9)
    acked = []
    for b in range(4):
        for i in range(6):
            r = _rec(b * 10 + i, pad)
            w.append(r)
            acked.append(r)
        w.commit(force_checkpoint=b == 1)  # one seal pinned by the head's durable slot, then unpinned ones
    if reopen:  # a closed log ends at its last frame, so the last commit also grows the file
        w.close()
        w = AuditWriter(path, key, checkpoint_every=10**9, checkpoint_interval=1e9)
    head = al.head_path_for(path)
    before, head_before, start = path.read_bytes(), head.read_bytes(), w._end
    first = w.next_seq
    for i in range(last_batch):
        w.append(_rec(1000 + i, pad))
    w.commit(force_checkpoint=checkpoint)
    end = w._end
    after = path.read_bytes()
    _abandon(w)
    assert after[:start] == before[:start] and not any(before[start:])
    return Cut(before, after, head_before, start, end, acked, first)


def _power_cut(path: Path, cut: Cut, kept: set[int], *, size_kept: bool = True) -> None:
    """Write the file a power cut could leave: the state before the last commit plus the sectors in
    ``kept`` (indexes counted from the sector holding ``cut.start``) from the state after it, and the head
    file from before (the head is written only after the commit's flush)."""
    first = cut.start // SECTOR
    size = len(cut.after) if size_kept else len(cut.before)
    data = bytearray(cut.before.ljust(size, b"\0")[:size])
    for k in kept:
        lo, hi = (first + k) * SECTOR, min((first + k + 1) * SECTOR, size)
        data[lo:hi] = cut.after[lo:hi]
    path.write_bytes(bytes(data))
    al.head_path_for(path).write_bytes(cut.head_before)


def _sectors(cut: Cut) -> int:
    return (cut.end - 1) // SECTOR - cut.start // SECTOR + 1


def _check_recovers(path: Path, key: Ed25519PrivateKey, cut: Cut) -> None:
    pub = key.public_key()
    r = verify(path, pub)
    if r.damage is not None:
        # Torn somewhere in the last commit, never before it: every acknowledged record checks out.
        # torn-tail, or "unsealed" when the sectors kept end exactly at a frame boundary
        assert r.damage.kind in ("torn-tail", "unsealed"), r.damage
        assert r.damage.seq is not None and r.damage.seq >= cut.first_unacked
        assert r.damage.offset >= cut.start
    w = AuditWriter(path, key)
    if r.damage is not None:
        assert w.recovery.torn_bytes > 0 and w.recovery.torn_offset == r.damage.offset
    w.append(_rec(5000))
    w.close()
    after = verify(path, pub)
    assert after.ok, after.damage
    entries, damage = read_entries(path)
    assert damage is None
    records = [e.body for e in entries if isinstance(e.body, Record)]
    assert records[1 : 1 + len(cut.acked)] == cut.acked  # after audit.log-created: every acknowledged record
    torn = [e for e in entries if isinstance(e.body, Record) and e.body.event == "audit.torn-tail-truncated"]
    assert len(torn) == (1 if r.damage is not None else 0)
    if torn:
        assert torn[0].body.severity == "warning" and torn[0].body.detail["offset"] == r.damage.offset
    assert records[-1] == _rec(5000)


@pytest.mark.parametrize("checkpoint", [False, True], ids=["unpinned-seal", "pinned-seal"])
def test_every_sector_subset_of_a_small_last_commit_recovers(
    tmp_path: Path, audit_key: Ed25519PrivateKey, checkpoint: bool
) -> None:
    probe = _prepare(tmp_path / "probe.log", audit_key, last_batch=9, reopen=False, checkpoint=checkpoint)
    n = _sectors(probe)
    assert 3 <= n <= 5
    torn = 0
    for kept in itertools.chain.from_iterable(itertools.combinations(range(n), k) for k in range(n + 1)):
        log = tmp_path / f"{checkpoint}-{'-'.join(map(str, kept))}.log"
        cut = _prepare(log, audit_key, last_batch=9, reopen=False, checkpoint=checkpoint)
        _power_cut(log, cut, set(kept))
        torn += verify(log, audit_key.public_key()).damage is not None
        _check_recovers(log, audit_key, cut)
    assert torn >= 2 ** n - 2  # all but "nothing kept" (all zeros: nothing to cut) and "all kept"


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("reopen", [False, True], ids=["over-zero-fill", "grows-the-file"])
def test_random_sector_subsets_of_a_large_last_commit_recover(
    tmp_path: Path, audit_key: Ed25519PrivateKey, seed: int, reopen: bool
) -> None:
    log = tmp_path / "audit.log"
    cut = _prepare(log, audit_key, last_batch=300, reopen=reopen, checkpoint=seed % 2 == 0, pad=seed * 7)
    rng = random.Random(seed)
    n = _sectors(cut)
    kept = {k for k in range(n) if rng.random() < 0.5}
    kept.discard(min(kept, default=0) if seed % 3 == 0 else -1)
    # When the commit grew the file, the power cut may also lose the new size (data=ordered: the size
    # is journalled only after the data), which cuts the file where it ended before.
    _power_cut(log, cut, kept, size_kept=not (reopen and seed % 2))
    _check_recovers(log, audit_key, cut)


def test_prefix_of_the_last_commit_cut_at_any_byte_recovers(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    probe = _prepare(tmp_path / "probe.log", audit_key, last_batch=4, reopen=False, checkpoint=False)
    for keep in range(probe.start + 1, probe.end, 37):
        log = tmp_path / f"p{keep}.log"
        cut = _prepare(log, audit_key, last_batch=4, reopen=False, checkpoint=False)
        log.write_bytes(cut.after[:keep] + bytes(len(cut.after) - keep))
        al.head_path_for(log).write_bytes(cut.head_before)
        _check_recovers(log, audit_key, cut)


# ---------------------------------------------------------------------------------------------- still damage


def _big_unsealed_log(path: Path, key: Ed25519PrivateKey) -> list[tuple[int, int, al.Entry]]:
    """A log with a pinned seal followed by more than MAX_COMMIT_BYTES of commits (sealed, not pinned),
    after a power cut that lost every update of the head's tip slot (so the head names the pinned seal)."""
    w = AuditWriter(path, key, checkpoint_every=10**9, checkpoint_interval=1e9)
    w.append(_rec(0))
    w.commit(force_checkpoint=True)
    pinned_head = al.head_path_for(path).read_bytes()
    i = 1
    while w._end < 2 * al.MAX_COMMIT_BYTES:
        for _ in range(200):
            w.append(_rec(i, 100))
            i += 1
        w.commit()
    _abandon(w)
    al.head_path_for(path).write_bytes(pinned_head)
    data = path.read_bytes()
    out = []
    for f in al._frames(data, len(al.MAGIC)):
        assert isinstance(f, al._Frame)
        entry = al._decode(f)
        assert entry is not None
        out.append((f.offset, f.end, entry))
    return out


def _frame_at(frames: list[tuple[int, int, al.Entry]], offset: int) -> tuple[int, int, al.Entry]:
    return next(f for f in frames if f[0] <= offset < f[1])


def _damage_sector(path: Path, sector_start: int, edit: bool) -> None:
    data = bytearray(path.read_bytes())
    if edit:
        data[sector_start + 100] ^= 0x01
    else:
        data[sector_start : sector_start + SECTOR] = bytes(SECTOR)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("edit", [False, True], ids=["zeroed", "edited"])
def test_damaged_sector_far_before_the_last_commit_is_edited(
    tmp_path: Path, audit_key: Ed25519PrivateKey, edit: bool
) -> None:
    log = tmp_path / "audit.log"
    frames = _big_unsealed_log(log, audit_key)
    end = frames[-1][1]
    at = (end - al.MAX_COMMIT_BYTES - 10 * SECTOR) // SECTOR * SECTOR  # followed by > MAX_COMMIT_BYTES of records
    _damage_sector(log, at, edit)
    off, _, entry = _frame_at(frames, at + (100 if edit else 0))
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and (d.kind, d.seq, d.offset) == ("edited", entry.seq, off)
    with pytest.raises(AuditLogDamaged, match="edited"):
        AuditWriter(log, audit_key)


def test_edited_sector_in_the_last_commit_is_still_edited(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    """A changed byte is not something a power cut leaves over zeros: no zero sector, no torn tail."""
    log = tmp_path / "audit.log"
    frames = _big_unsealed_log(log, audit_key)
    at = (frames[-1][1] - 3 * SECTOR) // SECTOR * SECTOR
    _damage_sector(log, at, edit=True)
    off, _, entry = _frame_at(frames, at + 100)
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and (d.kind, d.seq, d.offset) == ("edited", entry.seq, off)
    with pytest.raises(AuditLogDamaged, match="edited"):
        AuditWriter(log, audit_key)


def test_zeroed_checkpointed_record_is_never_torn(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    """A zeroed sector in records the head file pins is damage even within MAX_COMMIT_BYTES of the end."""
    log = tmp_path / "audit.log"
    cut = _prepare(log, audit_key, last_batch=5, reopen=False, checkpoint=False)
    log.write_bytes(cut.after)
    head = al.read_head(al.head_path_for(log))
    frames = [f for f in al._frames(cut.after, len(al.MAGIC)) if isinstance(f, al._Frame)]
    earlier = next(f.offset for f in frames if SECTOR <= f.offset < head.offset // SECTOR * SECTOR)
    for target in (head.offset, earlier):  # the pinned checkpoint itself, and a record before it
        log.write_bytes(cut.after)
        at = target // SECTOR * SECTOR
        _damage_sector(log, at, edit=False)
        first = next(f for f in frames if f.end > at)  # the first frame the zeroed sector touches
        d = verify(log, audit_key.public_key()).damage
        assert d is not None and d.kind == "edited" and d.offset == first.offset, d
        assert d.seq == first.index  # seq and frame index coincide in a whole log
        if target == head.offset:
            with pytest.raises(AuditLogDamaged):
                AuditWriter(log, audit_key)
        else:  # the writer checks from its head on (verify checks the rest): it must not cut anything
            w = AuditWriter(log, audit_key)
            assert w.recovery.torn_bytes == 0
            w.close()
            d2 = verify(log, audit_key.public_key()).damage
            assert d2 is not None and (d2.kind, d2.offset) == ("edited", first.offset)


def test_garbage_after_the_zero_fill_is_not_torn(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    """Non-zero bytes further than MAX_COMMIT_BYTES from the last frame were not written by one commit."""
    log = tmp_path / "audit.log"
    cut = _prepare(log, audit_key, last_batch=5, reopen=False, checkpoint=False)
    data = bytearray(cut.after[: cut.start].ljust(cut.start + al.MAX_COMMIT_BYTES + SECTOR, b"\0"))
    data[-1] = 1
    log.write_bytes(bytes(data))
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and (d.kind, d.offset) == ("edited", cut.start)
    with pytest.raises(AuditLogDamaged):
        AuditWriter(log, audit_key)


def test_a_batch_larger_than_the_commit_bound_is_written_in_flushed_parts(
    tmp_path: Path, audit_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "audit.log"
    w = AuditWriter(log, audit_key, checkpoint_every=10**9, checkpoint_interval=1e9, max_batch=100_000)
    writes: list[tuple[int, int]] = []
    real_pwritev, real_fdatasync = al.os.pwritev, al.os.fdatasync

    def pwritev(fd: int, parts: list[memoryview], offset: int) -> int:
        writes.append((offset, len(parts[0])))
        return real_pwritev(fd, parts, offset)

    syncs = []
    monkeypatch.setattr(al.os, "pwritev", pwritev)
    monkeypatch.setattr(al.os, "fdatasync", lambda fd: (syncs.append(fd), real_fdatasync(fd)))
    start = w._end
    for i in range(12_000):
        w.append(_rec(i, 200))
    w.commit()
    assert w._end - start > 2 * al.MAX_COMMIT_BYTES
    assert len(writes) == len(syncs) >= 3
    assert all(size <= al.MAX_COMMIT_BYTES for _, size in writes)
    assert [o for o, _ in writes] == list(itertools.accumulate([start] + [s for _, s in writes[:-1]]))
    w.close()
    assert verify(log, audit_key.public_key()).ok
