"""`septum provision --device-key`: the audit key and credentials written only sealed under a root-only
device key file, which is created when absent and refused when others could read it."""

from __future__ import annotations

import os
from pathlib import Path

from septum.crypto import secrets_at_rest as sr

MODEL = Path(__file__).resolve().parents[1] / "services_e2e" / "models" / "auth_device.yaml"


def test_provision_with_a_device_key_seals_the_audit_key_and_credentials(run, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "device.key"
    r = run("provision", str(MODEL), "--out", str(tmp_path / "out"), "--clinician", "nurse1",
            "--device-key", str(key))
    assert r.exit_code == 0, r.output
    assert os.stat(key).st_mode & 0o777 == 0o600
    audit, auth = tmp_path / "out" / "audit", tmp_path / "out" / "auth"
    assert (audit / "audit.key.sealed").exists() and not (audit / "audit.key").exists()
    assert (auth / "credentials.json.sealed").exists() and not (auth / "credentials.json").exists()
    found, problems = sr.unseal_folder(audit, sr.load_device_key(key, require_root_owner=os.geteuid() == 0), "audit")
    assert problems == [] and b"PRIVATE KEY" in found["audit.key"]


def test_provision_refuses_a_readable_device_key_and_one_inside_the_output(run, tmp_path: Path) -> None:
    key = tmp_path / "device.key"
    sr.create_device_key(key)
    os.chmod(key, 0o644)
    r = run("provision", str(MODEL), "--out", str(tmp_path / "out"), "--device-key", str(key))
    assert r.exit_code == 2 and "must be 0600" in r.output, r.output
    r = run("provision", str(MODEL), "--out", str(tmp_path / "out2"), "--device-key", str(tmp_path / "out2" / "k"))
    assert r.exit_code == 2 and "outside" in r.output, r.output
