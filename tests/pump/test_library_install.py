"""Both partitions that hold a drug library (pump_control, safety_monitor) install it through one function,
``therapy_io.install_library``: verified against the manufacturer key, refused when unsigned, tampered,
malformed or older than the one in use, recorded either way (issue 17 item 6: the install was written twice).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from septum_pump import pump_control, safety_monitor, therapy_io
from septum_pump.therapy.drug_library import DrugLibrary

from .test_monitor_partition import FakePartition

PARTITIONS = {"pump_control": pump_control.PumpControl, "safety_monitor": safety_monitor.MonitorPartition}


def _with_version(library_bytes: bytes, version: int) -> bytes:
    text, n = re.subn(rb"(?m)^version:\s*\d+", b"version: %d" % version, library_bytes)
    assert n == 1
    return text


class Signer:
    def __init__(self, tmp_path: Path) -> None:
        self.key = Ed25519PrivateKey.generate()
        (tmp_path / "manufacturer.pub").write_bytes(self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def message(self, data: bytes, version: int, *, signature: bytes | None = None) -> SimpleNamespace:
        return SimpleNamespace(version=version, data=data, signature=signature or self.key.sign(data))


def _records(p: FakePartition, event: str) -> list[dict[str, Any]]:
    return [f for kind, _, f in p.events if kind == event]


@pytest.mark.parametrize("name", sorted(PARTITIONS))
def test_each_partition_installs_verified_libraries_only(tmp_path, library_bytes, name):
    signer = Signer(tmp_path)
    p = FakePartition(tmp_path)
    part = PARTITIONS[name](p)  # type: ignore[arg-type]
    v4, v5, v3 = (_with_version(library_bytes, v) for v in (4, 5, 3))

    part.on_library(signer.message(v4, 4, signature=b"\0" * 64))  # not the manufacturer's signature
    assert part.library is None
    assert _records(p, "drug_library_refused")[-1]["reason"] == "drug library signature does not verify"

    part.on_library(signer.message(v4, 4))
    assert isinstance(part.library, DrugLibrary) and part.library.version == 4
    assert _records(p, "drug_library_installed")[-1]["version"] == 4

    part.on_library(signer.message(v3, 3))  # rollback
    assert part.library.version == 4
    assert "older than 4 (rollback)" in _records(p, "drug_library_refused")[-1]["reason"]

    part.on_library(signer.message(v5, 4))  # the envelope disagrees with what was signed
    assert part.library.version == 4
    assert "its envelope 4" in _records(p, "drug_library_refused")[-1]["reason"]

    part.on_library(signer.message(v5, 5))
    assert part.library.version == 5
    # what each partition does with the library (its controller, its monitor) has it too
    user = part.ctl if name == "pump_control" else part.monitor
    assert user is None or user.library is part.library
    assert [f["version"] for f in _records(p, "drug_library_installed")] == [4, 5]


def test_a_refused_library_installs_nothing(tmp_path, library_bytes):
    signer = Signer(tmp_path)
    key = therapy_io.load_manufacturer_key(tmp_path)
    installed: list[DrugLibrary] = []
    records: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def record(event: str, *args: Any, **fields: Any) -> None:
        records.append((event, args, fields))

    tampered = library_bytes.replace(b"hard_max: 500", b"hard_max: 5000", 1)
    assert tampered != library_bytes
    msg = signer.message(library_bytes, 4)
    assert therapy_io.install_library(key, SimpleNamespace(version=4, data=tampered, signature=msg.signature),
                                      None, record, installed.append) is None
    assert therapy_io.install_library(None, msg, None, record, installed.append) is None  # no key provisioned
    assert installed == []
    assert [(e, a) for e, a, _ in records] == [("drug_library_refused", ("warning",))] * 2
    lib = therapy_io.install_library(key, msg, None, record, installed.append)
    assert installed == [lib] and records[-1] == ("drug_library_installed", (), {"version": 4})


@pytest.mark.parametrize("module", [pump_control, safety_monitor])
def test_the_partitions_do_not_verify_a_library_themselves(module):
    tree = ast.parse(Path(module.__file__).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert "install_library" in names
    own = names & {"verify_library", "LibraryRefused", "load_drug_library"}
    assert not own, own
