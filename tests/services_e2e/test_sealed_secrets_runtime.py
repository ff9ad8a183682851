"""Secrets sealed at rest, under the real runtime: the supervisor unseals each partition's files at its start
and hands them over in memory; the partitions' folders never hold the audit key or the credentials in clear
(models/auth_device.yaml)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import MODELS, require_root, running, tmpdir

from septum.crypto import secrets_at_rest as sr
from septum.crypto.keys import load_public_key
from septum.runtime.plan import SetupError
from septum.runtime.supervisor import PartitionFailed, Supervisor, remove_state_dir
from septum.services import audit_log
from septum.services.credentials import Argon2Params
from septum.services.provisioning import provision_device

sys.path.insert(0, str(MODELS))
from svc_parts.board import Board

CHEAP = Argon2Params(time_cost=1, memory_kib=8192)


def _grep(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for f in root.rglob("*"):
        if f.is_file() and not f.is_symlink():
            data = f.read_bytes()
            hits += [f"{f}: {n!r}" for n in needles if n in data]
    return hits


@pytest.fixture
def sealed() -> Iterator[dict[str, Any]]:
    require_root()
    out = tmpdir("septum-prov-")
    key = sr.create_device_key(out / "device-key" / "device.key")
    prov = provision_device(MODELS / "auth_device.yaml", out / "dev", clinicians=["nurse1"], argon2=CHEAP,
                            device_key=key)
    try:
        yield {"out": out, "key": key, "prov": prov}
    finally:
        remove_state_dir(out)


def _login(sup: Supervisor, board: Board, pin: str) -> dict[str, Any]:
    after = sup.events.last_seq
    board.send("keypad", "ui_requests", request_id=1, action="login", user="nurse1", pin=pin, session="",
               dose_rate=0.0, reason="")
    ev = sup.events.wait_for(lambda e: e.kind == "received" and e.partition == "ui"
                             and e.fields.get("request_id") == 1, 15, after=after)
    assert ev is not None, "no answer to the login"
    return dict(ev.fields)


def test_sealed_credentials_and_audit_key_work_and_are_never_in_clear_on_the_device(sealed: dict[str, Any]) -> None:
    prov, key = sealed["prov"], sealed["key"]
    board = Board()
    try:
        with running("auth_device.yaml", provision=prov.folders, hardware=board, check=False,
                     device_key=key.path) as sup:
            reply = _login(sup, board, prov.pins["nurse1"])
            assert reply["ok"] is True, reply  # auth read the credentials the supervisor unsealed
            state = sup.state_dir
            # while the device runs: the data folders (and the disk images they are mounted from)
            hits = _grep(state, [b"PRIVATE KEY", b"$argon2id$"])
            assert hits == [], hits
            assert (sup.data_dir("audit") / "audit.key.sealed").exists()
            assert not (sup.data_dir("audit") / "audit.key").exists()
    finally:
        board.close()


def test_a_wrong_device_key_is_reported_and_the_audit_service_refuses_to_start(sealed: dict[str, Any]) -> None:
    prov, out = sealed["prov"], sealed["out"]
    other = sr.create_device_key(out / "other-key" / "device.key")
    with pytest.raises(PartitionFailed, match="audit key not provisioned"):
        with running("auth_device.yaml", provision=prov.folders, check=False, device_key=other.path,
                     ready_timeout=5):
            pass


def test_a_device_key_inside_a_partition_folder_is_refused(sealed: dict[str, Any]) -> None:
    prov = sealed["prov"]
    inside = sr.create_device_key(prov.folders["auth"] / "device.key")
    with pytest.raises(SetupError, match="keep it outside the partitions' folders"):
        with running("auth_device.yaml", provision=prov.folders, check=False, device_key=inside.path):
            pass


def test_the_audit_log_written_with_the_unsealed_key_verifies(sealed: dict[str, Any]) -> None:
    prov, key = sealed["prov"], sealed["key"]
    state = tmpdir("septum-svc-")
    try:
        with running("auth_device.yaml", provision=prov.folders, check=False, device_key=key.path, state=state):
            pass
        log = state / "data" / "audit" / "audit.log"
        report = audit_log.verify(log, load_public_key(prov.audit_public_key))
        assert report.ok, report
    finally:
        remove_state_dir(state)
