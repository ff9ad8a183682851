"""Write a folder of files so that it appears whole or not at all: the one staged write of Septum.

Used by the update service's slots (``septum.services.update_bundle``) and by the supervisor's partition
code folders (``septum.runtime.code_update``): both write a verified set of files into a hidden staging
folder next to the destination, flush every file, and rename the folder into place in one step, so a
crash or a full disk never leaves a half-written version where a reader could find it.
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
