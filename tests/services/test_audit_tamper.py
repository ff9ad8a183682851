"""The tamperings a reviewer found undetected, and the guarantee that closes them.

Every commit is sealed, so nothing acknowledged is ever outside a signature; the head names the latest
seal, so a cut is seen; the head's durable slot follows pinned seals, so an older head is seen; an anchor
kept off the device catches a rollback of log and head together."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.cli import cli
from septum.services import audit_log as al
from septum.services.audit_anchor import Anchor, AnchorError, parse_anchor
from septum.services.audit_log import AuditLogDamaged, AuditWriter, Checkpoint, Record, read_entries, verify


def _rec(i: int, event: str = "test.event") -> Record:
    return Record(time=1_700_000_000.0 + i, partition="pump", event=event, message=f"record {i}", detail={"i": i})


def _write(path: Path, key: Ed25519PrivateKey, commits: int, *, start: int = 0, pin_every: int = 10**9,
           close: bool = True) -> AuditWriter:
    w = AuditWriter(path, key, checkpoint_every=pin_every, checkpoint_interval=1e9)
    for c in range(commits):
        for i in range(3):
            w.append(_rec(start + c * 3 + i))
        w.commit()
    if close:
        w.close()
    return w


def _frames(path: Path) -> list[tuple[int, int, al.Entry, bytes]]:
    """(offset, end, entry, frame hash) of every frame."""
    out = []
    for f in al._frames(path.read_bytes(), len(al.MAGIC)):
        assert isinstance(f, al._Frame)
        out.append((f.offset, f.end, msgspec.msgpack.decode(f.payload, type=al.Entry), f.digest))
    return out


def _frame(entry: al.Entry) -> bytes:
    payload = msgspec.msgpack.encode(entry)
    return len(payload).to_bytes(4, "big") + payload + hashlib.sha256(payload).digest()


def _forge_tail(path: Path, n: int) -> list[Record]:
    """Append ``n`` forged records after the last frame, chained correctly (no key needed for that)."""
    frames = _frames(path)
    _, end, last, prev = frames[-1]
    forged = [_rec(900 + i, "forged.event") for i in range(n)]
    out = b""
    for i, rec in enumerate(forged):
        fr = _frame(al.Entry(last.seq + 1 + i, prev, rec))
        prev = fr[-32:]
        out += fr
    path.write_bytes(path.read_bytes()[:end] + out)
    return forged


def _seal_ends(path: Path) -> list[int]:
    return [end for _, end, e, _ in _frames(path) if isinstance(e.body, Checkpoint)]


# ---------------------------------------------------------------------------------------------- forged tail


@pytest.mark.parametrize("closed", [True, False], ids=["closed-log", "live-log"])
def test_forged_rechained_tail_after_the_last_seal_fails(tmp_path: Path, audit_key: Ed25519PrivateKey,
                                                         closed: bool) -> None:
    log = tmp_path / "audit.log"
    w = _write(log, audit_key, 4, close=closed)
    if not closed:
        w._close_fds()
        w._closed = True
    assert verify(log, audit_key.public_key()).ok
    last = _frames(log)[-1][2].seq
    _forge_tail(log, 3)
    r = verify(log, audit_key.public_key())
    assert not r.ok and r.damage is not None
    assert (r.damage.kind, r.damage.seq, r.damage.last_seq) == ("unsealed", last + 1, last + 3)
    # Only an explicit choice of the operator accepts it, and then as a warning that nothing vouches for it.
    r2 = verify(log, audit_key.public_key(), allow_unsealed_tail=True)
    assert r2.ok and r2.unsealed == 3 and any("NOT authenticated" in n for n in r2.notes)


def test_a_restart_never_seals_a_forged_tail(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    """The old writer sealed whatever followed its last checkpoint at the next start: a forged tail
    became signed. Now the unsealed tail is cut, and the cut is logged."""
    log = tmp_path / "audit.log"
    _write(log, audit_key, 3)
    _forge_tail(log, 2)
    w = AuditWriter(log, audit_key)
    assert w.recovery.torn_bytes > 0
    w.close()
    assert verify(log, audit_key.public_key()).ok
    entries, _ = read_entries(log)
    events = [e.body.event for e in entries if isinstance(e.body, Record)]
    assert "forged.event" not in events
    cut = [e.body for e in entries if isinstance(e.body, Record) and e.body.event == "audit.torn-tail-truncated"]
    assert len(cut) == 1 and cut[0].severity == "warning" and cut[0].detail["entries"] == 2


def test_forged_tail_with_a_made_up_seal_is_edited(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    _write(log, audit_key, 3)
    _forge_tail(log, 2)
    _, end, last, prev = _frames(log)[-1]
    kid = al.key_id(audit_key.public_key())
    seal = Checkpoint(time=1.0, key_id=kid, signature=bytes(64), pinned=False)
    log.write_bytes(log.read_bytes()[:end] + _frame(al.Entry(last.seq + 1, prev, seal)))
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and d.kind == "edited" and d.last_seq == last.seq
    with pytest.raises(AuditLogDamaged):
        AuditWriter(log, audit_key)


def test_replacing_the_last_commit_with_forged_records_is_truncation(
    tmp_path: Path, audit_key: Ed25519PrivateKey
) -> None:
    """Cut the last sealed commit and put forged records in its place: the head names the lost seal."""
    log = tmp_path / "audit.log"
    w = _write(log, audit_key, 5, close=False)
    w._close_fds()
    w._closed = True
    ends = _seal_ends(log)
    log.write_bytes(log.read_bytes()[: ends[-2]])
    _forge_tail(log, 3)
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and d.kind == "truncated"
    with pytest.raises(AuditLogDamaged, match="differs from its head"):  # the head's seal is not there
        AuditWriter(log, audit_key)


def test_every_acknowledged_record_is_sealed_at_once(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    """No window: after each commit, before any close or pin, the log verifies with nothing unsealed."""
    log = tmp_path / "audit.log"
    w = AuditWriter(log, audit_key, checkpoint_every=10**9, checkpoint_interval=1e9)
    for c in range(5):
        w.append(_rec(c))
        durable = w.commit()
        r = verify(log, audit_key.public_key())
        assert r.ok and r.unsealed == 0 and r.last_checkpoint_seq == durable and r.head_seq == durable
    w.close()


def test_each_part_of_a_large_commit_is_sealed(
    tmp_path: Path, audit_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the parts of a commit larger than MAX_COMMIT_BYTES leaves only sealed records."""
    log = tmp_path / "audit.log"
    w = AuditWriter(log, audit_key, checkpoint_every=10**9, checkpoint_interval=1e9, max_batch=100_000)
    real = al.os.pwritev
    calls = []

    def pwritev(fd: int, parts: list[memoryview], offset: int) -> int:
        calls.append(offset)
        if len(calls) == 2:
            raise KeyboardInterrupt("crash before the second part is written")
        return real(fd, parts, offset)

    monkeypatch.setattr(al.os, "pwritev", pwritev)
    for i in range(8000):
        w.append(Record(time=1.0, partition="p", event="big", message="x" * 200, detail={"i": i}))
    with pytest.raises(KeyboardInterrupt):
        w.commit()
    monkeypatch.setattr(al.os, "pwritev", real)
    w._close_fds()
    r = verify(log, audit_key.public_key())
    assert r.ok and r.unsealed == 0 and r.records > 3000, r.damage


# ---------------------------------------------------------------------------------------------- the head


def test_deleted_head_hiding_a_cut_is_an_error(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    _write(log, audit_key, 6)
    log.write_bytes(log.read_bytes()[: _seal_ends(log)[3]])  # cut at a seal: the log alone looks whole
    al.head_path_for(log).unlink()
    assert verify(log, audit_key.public_key(), head=None).ok  # what the old verifier saw (with a note)
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and d.kind == "missing-head"
    with pytest.raises(AuditLogDamaged, match="missing-head"):
        AuditWriter(log, audit_key)


def test_older_head_is_an_error(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    w = _write(log, audit_key, 3, pin_every=6, close=False)
    old_head = al.head_path_for(log).read_bytes()
    for c in range(6):  # at least two more pinned seals, with commits after them
        w.append(_rec(100 + c))
        w.commit()
    w.close()
    cut = _seal_ends(log)[-3]  # drop the last commits too, as someone hiding them would
    log.write_bytes(log.read_bytes()[:cut])
    al.head_path_for(log).write_bytes(old_head)
    r = verify(log, audit_key.public_key())
    assert r.damage is not None and r.damage.kind == "old-head", r.damage
    assert r.damage.seq == r.pinned_seq or r.damage.seq < r.pinned_seq
    with pytest.raises(AuditLogDamaged, match="old-head"):
        AuditWriter(log, audit_key)


def test_clearing_the_pinned_flag_breaks_the_seal(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    """The pinned flag is signed: an attacker cannot unmark pinned seals to make an old head acceptable."""
    log = tmp_path / "audit.log"
    _write(log, audit_key, 4, pin_every=3)
    frames = _frames(log)
    i = next(i for i, (_, _, e, _) in enumerate(frames[:-1]) if isinstance(e.body, Checkpoint) and e.body.pinned)
    data = log.read_bytes()
    prev = frames[i][2].prev
    out = bytearray(data[: frames[i][0]])
    for j in range(i, len(frames)):  # rewrite the flag and re-link everything after it
        e = frames[j][2]
        body = msgspec.structs.replace(e.body, pinned=False) if j == i else e.body
        fr = _frame(al.Entry(e.seq, prev, body))
        prev = fr[-32:]
        out += fr
    log.write_bytes(bytes(out))
    d = verify(log, audit_key.public_key(), head=None).damage
    assert d is not None and d.kind == "edited" and d.last_seq == frames[i][2].seq - 1


def test_a_torn_tip_slot_falls_back_to_the_durable_slot(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    _write(log, audit_key, 3)
    head = bytearray(al.head_path_for(log).read_bytes())
    head[al.HEAD_SLOT + 10] ^= 0xFF  # a power cut while the tip slot was written
    al.head_path_for(log).write_bytes(bytes(head))
    assert verify(log, audit_key.public_key()).ok
    AuditWriter(log, audit_key).close()
    assert verify(log, audit_key.public_key()).ok


def test_a_kill_between_the_log_flush_and_the_head_update_verifies(
    tmp_path: Path, audit_key: Ed25519PrivateKey
) -> None:
    """The crash window the older-head rule must allow: the last pinned commit is on disk, its head is not."""
    log = tmp_path / "audit.log"
    w = _write(log, audit_key, 2, close=False)
    head_before = al.head_path_for(log).read_bytes()
    w.append(_rec(50))
    w.commit(force_checkpoint=True)
    w._close_fds()
    w._closed = True
    al.head_path_for(log).write_bytes(head_before)
    assert verify(log, audit_key.public_key()).ok
    w2 = AuditWriter(log, audit_key)
    assert w2.recovery.torn_bytes == 0
    w2.close()
    assert verify(log, audit_key.public_key()).ok


# ---------------------------------------------------------------------------------------------- anchors


def _anchor_of(log: Path, key: Ed25519PrivateKey) -> Anchor:
    r = verify(log, key.public_key())
    assert r.ok
    return Anchor(r.last_checkpoint_seq, r.last_checkpoint_digest)


def test_rollback_of_log_and_head_together_is_caught_by_an_anchor(
    tmp_path: Path, audit_key: Ed25519PrivateKey
) -> None:
    log, saved = tmp_path / "audit.log", tmp_path / "saved"
    saved.mkdir()
    _write(log, audit_key, 3)
    shutil.copy(log, saved / "audit.log")
    shutil.copy(al.head_path_for(log), saved / "audit.log.head")
    early = _anchor_of(log, audit_key)
    w = AuditWriter(log, audit_key)
    w.append(_rec(77, "pump.bolus"))  # the event someone wants gone
    w.close()
    anchor = _anchor_of(log, audit_key)
    shutil.copy(saved / "audit.log", log)
    shutil.copy(saved / "audit.log.head", al.head_path_for(log))
    assert verify(log, audit_key.public_key()).ok  # log and head agree: nothing on the device can tell
    r = verify(log, audit_key.public_key(), anchors=[early])
    assert r.ok and r.anchors_checked == 1  # an anchor from before the rollback point still holds
    d = verify(log, audit_key.public_key(), anchors=[early, anchor]).damage
    assert d is not None and (d.kind, d.seq) == ("rolled-back", anchor.seq)


def test_an_anchor_catches_a_log_rewritten_from_the_anchored_seal(
    tmp_path: Path, audit_key: Ed25519PrivateKey
) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    _write(a, audit_key, 4)
    anchor = _anchor_of(a, audit_key)
    _write(b, audit_key, 6, start=500)  # same key, other records: as long, but not the anchored log
    d = verify(b, audit_key.public_key(), anchors=[anchor]).damage
    assert d is not None and d.kind == "rolled-back" and "not the seal" in d.message


def test_anchor_files_are_checked() -> None:
    good = Anchor(12, bytes(range(32)), b"k" * 8, 1.5, 9)
    assert parse_anchor(good.to_json()) == good
    for bad in ("", "[]", '{"format": "x"}', '{"format": "septum-audit-anchor-1", "seq": -1, "digest": ""}',
                '{"format": "septum-audit-anchor-1", "seq": 3, "digest": "zz"}',
                '{"format": "septum-audit-anchor-1", "seq": 3, "digest": "00"}'):
        with pytest.raises(AnchorError):
            parse_anchor(bad)


def test_a_format_1_log_is_named(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    p = tmp_path / "old.log"
    p.write_bytes(b"SEPTAUD\x01" + bytes(64))
    d = verify(p, audit_key.public_key()).damage
    assert d is not None and d.kind == "bad-header" and "format-1" in d.message


# ---------------------------------------------------------------------------------------------- the CLI


def _cli(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def pub(tmp_path: Path, audit_key: Ed25519PrivateKey) -> str:
    path = tmp_path / "audit.pub"
    path.write_bytes(audit_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(path)


def test_cli_exit_codes_for_each_tampering(tmp_path: Path, audit_key: Ed25519PrivateKey, pub: str) -> None:
    log = tmp_path / "audit.log"
    _write(log, audit_key, 3)
    anchor = tmp_path / "anchor.json"
    code, _, err = _cli("audit", "anchor", str(log), "--key", pub, "-o", str(anchor))
    assert code == 0, err
    code, out, _ = _cli("audit", "verify", str(log), "--key", pub, "--anchor", str(anchor))
    assert code == 0 and "1 anchor(s) found" in out
    saved = log.read_bytes(), al.head_path_for(log).read_bytes()

    _forge_tail(log, 2)
    code, _, err = _cli("audit", "verify", str(log), "--key", pub)
    assert code == 1 and "unsealed" in err
    code, _, err = _cli("audit", "anchor", str(log), "--key", pub)
    assert code == 1 and "not anchored" in err  # never anchor a log that does not verify
    code, out, err = _cli("audit", "verify", str(log), "--key", pub, "--allow-unsealed-tail")
    assert code == 0 and "NOT authenticated" in err

    log.write_bytes(saved[0])
    al.head_path_for(log).unlink()
    code, _, err = _cli("audit", "verify", str(log), "--key", pub)
    assert code == 1 and "missing-head" in err

    # Roll back: the log and head as they were at a seal before the anchored one.
    log.write_bytes(saved[0][: _seal_ends(log)[-2]])
    w = _frames(log)[-1]
    al.head_path_for(log).write_bytes(al.encode_head(al.Head(seq=w[2].seq, offset=w[0], digest=w[3],
                                                             entry=log.read_bytes()[w[0] + 4 : w[1] - 32])) * 2)
    code, _, err = _cli("audit", "verify", str(log), "--key", pub)
    assert code == 0, err  # a head rebuilt from the log's own bytes: only the anchor can tell
    code, _, err = _cli("audit", "verify", str(log), "--key", pub, "--anchor", str(anchor))
    assert code == 1 and "rolled-back" in err

    anchor.write_text("not an anchor")
    code, _, err = _cli("audit", "verify", str(log), "--key", pub, "--anchor", str(anchor))
    assert code == 2 and "not an audit anchor" in err and "Traceback" not in err
    code, _, err = _cli("audit", "verify", str(log), "--key", pub, "--anchor", str(tmp_path / "nope.json"))
    assert code == 2 and "no such anchor file" in err


def test_show_and_export_never_present_a_forged_tail(tmp_path: Path, audit_key: Ed25519PrivateKey, pub: str) -> None:
    log = tmp_path / "audit.log"
    _write(log, audit_key, 2)
    _forge_tail(log, 2)
    entries, damage = read_entries(log)
    assert damage is not None and damage.kind == "unsealed"
    assert not any(isinstance(e.body, Record) and e.body.event == "forged.event" for e in entries)
    code, out, err = _cli("audit", "export", str(log))
    assert code == 1 and "unsealed" in err and "forged.event" not in out and "test.event" in out


def test_the_sealer_signs_exactly_as_openssl(audit_key: Ed25519PrivateKey) -> None:
    """libsodium seals what OpenSSL verifies: the same deterministic Ed25519 signature, and a wrong one fails."""
    sealer = al.Sealer(audit_key)
    for msg in (b"", b"seal", al.checkpoint_message(7, bytes(32), 1.5, b"k" * 8, True)):
        assert sealer.sign(msg) == audit_key.sign(msg)
    assert sealer.sign(b"a") != Ed25519PrivateKey.generate().sign(b"a")


def test_a_head_copy_kept_elsewhere_may_be_older(tmp_path: Path, audit_key: Ed25519PrivateKey) -> None:
    log, copy = tmp_path / "audit.log", tmp_path / "kept.head"
    w = _write(log, audit_key, 3, pin_every=3, close=False)
    shutil.copy(al.head_path_for(log), copy)
    for c in range(6):
        w.append(_rec(200 + c))
        w.commit()
    w.close()
    assert verify(log, audit_key.public_key(), head=copy).ok  # its seal is in the log: fine
    shutil.copy(copy, al.head_path_for(log))
    d = verify(log, audit_key.public_key()).damage  # the same bytes as LOG.head: rolled back
    assert d is not None and d.kind == "old-head"
    log.write_bytes(log.read_bytes()[: _seal_ends(log)[1]])
    d = verify(log, audit_key.public_key(), head=copy).damage  # and a cut before its seal is still seen
    assert d is not None and d.kind == "truncated"


def test_a_repair_cut_short_keeps_the_earlier_cut(
    tmp_path: Path, audit_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash in the commit that logs a cut, leaving a second torn tail: both cuts get their record."""
    log = tmp_path / "audit.log"
    _write(log, audit_key, 3)
    _forge_tail(log, 2)  # stands for the first unsealed tail a crash left

    def torn_commit(self: AuditWriter, *a: object, **k: object) -> int:
        # the repair commit is sealed and written, but the process dies before the seal's last bytes are
        self._seal(pinned=True)
        self._write_at(self._end, 0, len(self._buf) - 40)
        raise KeyboardInterrupt("killed while logging the cut")

    with monkeypatch.context() as m:
        m.setattr(AuditWriter, "commit", torn_commit)
        with pytest.raises(KeyboardInterrupt):
            AuditWriter(log, audit_key)
    d = verify(log, audit_key.public_key()).damage
    assert d is not None and d.kind == "torn-tail"
    AuditWriter(log, audit_key).close()
    assert verify(log, audit_key.public_key()).ok
    entries, _ = read_entries(log)
    cuts = [e.body.detail for e in entries
            if isinstance(e.body, Record) and e.body.event == "audit.torn-tail-truncated"]
    assert len(cuts) == 2 and cuts[0]["entries"] == 2 and cuts[1]["entries"] == 1, cuts
