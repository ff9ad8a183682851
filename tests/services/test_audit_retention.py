"""Retention per record class by compaction (septum.services.audit_retention): a compacted log verifies, says
what was compacted, keeps every record still within its class's retention, the writer continues it, and a
record tampered with after compaction -- in the chain or among the kept ones -- is still found."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.cli.services import audit
from septum.crypto.keys import private_pem
from septum.services import audit_log as al
from septum.services.audit_log import AuditWriter, Record, read_entries, verify
from septum.services.audit_retention import (
    RetentionError,
    RetentionPolicy,
    compact,
    compacted_message,
    open_compacted,
)

DAY = 86400.0
T0 = 1_700_000_000.0
POLICY = RetentionPolicy.from_dict({"classes": [
    {"name": "security", "retain_days": 100, "events": ["auth.*"]},
    {"name": "operational", "retain_days": 10, "events": ["operational"]},
    {"name": "diagnostic", "retain_days": 30, "events": ["*"]},
]})


def _rec(i: int, event: str, day: float) -> Record:
    return Record(time=T0 + day * DAY, partition="pump", event=event, message=f"record {i}", detail={"i": i})


def _build(path: Path, key: Ed25519PrivateKey, days: int = 50, per_day: int = 3) -> int:
    """One commit a day: two operational records and one auth record (a class kept longer)."""
    w = AuditWriter(path, key, checkpoint_every=10, checkpoint_interval=1e9)
    n = 0
    for d in range(days):
        for _ in range(per_day - 1):
            w.append(_rec(n, "operational", d))
            n += 1
        w.append(_rec(n, "auth.login", d))
        n += 1
        w.commit()
    w.close()
    return n


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _records(path: Path) -> list[tuple[int, Record]]:
    entries, damage = read_entries(path)
    assert damage is None, damage
    return [(e.seq, e.body) for e in entries if isinstance(e.body, Record)]


def test_compaction_removes_only_what_is_past_retention_and_verifies(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    _build(log, key)
    before = _records(log)
    now = T0 + 49 * DAY  # operational kept 10 days, auth 100 days: only operational records of days 0..39 go
    report = compact(log, key, POLICY, now)
    assert report.compacted and report.removed == {"operational": 2 * 40}, report
    result = verify(log, key.public_key())
    assert result.ok, result.damage
    assert result.compacted is not None and result.compacted.removed == {"operational": 80}
    assert any(n.startswith("compacted: seq 0..") for n in result.notes), result.notes
    after = _records(log)
    # nothing within its retention is gone, and nothing past it is left in the compacted prefix
    kept = {seq for seq, _ in after}
    for seq, rec in before:
        expired = POLICY.expired(rec, now)
        if seq <= result.compacted.cut_seq:
            assert (seq in kept) != expired, (seq, rec.event, rec.time)
        else:
            assert seq in kept
    assert all(rec == dict(before)[seq] for seq, rec in after)


def test_writer_continues_a_compacted_log_and_it_compacts_again(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    n = _build(log, key)
    last = verify(log, key.public_key()).last_seq
    compact(log, key, POLICY, T0 + 49 * DAY)
    w = AuditWriter(log, key, checkpoint_every=10, checkpoint_interval=1e9)
    assert w.recovery.next_seq == last + 1  # the chain's numbers go on
    w.append(_rec(n, "auth.login", 60))
    w.commit()
    w.close()
    assert verify(log, key.public_key()).ok
    second = compact(log, key, POLICY, T0 + 200 * DAY)  # now the auth records are past their 100 days too
    assert second.compacted and second.removed.get("security", 0) > 0
    result = verify(log, key.public_key())
    assert result.ok, result.damage
    assert result.compacted is not None and result.compacted.compactions == 2
    assert result.compacted.removed["operational"] >= 80


def _frames(path: Path) -> list[al._Frame]:
    return [f for f in al._frames(path.read_bytes(), len(al.MAGIC)) if isinstance(f, al._Frame)]


def _rewrite(path: Path, frame: al._Frame, entry: al.Entry) -> None:
    """Replace one frame by another entry with a correct frame hash (an attacker's careful edit)."""
    payload = msgspec.msgpack.encode(entry)
    data = path.read_bytes()
    new = len(payload).to_bytes(4, "big") + payload + hashlib.sha256(payload).digest()
    path.write_bytes(data[: frame.offset] + new + data[frame.end:])


def _compacted(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    log = tmp_path / "audit.log"
    _build(log, key)
    assert compact(log, key, POLICY, T0 + 49 * DAY).compacted
    return log


def test_tampered_chain_record_after_compaction_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = _compacted(tmp_path, key)
    opened = open_compacted(log.read_bytes(), key.public_key())
    assert opened is not None and not isinstance(opened, al.Damage)
    frames = _frames(log)
    target = next(f for f in frames if f.offset >= opened.offset and isinstance(
        al._decode(f).body, Record))  # type: ignore[union-attr]
    entry = al._decode(target)
    assert entry is not None and isinstance(entry.body, Record)
    _rewrite(log, target, al.Entry(entry.seq, entry.prev, msgspec.structs.replace(entry.body, message="forged")))
    result = verify(log, key.public_key())
    assert not result.ok and result.damage is not None and result.damage.kind == "edited"
    assert result.damage.seq == entry.seq


def test_tampered_kept_record_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = _compacted(tmp_path, key)
    opened = open_compacted(log.read_bytes(), key.public_key())
    assert opened is not None and not isinstance(opened, al.Damage)
    # a record the compaction kept (an auth record from day 0: its 100 days are not over)
    kept = next(f for f in _frames(log)[1:opened.index] if al._decode(f).body.event == "auth.login")  # type: ignore
    entry = al._decode(kept)
    assert entry is not None and isinstance(entry.body, Record) and entry.body.event == "auth.login"
    _rewrite(log, kept, al.Entry(entry.seq, entry.prev, msgspec.structs.replace(entry.body, principal="mallory")))
    result = verify(log, key.public_key())
    assert not result.ok and result.damage is not None and "kept by the compaction" in result.damage.message


def test_tampered_compaction_record_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = _compacted(tmp_path, key)
    first = _frames(log)[0]
    entry = al._decode(first)
    assert entry is not None and isinstance(entry.body, al.Compacted)
    # hide that security records were ever removed: a careful edit without the key fails the signature
    _rewrite(log, first, al.Entry(entry.seq, entry.prev, msgspec.structs.replace(entry.body, removed={})))
    result = verify(log, key.public_key())
    assert not result.ok and result.damage is not None and "signature" in result.damage.message
    # and one re-signed by another key is refused as such
    other = Ed25519PrivateKey.generate()
    forged = msgspec.structs.replace(entry.body, removed={}, signature=b"")
    forged = msgspec.structs.replace(forged, signature=other.sign(compacted_message(forged)))
    _rewrite(log, _frames(log)[0], al.Entry(entry.seq, entry.prev, forged))
    assert not verify(log, other.public_key()).ok


def test_deleted_kept_record_is_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = _compacted(tmp_path, key)
    kept = _frames(log)[2]
    data = log.read_bytes()
    log.write_bytes(data[: kept.offset] + data[kept.end:])
    assert not verify(log, key.public_key()).ok


def test_nothing_within_retention_is_removed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    _build(log, key)
    before = log.read_bytes()
    report = compact(log, key, POLICY, T0 + 5 * DAY)  # no operational record is 10 days old yet
    assert not report.compacted and log.read_bytes() == before


def test_damaged_log_is_not_compacted(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    _build(log, key)
    frames = _frames(log)
    entry = al._decode(frames[3])
    assert entry is not None and isinstance(entry.body, Record)
    _rewrite(log, frames[3], al.Entry(entry.seq, entry.prev, msgspec.structs.replace(entry.body, message="x")))
    with pytest.raises(RetentionError, match="does not verify"):
        compact(log, key, POLICY, T0 + 49 * DAY)


def test_running_writer_blocks_compaction(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    _build(log, key)
    w = AuditWriter(log, key, checkpoint_every=10, checkpoint_interval=1e9)
    try:
        with pytest.raises(RetentionError, match="stop it"):
            compact(log, key, POLICY, T0 + 49 * DAY)
    finally:
        w.close()


def test_policy_is_checked() -> None:
    with pytest.raises(RetentionError, match="last class"):
        RetentionPolicy.from_dict({"classes": [{"name": "a", "retain_days": 1, "events": ["x"]}]})
    with pytest.raises(RetentionError, match="retain_days"):
        RetentionPolicy.from_dict({"classes": [{"name": "a", "retain_days": -1, "events": ["*"]}]})
    default = RetentionPolicy.load(None)
    assert default.class_of("auth.denied").name == "security"
    assert default.class_of("keypad_refused").name == "security"
    assert default.class_of("operational").name == "operational"
    assert default.class_of("alarm_raised").name == "therapy"
    assert default.class_of("command").name == "therapy"
    assert default.class_of("records_lost").name == "diagnostic"


def test_cli_compact_then_verify(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    _build(log, key)
    (tmp_path / "audit.key").write_bytes(private_pem(key))
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "audit.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    policy = tmp_path / "policy.json"
    policy.write_text('{"classes": [{"name": "operational", "retain_days": 10, "events": ["operational"]},'
                      ' {"name": "other", "retain_days": 1000, "events": ["*"]}]}')
    r = CliRunner()
    out = r.invoke(audit, ["compact", str(log), "--signing-key", str(tmp_path / "audit.key"), "--policy",
                           str(policy), "--now", str(T0 + 49 * DAY), "--archive", str(tmp_path / "before.log")])
    assert out.exit_code == 0, out.output
    assert "removed 80 record(s)" in out.output and (tmp_path / "before.log").exists()
    out = r.invoke(audit, ["verify", str(log), "--key", str(tmp_path / "audit.pub")])
    assert out.exit_code == 0, out.output
    assert "compacted: seq 0.." in out.output and ": ok:" in out.output
    bad = r.invoke(audit, ["compact", str(log), "--signing-key", str(tmp_path / "audit.key"), "--policy",
                           str(tmp_path / "missing.json")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
