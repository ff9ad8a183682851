"""The supervisor's own checks of staged partition code (septum.runtime.code_update), without processes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.runtime.code_update import CodeUpdateError, read_staged, verify_request, write_code
from septum.services.update_bundle import make_bundle, verify_bundle

KEY = Ed25519PrivateKey.generate()
FILES = {"pkg/__init__.py": b"VERSION = '2'\n", "pkg/util.py": b"X = 1\n"}


def signed(kind: str = "partition", target: str = "app", version: str = "2.0") -> tuple[bytes, bytes]:
    v = verify_bundle(make_bundle(KEY, target=target, kind=kind, version=version, files=FILES),
                      [KEY.public_key()])
    return v.manifest_bytes, v.signature


def stage(update_data: Path, files: dict[str, bytes] = FILES) -> Path:
    slot = update_data / "slots" / "app" / "slots" / "2.0"
    for name, data in files.items():
        (slot / name).parent.mkdir(parents=True, exist_ok=True)
        (slot / name).write_bytes(data)
    return slot


def test_verify_request_accepts_only_a_trusted_partition_manifest_for_this_target_and_version() -> None:
    m, sig = signed()
    files = verify_request("app", "2.0", m, sig, [KEY.public_key()])
    assert set(files) == set(FILES)
    with pytest.raises(CodeUpdateError, match="no manufacturer key"):
        verify_request("app", "2.0", m, sig, [])
    with pytest.raises(CodeUpdateError, match="not a trusted update key"):
        verify_request("app", "2.0", m, sig, [Ed25519PrivateKey.generate().public_key()])
    with pytest.raises(CodeUpdateError, match="altered after signing"):
        verify_request("app", "2.0", m.replace(b"app", b"apq"), sig, [KEY.public_key()])
    with pytest.raises(CodeUpdateError, match="not 'other'"):
        verify_request("other", "2.0", m, sig, [KEY.public_key()])
    with pytest.raises(CodeUpdateError, match=r"signed manifest 2\.0"):
        verify_request("app", "3.0", m, sig, [KEY.public_key()])
    with pytest.raises(CodeUpdateError, match="not partition code"):
        verify_request("app", "2.0", *signed(kind="data"), [KEY.public_key()])
    with pytest.raises(CodeUpdateError, match="unsigned"):
        verify_request("app", "2.0", m, b"", [KEY.public_key()])
    with pytest.raises(CodeUpdateError, match="not 1-4 dot-separated"):
        verify_request("app", "2.0/../x", m, sig, [KEY.public_key()])


def test_read_staged_returns_exactly_the_signed_bytes(tmp_path: Path) -> None:
    m, sig = signed()
    stage(tmp_path)
    assert read_staged(tmp_path, "app", "2.0", verify_request("app", "2.0", m, sig, [KEY.public_key()])) == FILES


@pytest.mark.parametrize("damage", ["longer", "changed", "missing", "fifo", "symlinked_dir", "symlinked_slot"])
def test_read_staged_refuses_what_differs_from_the_manifest(tmp_path: Path, damage: str) -> None:
    m, sig = signed()
    files = verify_request("app", "2.0", m, sig, [KEY.public_key()])
    slot = stage(tmp_path)
    target = slot / "pkg" / "util.py"
    if damage == "longer":
        target.write_bytes(FILES["pkg/util.py"] + b"import os\n")
    elif damage == "changed":
        target.write_bytes(b"X = 2\n")
    elif damage == "missing":
        target.unlink()
    elif damage == "fifo":
        target.unlink()
        os.mkfifo(target)  # opening must neither block nor be read as code
    elif damage == "symlinked_dir":  # the genuine files, reached through a symlinked directory
        real = tmp_path / "elsewhere"
        (slot / "pkg").rename(real)
        (slot / "pkg").symlink_to(real)
    else:
        real = tmp_path / "elsewhere"
        slot.rename(real)
        slot.symlink_to(real)
    with pytest.raises(CodeUpdateError) as exc:
        read_staged(tmp_path, "app", "2.0", files)
    assert "staged" in str(exc.value)


def test_read_staged_refuses_names_that_would_leave_the_slot(tmp_path: Path) -> None:
    with pytest.raises(CodeUpdateError, match="not a partition name"):
        read_staged(tmp_path, "../app", "2.0", {})
    with pytest.raises(CodeUpdateError, match="dot-separated"):
        read_staged(tmp_path, "app", "../2.0", {})


def test_code_folder_is_read_only_and_replaced_whole(tmp_path: Path) -> None:
    root = tmp_path / "code"
    gid = None if os.geteuid() != 0 else 4242
    final = write_code(root, "app", "2.0", FILES, gid)
    assert (final / "pkg" / "util.py").read_bytes() == b"X = 1\n"
    st = (final / "pkg" / "util.py").stat()
    assert stat.S_IMODE(st.st_mode) == (0o440 if gid else 0o444)
    if gid:
        assert st.st_uid == 0 and st.st_gid == gid
    again = write_code(root, "app", "2.0", {"pkg/__init__.py": b""}, gid)  # a rolled-back version retried
    assert sorted(p.name for p in (again / "pkg").iterdir()) == ["__init__.py"]
    assert [p.name for p in (root / "app").iterdir()] == ["2.0"]  # no staging folder left behind
