"""`septum audit ...` and `septum update ...`: exit codes and one-line messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from septum.cli import cli
from septum.crypto.keys import load_private_key
from septum.services.audit_log import AuditWriter, Record


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def _log(tmp_path: Path) -> tuple[Path, Path]:
    code, _, _ = _run("audit", "keygen", "--out-dir", str(tmp_path))
    assert code == 0
    log = tmp_path / "audit.log"
    w = AuditWriter(log, load_private_key(tmp_path / "audit.key"))
    w.append(Record(time=1_700_000_000.0, partition="auth", event="auth.login-failed", severity="warning",
                    principal="nurse1", message='bad PIN "x"', detail={"attempt": 3}))
    w.append(Record(time=1_700_000_100.0, partition="pump_control", event="pump.started", severity="info"))
    w.append(Record(time=1_700_000_200.0, partition="pump_control", event="breakglass.emergency_stop",
                    severity="alert", message="stop ✓"))
    w.close()
    return log, tmp_path / "audit.pub"


def test_verify_ok_and_damaged(tmp_path: Path) -> None:
    log, pub = _log(tmp_path)
    code, out, _ = _run("audit", "verify", str(log), "--key", str(pub))
    assert code == 0 and "ok: 4 records" in out
    data = bytearray(log.read_bytes())
    pos = data.index(b"pump.started")
    data[pos] ^= 1
    log.write_bytes(bytes(data))
    code, _, err = _run("audit", "verify", str(log), "--key", str(pub))
    assert code == 1 and re.search(r"edited at record seq 3\b", err) and len(err.strip().splitlines()) == 1


def test_user_mistakes_exit_2_with_one_line(tmp_path: Path) -> None:
    log, pub = _log(tmp_path)
    (tmp_path / "junk.pem").write_text("not a key")
    for args in (
        ("audit", "verify", str(tmp_path / "missing.log"), "--key", str(pub)),
        ("audit", "verify", str(log), "--key", str(tmp_path / "junk.pem")),
        ("audit", "verify", str(log), "--key", str(tmp_path / "audit.key")),  # private, not public
        ("audit", "show", str(log), "--since", "yesterday"),
        ("audit", "show", str(log), "--severity", "loud"),
        ("audit", "keygen", "--out-dir", str(tmp_path)),  # refuses to overwrite
        ("update", "make", "--key", str(pub), "--target", "x", "--version", "1", "-o", "b", str(log)),
    ):
        code, _, err = _run(*args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_show_filters_and_export(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    code, out, _ = _run("audit", "show", str(log), "--partition", "pump_control")
    assert code == 0 and "pump.started" in out and "auth.login-failed" not in out
    code, out, _ = _run("audit", "show", str(log), "--severity", "warning")
    assert [ln.split()[3] for ln in out.splitlines()] == ["auth", "pump_control"]
    code, out, _ = _run("audit", "show", str(log), "--since", "2023-11-14T22:14:00", "--until", "1700000150")
    assert "pump.started" in out and "emergency_stop" not in out and "login-failed" not in out
    code, out, _ = _run("audit", "export", str(log), "--format", "jsonl", "--event", "auth.")
    rows = [json.loads(x) for x in out.splitlines()]
    assert rows == [{"seq": 2, "time": "2023-11-14T22:13:20.000000Z", "partition": "auth",
                     "event": "auth.login-failed", "severity": "warning", "message": 'bad PIN "x"',
                     "principal": "nurse1", "detail": {"attempt": 3}}]
    code, out, _ = _run("audit", "export", str(log), "--format", "syslog", "--hostname", "pump-7")
    lines = out.splitlines()
    assert lines[1] == ('<108>1 2023-11-14T22:13:20.000000Z pump-7 auth - auth.login-failed '
                        '[septum@32473 seq="2" principal="nurse1" attempt="3"] bad PIN "x"')
    assert lines[3].startswith("<105>1 ") and lines[3].endswith("\ufeffstop ✓")


def test_show_stops_at_damage(tmp_path: Path) -> None:
    log, _ = _log(tmp_path)
    log.write_bytes(log.read_bytes()[:-10])
    code, out, err = _run("audit", "show", str(log))
    assert code == 1 and "torn-tail" in err and "emergency_stop" in out


def test_update_cli(tmp_path: Path) -> None:
    assert _run("update", "keygen", "--out-dir", str(tmp_path))[0] == 0
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("x = 1\n")
    (tmp_path / "app" / "lib.py").write_text("y = 2\n")
    bundle = tmp_path / "b.sup"
    code, out, err = _run("update", "make", "--key", str(tmp_path / "update.key"), "--target", "pump_control",
                          "--version", "1.2.0", "--base", str(tmp_path / "app"), "-o", str(bundle),
                          str(tmp_path / "app" / "main.py"), str(tmp_path / "app" / "lib.py"))
    assert code == 0, err
    pub = str(tmp_path / "update.pub")
    code, out, _ = _run("update", "verify", str(bundle), "--key", pub, "--target", "pump_control")
    assert code == 0 and "pump_control 1.2.0, 2 file(s)" in out
    code, _, err = _run("update", "verify", str(bundle), "--key", pub, "--installed", "1.2.0")
    assert code == 1 and "anti-rollback" in err
    code, _, err = _run("update", "verify", str(bundle), "--key", pub, "--target", "network")
    assert code == 1 and "is for 'pump_control'" in err
    data = bytearray(bundle.read_bytes())
    data[data.index(b"x = 1")] = ord("z")
    bundle.write_bytes(bytes(data))
    code, _, err = _run("update", "verify", str(bundle), "--key", pub)
    assert code == 1 and "main.py" in err and "signed hash" in err
    code, _, err = _run("update", "verify", str(bundle), "--key", pub, "--installed", "one")
    assert code == 2
