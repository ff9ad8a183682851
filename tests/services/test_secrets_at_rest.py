"""Secrets at rest: the device key file (a TPM-sealed key simulated by a root-only file), sealing bound to
partition and name, rotation, and provisioning that never leaves a device key or credential in clear."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from septum.crypto import secrets_at_rest as sr
from septum.crypto.keys import parse_private_key
from septum.services.credentials import Argon2Params
from septum.services.provisioning import provision_device

MODEL = Path(__file__).resolve().parents[1] / "services_e2e" / "models" / "auth_device.yaml"
CHEAP = Argon2Params(time_cost=1, memory_kib=8192)


def test_device_key_file_is_0600_and_refuses_to_be_overwritten(tmp_path: Path) -> None:
    k = sr.create_device_key(tmp_path / "dev" / "device.key")
    st = os.stat(tmp_path / "dev" / "device.key")
    assert st.st_mode & 0o777 == 0o600
    if os.geteuid() == 0:
        assert st.st_uid == 0
    assert sr.load_device_key(tmp_path / "dev" / "device.key", require_root_owner=os.geteuid() == 0).keys == k.keys
    with pytest.raises(sr.SecretsError, match="refusing to overwrite"):
        sr.create_device_key(tmp_path / "dev" / "device.key")


def test_a_device_key_others_could_read_replace_or_redirect_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    sr.create_device_key(path)
    os.chmod(path, 0o640)
    with pytest.raises(sr.SecretsError, match="must be 0600"):
        sr.load_device_key(path, require_root_owner=False)
    os.chmod(path, 0o600)
    link = tmp_path / "link.key"
    link.symlink_to(path)
    with pytest.raises(sr.SecretsError, match="cannot open"):
        sr.load_device_key(link, require_root_owner=False)
    if os.geteuid() == 0:
        os.chown(path, 1000, 1000)
        with pytest.raises(sr.SecretsError, match="must be owned by root"):
            sr.load_device_key(path)
    bad = tmp_path / "bad.key"
    bad.write_text("hello\n")
    os.chmod(bad, 0o600)
    with pytest.raises(sr.SecretsError, match="not a device key file"):
        sr.load_device_key(bad, require_root_owner=False)
    with pytest.raises(sr.SecretsError, match="no device key file"):
        sr.load_device_key(tmp_path / "missing.key")


def test_sealed_bytes_are_bound_to_partition_and_name_and_tampering_is_refused(tmp_path: Path) -> None:
    key = sr.create_device_key(tmp_path / "device.key")
    secret = b"-----BEGIN PRIVATE KEY-----\nsecret\n"
    blob = key.seal(secret, "audit", "audit.key")
    assert secret not in blob and b"secret" not in blob
    assert key.unseal(blob, "audit", "audit.key") == secret
    with pytest.raises(sr.SecretsError, match="sealed for another partition"):
        key.unseal(blob, "network", "audit.key")
    with pytest.raises(sr.SecretsError, match="sealed for another partition"):
        key.unseal(blob, "audit", "server.key")
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(sr.SecretsError, match="altered"):
        key.unseal(flipped, "audit", "audit.key")
    other = sr.DeviceKey((os.urandom(32),))
    with pytest.raises(sr.SecretsError, match=f"sealed under device key {key.current_id.hex()}"):
        other.unseal(blob, "audit", "audit.key")
    with pytest.raises(sr.SecretsError, match="not a sealed file"):
        key.unseal(b"plain text", "audit", "audit.key")


def test_seal_file_removes_the_cleartext_and_unseal_folder_reports_what_it_cannot_open(tmp_path: Path) -> None:
    key = sr.create_device_key(tmp_path / "device.key")
    folder = tmp_path / "auth"
    folder.mkdir()
    (folder / "credentials.json").write_bytes(b'{"hash": "$argon2id$secret"}')
    sr.seal_file(folder / "credentials.json", key, "auth")
    assert not (folder / "credentials.json").exists()
    assert b"argon2id" not in (folder / "credentials.json.sealed").read_bytes()
    (folder / "junk.sealed").write_bytes(b"SEPTSEAL\x01" + b"\0" * 40)
    found, problems = sr.unseal_folder(folder, key, "auth")
    assert found == {"credentials.json": b'{"hash": "$argon2id$secret"}'}
    assert len(problems) == 1 and "junk" in problems[0]


def test_rotation_reseals_everything_under_a_new_key_and_drops_the_old(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    old = sr.create_device_key(path)
    folders = {"audit": tmp_path / "audit", "auth": tmp_path / "auth"}
    for part, folder in folders.items():
        folder.mkdir()
        sr.write_sealed(folder / f"{part}.secret", f"{part} secret".encode(), old, part)
    new = sr.rotate(path, folders)
    assert new.keys != old.keys and len(new.keys) == 1
    assert sr.load_device_key(path, require_root_owner=os.geteuid() == 0).keys == new.keys
    for part, folder in folders.items():
        blob = (folder / f"{part}.secret.sealed").read_bytes()
        assert blob[len(sr.MAGIC):len(sr.MAGIC) + 8] == new.current_id
        assert new.unseal(blob, part, f"{part}.secret") == f"{part} secret".encode()
        with pytest.raises(sr.SecretsError, match="does not hold"):
            old.unseal(blob, part, f"{part}.secret")


def test_a_rotation_cut_short_leaves_every_file_readable_and_can_be_finished(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    old = sr.create_device_key(path)
    folder = tmp_path / "audit"
    folder.mkdir()
    for n in ("a", "b"):
        sr.write_sealed(folder / n, n.encode(), old, "audit")
    # the state a crash after the first file leaves: both keys in the file, one file resealed
    ring = sr.DeviceKey((os.urandom(32), *old.keys))
    sr._write_key_file(path, ring.keys, exclusive=False)
    sr.write_sealed(folder / "a", b"a", ring, "audit")
    found, problems = sr.unseal_folder(folder, sr.load_device_key(path, require_root_owner=False), "audit")
    assert found == {"a": b"a", "b": b"b"} and problems == []
    done = sr.rotate(path, {"audit": folder})
    assert sr.unseal_folder(folder, done, "audit") == ({"a": b"a", "b": b"b"}, [])


def test_shred_overwrites_then_unlinks(tmp_path: Path) -> None:
    f = tmp_path / "k"
    f.write_bytes(b"KEYBYTES" * 100)
    assert sr.shred(f) == 800 and not f.exists()


def test_provisioning_with_a_device_key_leaves_no_key_or_credential_in_clear(tmp_path: Path) -> None:
    key = sr.create_device_key(tmp_path / "devkey" / "device.key")
    prov = provision_device(MODEL, tmp_path / "out", clinicians=["nurse1"], argon2=CHEAP, device_key=key)
    every = [f for f in (tmp_path / "out").rglob("*") if f.is_file()]
    for f in every:
        data = f.read_bytes()
        if f.name != "manufacturer.key":  # the manufacturer's signing key never goes to the device
            assert b"PRIVATE KEY" not in data, f
        assert b"$argon2id$" not in data, f
    audit_dir, auth_dir = prov.folders["audit"], prov.folders["auth"]
    assert not (audit_dir / "audit.key").exists() and not (auth_dir / "credentials.json").exists()
    found, problems = sr.unseal_folder(audit_dir, key, "audit")
    assert problems == []
    akey = parse_private_key(found["audit.key"], "audit.key")
    pub = akey.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pub == (audit_dir / "audit.pub").read_bytes()
    creds, problems = sr.unseal_folder(auth_dir, key, "auth")
    assert problems == [] and b"$argon2id$" in creds["credentials.json"]


def test_secret_prefers_the_unsealed_copy_and_refuses_a_sealed_file_without_it(tmp_path: Path) -> None:
    (tmp_path / "audit.key.sealed").write_bytes(b"x")
    assert sr.secret({sr.SECRETS_CONFIG_KEY: {"audit.key": b"pem"}}, tmp_path, "audit.key") == b"pem"
    with pytest.raises(sr.SecretsError, match="sealed but the supervisor"):
        sr.secret({}, tmp_path, "audit.key")
    (tmp_path / "plain").write_bytes(b"clear")
    assert sr.secret({}, tmp_path, "plain") == b"clear"


names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(plain=st.binary(max_size=2048), part=names, name=names, other_part=names, other_name=names,
       flip=st.integers(min_value=0))
def test_property_a_sealed_file_opens_only_unchanged_as_its_own_partition_and_name(
        plain: bytes, part: str, name: str, other_part: str, other_name: str, flip: int) -> None:
    key = sr.DeviceKey((bytes(range(32)),))
    blob = key.seal(plain, part, name)
    assert key.unseal(blob, part, name) == plain
    if (other_part, other_name) != (part, name):  # names hold no NUL, the separator in the associated data
        with pytest.raises(sr.SecretsError):
            key.unseal(blob, other_part, other_name)
    i = flip % len(blob)
    bad = blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1:]
    with pytest.raises(sr.SecretsError):
        key.unseal(bad, part, name)
