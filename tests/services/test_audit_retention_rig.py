"""Compaction of a real device's audit log: the pump runs (real services, its audit key sealed under the device
key), the log is copied off, compacted as of a date at which every class's retention is over, verifies, says
what it compacted, and the audit writer continues it; a record edited afterwards is found."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from septum.crypto.keys import parse_private_key
from septum.crypto.secrets_at_rest import unseal_folder
from septum.runtime.sandbox.probe import probe
from septum.services import audit_log as al
from septum.services.audit_retention import RetentionPolicy, compact, open_compacted

PUMP = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump"
if str(PUMP) not in sys.path:
    sys.path.insert(0, str(PUMP))

from septum_pump.rig import PumpRig  # noqa: E402

ELEVEN_YEARS = 11 * 365 * 86400.0  # past the longest built-in retention (therapy, 10 years)


@pytest.fixture(scope="module")
def device_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    if not probe().root:
        print("SKIP: the pump runs partitions under their own uids and needs root")
        pytest.skip("needs root (partitions run under their own uids)")
    out = tmp_path_factory.mktemp("device")
    with PumpRig(time_scale=60.0, services="real") as rig:
        assert rig.login()
        assert rig.program("normal-saline", rate=60, vtbi=200)[0]
        rig.start()
        rig.press("bolus")  # a refused keypad action: a security-class record
        time.sleep(2)
        dkey = rig.device_key
        audit_dir = rig.supervisor.data_dir("audit")
        rig.supervisor.stop()  # the device is stopped (its writer closed the log): the audit folder is copied off
        (out / "audit").mkdir()
        for f in audit_dir.iterdir():
            if f.is_file():
                (out / "audit" / f.name).write_bytes(f.read_bytes())
        (out / "device.key").write_bytes(Path(dkey.path).read_bytes())
        (out / "device.key").chmod(0o600)
    plain, problems = unseal_folder(out / "audit", dkey, "audit")
    assert not problems, problems
    key = parse_private_key(plain["audit.key"], "audit.key")
    yield out / "audit" / "audit.log", key


def test_cli_opens_the_sealed_audit_key(device_log: tuple[Path, Any]) -> None:
    from click.testing import CliRunner

    from septum.cli.services import audit

    log, _ = device_log
    folder = log.parent
    before = log.read_bytes()
    out = CliRunner().invoke(audit, ["compact", str(log), "--signing-key", str(folder / "audit.key.sealed"),
                                     "--device-key", str(folder.parent / "device.key"), "--dry-run",
                                     "--now", str(time.time() + ELEVEN_YEARS)])
    assert out.exit_code == 0, out.output
    assert "dry run: would have compacted seq 0.." in out.output and log.read_bytes() == before
    wrong = CliRunner().invoke(audit, ["compact", str(log), "--signing-key", str(folder / "audit.key.sealed"),
                                       "--dry-run"])  # a sealed key without the device key: refused, no traceback
    assert wrong.exit_code == 2 and "Traceback" not in wrong.output, wrong.output


def test_real_log_compacts_verifies_and_continues(device_log: tuple[Path, Any]) -> None:
    log, key = device_log
    before = al.verify(log, key.public_key())
    assert before.ok, before.damage
    report = compact(log, key, RetentionPolicy.load(None), time.time() + ELEVEN_YEARS)
    assert report.compacted and sum(report.removed.values()) > 0, report.message
    assert {"security", "therapy", "operational"} & set(report.removed), report.removed
    after = al.verify(log, key.public_key())
    assert after.ok, after.damage
    assert after.compacted is not None and after.last_seq == before.last_seq
    # the audit service's writer takes the compacted log up where it was
    w = al.AuditWriter(log, key, checkpoint_every=10, checkpoint_interval=1e9)
    assert w.recovery.next_seq == before.last_seq + 1
    w.append(al.Record(time=time.time(), partition="audit", event="test.after-compaction"))
    w.commit()
    w.close()
    assert al.verify(log, key.public_key()).ok
    # and an edit of a record the chain still holds is found
    data = log.read_bytes()
    opened = open_compacted(data, key.public_key())
    assert opened is not None and not isinstance(opened, al.Damage)
    frames = [f for f in al._frames(data, opened.offset, opened.index) if isinstance(f, al._Frame)]
    target = next(f for f in frames if isinstance(al._decode(f).body, al.Record))  # type: ignore[union-attr]
    entry = al._decode(target)
    assert entry is not None and isinstance(entry.body, al.Record)
    payload = msgspec.msgpack.encode(al.Entry(entry.seq, entry.prev,
                                              msgspec.structs.replace(entry.body, message="rewritten")))
    import hashlib

    frame = len(payload).to_bytes(4, "big") + payload + hashlib.sha256(payload).digest()
    log.write_bytes(data[: target.offset] + frame + data[target.end:])
    bad = al.verify(log, key.public_key())
    assert not bad.ok and bad.damage is not None and bad.damage.seq == entry.seq
