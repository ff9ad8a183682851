"""The update service under the real runtime: reassembly, verification, anti-rollback, and the drug
library published to the partitions that receive it (models/update_device.yaml)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from e2e_helpers import MODELS, require_root, running, tmpdir

from septum.runtime.supervisor import Supervisor, remove_state_dir
from septum.services.keys import load_private_key, load_public_key
from septum.services.provisioning import drug_library_bundle, provision_device
from septum.services.update_bundle import MAGIC

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
