"""Staged writes: a file or a folder of files appears whole or not at all. The one staged write of Septum.

``stage_tree`` writes a folder: the update service's slots (``septum.services.update_bundle``) and the
supervisor's partition code folders (``septum.runtime.code_update``) write a verified set of files into a
hidden staging folder next to the destination, flush every file, and rename the folder into place in one
step. ``write_atomic`` replaces one file the same way (the services' state, credentials, audit heads, the
anti-rollback floor). Either way a crash or a full disk leaves the old version or the new one where a
reader looks, never a half-written one, and no staging debris.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path


def stage_tree(parent: Path, version: str, files: Mapping[str, bytes], *,
               before_rename: Callable[[Path], None] | None = None) -> Path:
    """Write ``files`` (relative name -> bytes) as ``parent/version`` and return that path.

    Each file is created exclusively and fsynced; ``before_rename(staging)`` may then set owners and
    modes; an earlier folder of the same version (a failed attempt) is replaced. On any failure the
    staging folder is removed and the error raised again. The caller flushes ``parent`` if it needs the
    rename itself to be durable."""
    staging = parent / f".staging-{version}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        for name, data in files.items():
            dest = staging / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if before_rename is not None:
            before_rename(staging)
        final = parent / version
        if final.exists():  # left by an earlier attempt of the same version (rolled back, failed its check)
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` survive power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data``: a private temporary file next to it, fsynced, renamed over it, and the
    folder fsynced. ``sync=False`` skips both fsyncs (state that may be lost in a power cut, never torn).
    On any failure the temporary file is removed and the error raised again; ``path`` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked (a signal, a pipe-sized chunk)
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        fsync_dir(path.parent)
