"""Unsigned, tampered, wrong-key and rolled-back software and drug-library bundles."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import msgspec
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.services.provisioning import DRUG_LIBRARY, drug_library_bundle
from septum.services.update_bundle import MAGIC, SlotInstaller, VersionStore, make_bundle

from ..rig import LIBRARY
from .base import Check, Scenario, ScenarioResult, event_is
from .device import AttackRig


def _resign_strip(bundle: bytes) -> bytes:
    """The same bundle with its signature removed."""
    box = msgspec.msgpack.decode(bundle[len(MAGIC):])
    box["signature"] = b""
    return MAGIC + msgspec.msgpack.encode(box)


def _tamper(bundle: bytes) -> bytes:
    """A validly signed bundle whose drug library was edited afterwards (hard limit raised)."""
    box = msgspec.msgpack.decode(bundle[len(MAGIC):])
    name = next(iter(box["files"]))
    orig = box["files"][name]
    box["files"][name] = orig.replace(b"hard_max: 450", b"hard_max: 4500")
    if box["files"][name] == orig:  # pragma: no cover - the library text changed: fail loudly, never pass
        raise AssertionError("tamper found nothing to change")
    return MAGIC + msgspec.msgpack.encode(box)


def crafted(rig: AttackRig) -> dict[str, tuple[str, bytes]]:
    """name -> (target, bundle bytes)."""
    assert rig.manufacturer_key is not None
    key = rig.manufacturer_key
    lib = LIBRARY.read_bytes()
    version = int(yaml.safe_load(lib)["version"])
    newer = drug_library_bundle(key, lib.replace(b"hard_max: 500", b"hard_max: 450"), version + 1)
    rogue = Ed25519PrivateKey.generate()
    return {
        "unsigned-library.sup": (DRUG_LIBRARY, _resign_strip(newer)),
        "tampered-library.sup": (DRUG_LIBRARY, _tamper(newer)),
        "wrong-key-library.sup": (DRUG_LIBRARY, drug_library_bundle(rogue, lib, version + 1)),
        "rolled-back-library.sup": (DRUG_LIBRARY, drug_library_bundle(key, lib, max(0, version - 1))),
        "same-version-library.sup": (DRUG_LIBRARY, drug_library_bundle(key, lib, version)),
        "wrong-key-firmware.sup": ("pump_control", make_bundle(rogue, target="pump_control", kind="partition",
                                                               version="9.9.9", files={"evil.py": b"x"})),
        "tampered-firmware.sup": ("pump_control", _tamper_firmware(key)),
        "rolled-back-firmware.sup": ("pump_control", make_bundle(key, target="pump_control", kind="partition",
                                                                 version="0.0.1", files={"old.py": b"x"})),
    }


def _tamper_firmware(key: Ed25519PrivateKey) -> bytes:
    box = msgspec.msgpack.decode(make_bundle(key, target="pump_control", kind="partition", version="9.9.9",
                                             files={"pump_control.py": b"SAFE = True\n"})[len(MAGIC):])
    box["files"]["pump_control.py"] = b"SAFE = False\n"
    return MAGIC + msgspec.msgpack.encode(box)


def bundles(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("bad-updates", "unsigned, tampered, wrong-key and rolled-back firmware and drug library")
    chk = Check(rig, res)
    before = len(rig.events("drug_library_installed"))
    items = crafted(rig)
    # 1. pushed from the hospital side by a compromised network partition: auth sees no update server
    for name, (_t, data) in items.items():
        rig.put_network_file(name, data)
    ev = rig.inside("updates", files=list(items))
    denied = rig.wait_audit(event_is("auth.denied", partition="auth", contains="install_update"), chk.audit_seq)
    installed = rig.wait_audit(event_is("update.installed", partition="update"), chk.audit_seq, timeout=0.5)
    for r in msgspec.json.decode(ev.fields.get("results", "[]").encode()):
        chk.expect(f"compromised network partition: {r[0]}", denied is not None and installed is None,
                   "auth: install_update needs an authenticated update server or biomed "
                   f"({(denied or {}).get('detail', {}).get('reason', '')})"[:140], "reached the update service")
    # 2. the update service's own installer, with this device's trusted key and anti-rollback floor, as it
    #    would run if a biomed had opened an install window: each bundle is refused before anything changes
    udir = rig.supervisor.data_dir("update")
    from septum.crypto.keys import load_public_key

    trusted = [load_public_key(udir / "manufacturer.pub")]
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "versions.json"
        shutil.copy(udir / "versions.json", store_path)
        for name, (target, data) in items.items():
            inst = SlotInstaller(Path(tmp) / "slots", target, trusted, VersionStore(store_path))
            if target == "pump_control" and inst.current_version() is None:
                # the software running now (1.0.0, genuinely signed) sets the anti-rollback floor
                assert rig.manufacturer_key is not None
                seed = make_bundle(rig.manufacturer_key, target=target, kind="partition", version="1.0.0",
                                   files={"pump_control.py": b"SAFE = True\n"})
                inst.install(seed, lambda _slot: True)
            # the health check passes: a bundle is stopped only if verification refused it outright
            out = inst.install(data, lambda _slot: True)
            chk.expect(f"update service installer: {name}", out.status not in ("installed", "rolled-back"),
                       f"update service: {out.reason}"[:120], f"installed {out}")
    after = len(rig.events("drug_library_installed"))
    chk.expect("the running drug library after all of it", after == before,
               "the old library keeps running (no new install)", f"{after - before} new library installs")
    return chk.finish(event_is("auth.denied", partition="auth", contains="install_update"),
                      names=("auth.denied install_update",))


SCENARIOS = [
    Scenario("bad-updates", "unsigned, tampered, wrong-key or rolled-back firmware and drug library",
             "bundles pushed on updates_in by the compromised network partition; the same bundles fed to the "
             "update service's installer with this device's trusted key and anti-rollback floor",
             "auth (no update-server identity on updates_in), Ed25519 manifest signature, file hashes, "
             "anti-rollback floor", bundles),
]
