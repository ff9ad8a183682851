"""The update service under the real runtime: reassembly, verification, anti-rollback, the drug
library published to the partitions that receive it, and partition code updates activated, health-checked
and rolled back by the supervisor (models/update_device.yaml)."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from e2e_helpers import MODELS, require_root, running, tmpdir

from septum.crypto.keys import load_private_key, load_public_key
from septum.runtime import protocol as proto
from septum.runtime.supervisor import Supervisor, remove_state_dir
from septum.services.provisioning import drug_library_bundle, provision_device
from septum.services.update_bundle import MAGIC, make_bundle, verify_bundle

sys.path.insert(0, str(MODELS))
from svc_parts.board import Board

CHUNK = 1000


def library(version: int) -> bytes:
    return f"version: {version}\ndrugs: []\n# padding {'x' * 3000}\n".encode()


class Device:
    def __init__(self, sup: Supervisor, board: Board, key: Ed25519PrivateKey, pub: Path) -> None:
        self.sup, self.board, self.key, self.pub = sup, board, key, pub
        self.n = 0

    def send(self, bundle: bytes, bid: str | None = None, chunk: int = CHUNK, skip: int | None = None,
             wait: bool = True) -> dict[str, Any] | None:
        self.n += 1
        bid = bid or f"b{self.n}"
        after = self.sup.events.last_seq
        parts = [bundle[i:i + chunk] for i in range(0, len(bundle), chunk)] or [b""]
        for i, data in enumerate(parts):
            if i != skip:
                self.board.send("test_port", "authorised_updates", bundle_id=bid, index=i, total=len(parts), data=data)
        if not wait:
            return None
        ev = self.sup.events.wait_for(lambda e: e.kind == "received" and e.partition == "gate"
                                      and e.fields.get("bundle_id") == bid, 15, after=after)
        assert ev is not None, f"no result for {bid}"
        return dict(ev.fields)

    def current(self) -> str:
        return os.readlink(self.sup.data_dir("update") / "slots" / "drug_library" / "current")


@pytest.fixture
def device() -> Iterator[Device]:
    require_root()
    out = tmpdir("septum-prov-")
    key = Ed25519PrivateKey.generate()
    prov = provision_device(MODELS / "update_device.yaml", out / "dev", drug_library=(library(1), 1),
                            manufacturer_key=key)
    assert (prov.folders["pump_control"] / "manufacturer.pub").exists()
    board = Board()
    try:
        with running("update_device.yaml", provision=prov.folders, hardware=board, check=False) as sup:
            yield Device(sup, board, key, prov.manufacturer_public_key)
    finally:
        board.close()
        remove_state_dir(out)


def libraries(sup: Supervisor, after: int = 0) -> list[dict[str, Any]]:
    return [dict(e.fields) for e in sup.events.history if e.kind == "received" and e.partition == "pump_control"
            and e.seq > after]


def test_initial_library_published_signed_and_a_newer_one_installed(device: Device) -> None:
    ev = device.sup.events.wait_for(lambda e: e.kind == "received" and e.partition == "pump_control", 10)
    assert ev is not None and ev.fields["version"] == 1
    data, sig = bytes.fromhex(ev.fields["data"]), bytes.fromhex(ev.fields["signature"])
    load_public_key(device.pub).verify(sig, data)  # the receiver can check it on its own
    assert data == library(1)
    after = device.sup.events.last_seq
    r = device.send(drug_library_bundle(device.key, library(2), 2))
    assert r is not None and r["installed"] is True and r["version"] == 2
    ev = device.sup.events.wait_for(lambda e: e.kind == "received" and e.partition == "pump_control", 10,
                                    after=after)
    assert ev is not None and ev.fields["version"] == 2
    assert device.current() == "slots/2"


def test_unsigned_tampered_wrong_key_and_older_bundles_refused_current_keeps_running(device: Device) -> None:
    before = device.sup.events.last_seq
    assert device.send(drug_library_bundle(device.key, library(3), 3))["installed"] is True
    v3 = device.sup.events.wait_for(lambda e: e.kind == "received" and e.partition == "pump_control"
                                    and e.fields["version"] == 3, 10, after=before)
    assert v3 is not None
    after = device.sup.events.last_seq
    good = drug_library_bundle(device.key, library(4), 4)
    box = msgspec.msgpack.decode(good[len(MAGIC):])
    unsigned = MAGIC + msgspec.msgpack.encode({**box, "signature": b""})
    r = device.send(unsigned)
    assert r["installed"] is False and "unsigned" in r["reason"]
    tampered = MAGIC + msgspec.msgpack.encode({**box, "files": {**box["files"], "drug_library.yaml": library(9)}})
    r = device.send(tampered)
    assert r["installed"] is False and "does not match its signed hash" in r["reason"]
    r = device.send(drug_library_bundle(Ed25519PrivateKey.generate(), library(5), 5))
    assert r["installed"] is False and "not a trusted update key" in r["reason"]
    r = device.send(drug_library_bundle(device.key, library(2), 2))
    assert r["installed"] is False and "anti-rollback" in r["reason"]
    r = device.send(b"not a bundle at all")
    assert r["installed"] is False and "bad magic" in r["reason"]
    assert device.current() == "slots/3"
    assert libraries(device.sup, after) == []  # nothing new was published to the therapy partitions


def test_bad_chunks_rejected_with_reasons_and_incomplete_bundle_times_out(device: Device) -> None:
    pid = device.sup.partition_pids()["update"]
    bundle = drug_library_bundle(device.key, library(6), 6)
    device.board.send("test_port", "authorised_updates", bundle_id="bad", index=5, total=2, data=b"x")
    ev = device.sup.events.wait_for(lambda e: e.kind == "received" and e.fields.get("bundle_id") == "bad", 10)
    assert ev is not None and ev.fields["installed"] is False and "outside 0..1" in ev.fields["reason"]
    r = device.send(bundle, bid="half", skip=1)  # never completes: answered when it times out
    assert r["installed"] is False and "incomplete: " in r["reason"]
    assert device.send(bundle)["installed"] is True  # the service is still there and working
    assert device.sup.partition_pids()["update"] == pid


def test_update_refuses_to_start_without_the_manufacturer_key() -> None:
    require_root()
    out = tmpdir("septum-prov-")
    try:
        prov = provision_device(MODELS / "update_device.yaml", out / "dev")
        (prov.folders["update"] / "manufacturer.pub").unlink()
        from septum.runtime.supervisor import PartitionFailed
        with pytest.raises(PartitionFailed, match="manufacturer key not provisioned"):
            with running("update_device.yaml", provision=prov.folders, check=False, ready_timeout=5):
                pass
        assert load_private_key(prov.manufacturer_key) is not None
    finally:
        remove_state_dir(out)


# ---------------------------------------------------------------------------------------- partition code

APP_FILE = "versioned_part/__init__.py"


def app_source(version: str) -> bytes:
    return (f'from septum.runtime.partition import Partition\n\nVERSION = "{version}"\n\n\n'
            'def main(p: Partition) -> None:\n    p.event("code_version", version=VERSION)\n').encode()


def code_bundle(key: Ed25519PrivateKey, version: str, source: bytes | None = None, target: str = "app") -> bytes:
    return make_bundle(key, target=target, kind="partition", version=version,
                       files={APP_FILE: app_source(version) if source is None else source})


def app_reports(sup: Supervisor, version: str, after: int) -> bool:
    ev = sup.events.wait_for(lambda e: e.kind == "code_version" and e.partition == "app"
                             and e.fields.get("version") == version, 15, after=after)
    return ev is not None


def floor(sup: Supervisor) -> dict[str, str]:
    path = sup.data_dir("update") / "versions.json"
    return json.loads(path.read_bytes()) if path.exists() else {}


def test_code_bundle_is_activated_and_the_partition_runs_the_new_code(device: Device) -> None:
    sup = device.sup
    assert app_reports(sup, "model", 0)
    pid = sup.partition_pids()["app"]
    after = sup.events.last_seq
    r = device.send(code_bundle(device.key, "2.0.0"))
    assert r is not None and r["installed"] is True, r
    assert "app 2.0.0 running" in r["reason"]
    assert app_reports(sup, "2.0.0", after)
    assert any(e.kind == "code_activated" and e.partition == "app" and e.fields["version"] == "2.0.0"
               for e in sup.events.history)
    assert sup.code_version("app") == "2.0.0" and sup.partition_pids()["app"] != pid
    assert floor(sup)["app"] == "2.0.0"  # the floor rose only after the supervisor's health check
    code = sup.code_root / "app" / "2.0.0" / APP_FILE
    st = code.stat()
    assert code.read_bytes() == app_source("2.0.0")
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o440  # the partition reads it, cannot change it
    assert st.st_gid != 0 and st.st_gid == os.stat(sup.data_dir("app")).st_gid  # and only its group can
    # anti-rollback: an older code bundle is refused, the new code keeps running
    pid2 = sup.partition_pids()["app"]
    r = device.send(code_bundle(device.key, "1.5.0"))
    assert r is not None and r["installed"] is False and "anti-rollback" in r["reason"]
    assert sup.partition_pids()["app"] == pid2 and sup.code_version("app") == "2.0.0"


def test_code_that_fails_to_become_ready_is_rolled_back_and_the_old_code_keeps_running(device: Device) -> None:
    sup = device.sup
    assert app_reports(sup, "model", 0)
    after = sup.events.last_seq
    broken = b'def main(p):\n    raise RuntimeError("broken build")\n'
    r = device.send(code_bundle(device.key, "2.0.0", broken))
    assert r is not None and r["installed"] is False, r
    assert "failed its health check" in r["reason"] and "broken build" in r["reason"]
    rolled = [e for e in sup.events.history if e.kind == "code_rolled_back" and e.seq > after]
    assert rolled and rolled[0].fields["version"] == "2.0.0" and rolled[0].fields["running"] == "model"
    assert app_reports(sup, "model", rolled[0].seq)  # the previous code was started again
    assert sup.code_version("app") == ""
    assert "app" not in floor(sup)
    assert not (sup.data_dir("update") / "slots" / "app" / "current").exists()
    assert not (sup.code_root / "app" / "2.0.0").exists()
    # a fixed build of the same version may be tried again (the floor did not rise)
    after = sup.events.last_seq
    r = device.send(code_bundle(device.key, "2.0.0"))
    assert r is not None and r["installed"] is True, r
    assert app_reports(sup, "2.0.0", after)


def test_safety_partition_code_is_not_swapped_while_running(device: Device) -> None:
    sup = device.sup
    pid = sup.partition_pids()["pump_control"]
    r = device.send(code_bundle(device.key, "2.0.0", target="pump_control"))
    assert r is not None and r["installed"] is False and "safety partition" in r["reason"], r
    assert sup.partition_pids()["pump_control"] == pid and sup.code_version("pump_control") == ""
    assert "pump_control" not in floor(sup)


def test_activation_from_a_partition_other_than_update_is_refused_and_audited(device: Device) -> None:
    sup = device.sup
    assert app_reports(sup, "model", 0)
    pid = sup.partition_pids()["app"]
    v = verify_bundle(code_bundle(device.key, "3.0.0"), [device.key.public_key()])  # genuinely signed
    after = sup.events.last_seq
    device.board.ends["intruder_port"].send(msgspec.msgpack.encode(
        {"target": "app", "version": "3.0.0", "manifest": v.manifest_bytes, "signature": v.signature}))
    ev = sup.events.wait_for(lambda e: e.kind == "code_activation_refused", 10, after=after)
    assert ev is not None and ev.partition == "intruder" and ev.severity == "warning"
    assert "only the update service" in ev.fields["reason"]
    ans = sup.events.wait_for(lambda e: e.kind == "activation_result" and e.partition == "intruder", 10,
                              after=after)
    assert ans is not None and ans.fields["status"] == "refused"
    assert sup.partition_pids()["app"] == pid and sup.code_version("app") == ""


def test_supervisor_rehashes_staged_code_and_refuses_tampering(device: Device) -> None:
    """Plays a compromised update partition: staged files and requests written on its control channel."""
    sup = device.sup
    assert app_reports(sup, "model", 0)
    pid = sup.partition_pids()["app"]
    v = verify_bundle(code_bundle(device.key, "4.0.0"), [device.key.public_key()])
    staged = sup.data_dir("update") / "slots" / "app" / "slots" / "4.0.0" / APP_FILE
    staged.parent.mkdir(parents=True)
    update_end = sup._procs["update"].child_control  # the update partition's end of its control channel

    def activate(version: str = "4.0.0", target: str = "app") -> dict[str, Any]:
        after = sup.events.last_seq
        update_end.send(proto.encoder.encode(proto.Activate(
            request_id="forged", target=target, version=version, manifest=v.manifest_bytes,
            signature=v.signature)))
        ev = sup.events.wait_for(lambda e: e.kind in ("code_activation_refused", "code_activated"), 10,
                                 after=after)
        assert ev is not None
        return {"kind": ev.kind, **ev.fields}

    staged.write_bytes(app_source("4.0.0").replace(b"VERSION =", b"import os; VERSION ="))
    r = activate()
    assert r["kind"] == "code_activation_refused" and "does not match its signed hash" in r["reason"]
    # the genuine bytes behind a symlink: the hash would match, the supervisor does not follow it
    outside = tmpdir("septum-outside-") / "genuine.py"
    outside.write_bytes(app_source("4.0.0"))
    staged.unlink()
    staged.symlink_to(outside)
    r = activate()
    assert r["kind"] == "code_activation_refused" and "symlinks are refused" in r["reason"]
    r = activate(version="5.0.0")
    assert r["kind"] == "code_activation_refused" and "signed manifest 4.0.0" in r["reason"]
    r = activate(target="../audit")
    assert r["kind"] == "code_activation_refused" and "not a partition name" in r["reason"]
    assert sup.partition_pids()["app"] == pid and sup.code_version("app") == ""
    # the same request with the genuine staged file is honoured: the refusals above were the checks
    staged.unlink()
    staged.write_bytes(app_source("4.0.0"))
    after = sup.events.last_seq
    r = activate()
    assert r["kind"] == "code_activated", r
    assert app_reports(sup, "4.0.0", after)
    remove_state_dir(outside.parent)


def test_code_that_dies_after_ready_within_the_probation_is_rolled_back(device: Device) -> None:
    sup = device.sup
    assert app_reports(sup, "model", 0)
    after = sup.events.last_seq
    # ready at once, then fails a tenth of the 3 heartbeat periods (0.6 s) the supervisor waits
    flaky = (b'def main(p):\n    def boom():\n        raise RuntimeError("crashed after ready")\n'
             b'    p.ready()\n    p.after(0.06, boom)\n')
    r = device.send(code_bundle(device.key, "2.0.0", flaky))
    assert r is not None and r["installed"] is False and "crashed after ready" in r["reason"], r
    assert any(e.kind == "ready" and e.partition == "app" and e.seq > after for e in sup.events.history)
    assert not any(e.kind == "code_activated" and e.seq > after for e in sup.events.history)
    assert sup.code_version("app") == "" and "app" not in floor(sup)
