"""`septum decommission` on a device that really ran (real auth and audit services, secrets sealed under a
device key), with one data folder still loop-mounted from its disk image as a run that did not tear down
leaves it. Afterwards no key byte and no patient id is recoverable: not from what is left of the folder, and
not from the erased files' own blocks (hard links made beforehand keep the inodes, so they show what the
erase wrote over them), the disk image included; the final anchor, kept outside, matches the log."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from septum.crypto import secrets_at_rest as sr
from septum.crypto.keys import load_public_key
from septum.runtime.sandbox import disk
from septum.runtime.sandbox.probe import probe
from septum.runtime.supervisor import remove_state_dir
from septum.services import audit_log
from septum.services.audit_anchor import load_anchor
from septum.services.credentials import Argon2Params
from septum.services.provisioning import provision_device

E2E = Path(__file__).resolve().parents[1] / "services_e2e"
sys.path.insert(0, str(E2E))
from e2e_helpers import MODELS, running  # noqa: E402

CHEAP = Argon2Params(time_cost=1, memory_kib=8192)
PATIENT = b"MRN-DECOM-424242"
TLS_KEY = b"-----BEGIN PRIVATE KEY-----\nTLSKEYBYTES0123456789abcdefTLSKEYBYTES\n-----END PRIVATE KEY-----\n"


def _hits(paths: list[Path], needles: list[bytes]) -> list[str]:
    out = []
    for f in paths:
        if f.is_file() and not f.is_symlink():
            data = f.read_bytes()
            out += [f"{f}: {n[:24]!r}" for n in needles if n in data]
    return out


@pytest.fixture
def device() -> Iterator[dict[str, Any]]:
    if not probe().root:
        pytest.skip("needs root (partitions run under their own uids; loop-mounted data disks)")
    out = Path(tempfile.mkdtemp(prefix="septum-decom-"))
    os.chmod(out, 0o711)
    key = sr.create_device_key(out / "device-key" / "device.key")
    prov = provision_device(MODELS / "auth_device.yaml", out / "prov", clinicians=["nurse1"], argon2=CHEAP,
                            device_key=key)
    state = out / "state"
    state.mkdir()
    os.chmod(state, 0o711)
    with running("auth_device.yaml", provision=prov.folders, check=False, device_key=key.path, state=state):
        pass
    # what the network partition of a pump keeps: its settings, its TLS key, buffered events with PHI
    net = state / "data" / "network"
    (net / "hospital.json").write_text('{"bind": "127.0.0.1", "https_port": 8443}')
    (net / "server.key").write_bytes(TLS_KEY)
    (net / "outbound").mkdir(exist_ok=True)
    (net / "outbound" / "000001.json").write_bytes(b'{"kind": "administration", "patient": "' + PATIENT + b'"}')
    # a run that did not tear down leaves the data folder mounted from its image (which now holds all that)
    mounted = disk.attach(state, "network", net, 16)
    secrets_plain = [sr.unseal_folder(prov.folders[p], key, p)[0] for p in ("audit", "auth")]
    needles = [PATIENT, TLS_KEY[28:60], *(v[40:80] for found in secrets_plain for v in found.values())]
    try:
        yield {"out": out, "state": state, "prov": prov, "key": key, "needles": needles, "mounted": mounted}
    finally:
        disk.release(state)
        remove_state_dir(out)


def _septum(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "septum"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def test_decommission_refuses_without_confirmation_and_erases_nothing(device: dict[str, Any]) -> None:
    state, out = device["state"], device["out"]
    before = sorted(p for p in state.rglob("*") if p.is_file())
    r = _septum("decommission", state, "--anchor-out", out / "final.anchor")
    assert r.returncode == 2 and "refusing to erase without --confirm-erase" in r.stderr, r
    assert "keys and credentials" in r.stdout  # it says what it would erase
    assert sorted(p for p in state.rglob("*") if p.is_file()) == before
    assert not (out / "final.anchor").exists()
    inside = _septum("decommission", state, "--anchor-out", state / "final.anchor", "--confirm-erase")
    assert inside.returncode == 2 and "outside the folders being erased" in inside.stderr, inside
    assert sorted(p for p in state.rglob("*") if p.is_file()) == before


def test_decommission_refuses_a_running_device(device: dict[str, Any]) -> None:
    state, out = device["state"], device["out"]
    proc = subprocess.Popen(["sleep", "30"], cwd=state / "data")
    try:
        r = _septum("decommission", state, "--anchor-out", out / "final.anchor", "--confirm-erase")
    finally:
        proc.kill()
        proc.wait()
    assert r.returncode == 2 and "stop the device first" in r.stderr, r
    assert (state / "data" / "audit" / "audit.log").exists()


def test_decommission_anchors_then_leaves_no_key_or_patient_id_recoverable(device: dict[str, Any]) -> None:
    state, out, prov, needles = device["state"], device["out"], device["prov"], device["needles"]
    log = state / "data" / "audit" / "audit.log"
    saved = out / "exported"  # the hospital's copy of the log, taken before, to check the anchor against
    saved.mkdir()
    (saved / "audit.log").write_bytes(log.read_bytes())
    (saved / "audit.log.head").write_bytes((state / "data" / "audit" / "audit.log.head").read_bytes())
    audit_pub = load_public_key(prov.audit_public_key)  # the hospital keeps it; the provisioning copy is erased
    # hard links keep every file's inode after the erase unlinks it: what they read is what was left on disk
    links = out / "links"
    links.mkdir()
    targets = [p for p in state.rglob("*") if p.is_file() and not p.is_symlink()]
    targets += [p for p in (out / "prov").rglob("*") if p.is_file()] + [device["key"].path]
    image = disk.image_of(state, "network")
    assert device["mounted"] == (disk.unavailable() is None)
    if device["mounted"]:
        assert image in targets and str(state / "data" / "network") in {str(p) for p in disk._mounted_data_dirs(state)}
    for i, p in enumerate(targets):
        if os.stat(p).st_dev == os.stat(links).st_dev:  # files inside the mounted image: the image's link covers them
            os.link(p, links / f"{i}-{p.name}")
    linked = sorted(links.iterdir())
    assert _hits(linked, needles), "the needles must be on the device before it is decommissioned"
    r = _septum("decommission", state, "--anchor-out", out / "final.anchor", "--provisioning", out / "prov",
                "--device-key", device["key"].path, "--confirm-erase")
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)
    for kind in ("keys and credentials", "network settings", "logs and buffered events (PHI)"):
        assert kind in r.stdout, r.stdout
    if device["mounted"]:
        assert "data disk images" in r.stdout and not disk._mounted_data_dirs(state)
    assert "device key (crypto-erase" in r.stdout
    # nothing recoverable: not in what is left of the folders, not in the erased files' blocks
    left = [p for p in [*state.rglob("*"), *(out / "prov").rglob("*")] if p.is_file()]
    assert left == [], left
    assert _hits(linked, needles) == []
    assert not device["key"].path.exists()
    # the final anchor, kept outside, is the exported log's last seal
    anchor = load_anchor(out / "final.anchor")
    res = audit_log.verify(saved / "audit.log", audit_pub, head=saved / "audit.log.head", anchors=[anchor])
    assert res.damage is None and anchor.seq == res.last_checkpoint_seq, res


def test_decommission_stops_when_the_log_does_not_verify(device: dict[str, Any]) -> None:
    state, out = device["state"], device["out"]
    log = state / "data" / "audit" / "audit.log"
    data = bytearray(log.read_bytes())
    data[40] ^= 0xFF  # an edited record
    log.write_bytes(bytes(data))
    r = _septum("decommission", state, "--anchor-out", out / "final.anchor", "--confirm-erase")
    assert r.returncode == 2 and "does not verify" in r.stderr and "nothing was erased" in r.stderr, r
    assert log.exists() and (state / "data" / "network" / "server.key").exists()
    r = _septum("decommission", state, "--anchor-out", out / "final.anchor", "--confirm-erase", "--without-anchor")
    assert r.returncode == 0 and "no final audit anchor" in r.stdout, r
    assert not log.exists() and not (out / "final.anchor").exists()
