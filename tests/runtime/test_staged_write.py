"""The one staged write (septum/staged_write.py): a crash at any point before the rename leaves the old file or
folder where readers look, the new one nowhere, and no staging debris; after the rename, the new one.

A crash is simulated by the step failing (``os.replace``, ``os.fsync`` or a write raising): the helpers must
clean up and re-raise, and the callers that hold durable state (the update service's anti-rollback floor,
the supervisor's partition code folders, the services' state files, sealed secrets) go through them.
"""

from __future__ import annotations

import ast
import errno
import os
from pathlib import Path

import pytest

import septum
from septum import staged_write
from septum.runtime import code_update
from septum.services.service_io import write_state
from septum.services.update_bundle import VersionStore

SEPTUM = Path(septum.__file__).resolve().parent


class Crash(Exception):
    """Stands for the process dying at this point."""


def _crash(*_a: object, **_k: object) -> None:
    raise Crash


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# ------------------------------------------------------------------------------------------- files
def test_a_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    staged_write.write_atomic(target, b"one")
    staged_write.write_atomic(target, b"two" * 100_000)
    assert target.read_bytes() == b"two" * 100_000
    assert _listing(tmp_path) == {"state.json"}
    assert target.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("where", ["rename", "fsync", "write"])
def test_a_crash_before_the_rename_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       where: str) -> None:
    target = tmp_path / "state.json"
    staged_write.write_atomic(target, b"old")
    if where == "write":  # the disk fills up in the middle of the data
        real = os.write
        calls = []

        def short_then_full(fd: int, data: object) -> int:
            calls.append(1)
            if len(calls) == 1:
                return real(fd, bytes(memoryview(data)[:2]))  # type: ignore[arg-type]
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(staged_write.os, "write", short_then_full)
    else:
        monkeypatch.setattr(staged_write.os, "replace" if where == "rename" else "fsync", _crash)
    with pytest.raises((Crash, OSError)):
        staged_write.write_atomic(target, b"new data")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert _listing(tmp_path) == {"state.json"}, "the temporary file was left behind"


def test_a_short_write_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    monkeypatch.setattr(staged_write.os, "write", lambda fd, data: real(fd, bytes(memoryview(data)[:3])))
    staged_write.write_atomic(tmp_path / "f", b"0123456789")
    monkeypatch.undo()
    assert (tmp_path / "f").read_bytes() == b"0123456789"


def test_the_callers_keep_the_old_state_on_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = VersionStore(tmp_path / "versions.json")
    store.raise_floor("ui", "1.0")
    write_state(tmp_path / "feed.json", b'{"durable": 1}')
    monkeypatch.setattr(staged_write.os, "replace", _crash)
    with pytest.raises(Crash):
        store.raise_floor("ui", "2.0")
    with pytest.raises(Crash):
        write_state(tmp_path / "feed.json", b'{"durable": 2}', sync=False)
    monkeypatch.undo()
    assert store.accepted("ui") == "1.0"
    assert (tmp_path / "feed.json").read_bytes() == b'{"durable": 1}'
    assert _listing(tmp_path) == {"versions.json", "feed.json"}
    store.raise_floor("ui", "2.0")
    assert store.accepted("ui") == "2.0"


# ----------------------------------------------------------------------------------------- folders
def test_a_crash_at_the_folder_rename_leaves_the_old_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    staged_write.stage_tree(tmp_path, "1.0", {"app.py": b"v1", "lib/util.py": b"u1"})
    monkeypatch.setattr(staged_write.os, "replace", _crash)
    with pytest.raises(Crash):
        staged_write.stage_tree(tmp_path, "2.0", {"app.py": b"v2", "lib/util.py": b"u2"})
    monkeypatch.undo()
    assert _listing(tmp_path) == {"1.0"}, "a staging folder or a half version was left"
    assert (tmp_path / "1.0" / "app.py").read_bytes() == b"v1"
    assert (tmp_path / "1.0" / "lib" / "util.py").read_bytes() == b"u1"


def test_a_crash_while_writing_the_files_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fsyncs = []

    def second_fsync_fails(fd: int) -> None:
        fsyncs.append(fd)
        if len(fsyncs) == 2:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(staged_write.os, "fsync", second_fsync_fails)
    with pytest.raises(OSError):
        staged_write.stage_tree(tmp_path, "2.0", {"a": b"1", "b": b"2", "c": b"3"})
    assert not _listing(tmp_path)


def test_partition_code_is_written_through_the_staged_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = tmp_path / "code"
    code_update.write_code(code, "ui", "1.0", {"ui.py": b"print(1)\n"}, gid=None)
    monkeypatch.setattr(staged_write.os, "replace", _crash)
    with pytest.raises(Crash):
        code_update.write_code(code, "ui", "2.0", {"ui.py": b"print(2)\n"}, gid=None)
    monkeypatch.undo()
    assert _listing(code / "ui") == {"1.0"}
    assert (code / "ui" / "1.0" / "ui.py").read_bytes() == b"print(1)\n"


# ------------------------------------------------------------------------------------- one helper
def test_no_other_module_renames_a_temporary_file_into_place_by_hand() -> None:
    """Every fsync-then-rename of the services, the runtime's code folders and sealed secrets is the helper's;
    the ``os.replace`` / ``os.rename`` calls left are listed with why (``Path.replace`` is not looked for)."""
    own_protocols = {
        "services/audit_retention.py",  # log and head swapped together under a marker, finished at the next run
        "services/update_bundle.py",  # the current/previous symlink switch (a symlink, not a written file)
        "crypto/secrets_at_rest.py",  # the key ring: created exclusive or replaced, chowned to root
        "sel4/sdk.py",  # an unpacked SDK folder in the build cache, not device state
    }
    offenders = []
    for path in sorted(SEPTUM.rglob("*.py")):
        rel = path.relative_to(SEPTUM).as_posix()
        if rel == "staged_write.py" or rel in own_protocols:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "replace", "rename") and isinstance(node.func.value, ast.Name) and node.func.value.id == "os":
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"write these through septum.staged_write: {offenders}"
