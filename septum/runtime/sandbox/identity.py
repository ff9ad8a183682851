"""A distinct uid/gid per partition, leased from a high range.

Partitions run as uids ``UID_BASE .. UID_BASE + UID_COUNT - 1`` (61000-61999 by default), with the same
number as gid. A uid is leased by creating ``/run/septum/uids/<uid>`` exclusively and writing the
supervisor's pid into it, so that concurrent runs on one host never share a uid (a shared uid would
let partitions of different runs signal each other and share RLIMIT_NPROC). Leases of supervisors that
no longer exist are reclaimed. uids that exist in the passwd database are skipped.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

UID_BASE = 61000
UID_COUNT = 1000
LEASE_DIR = Path("/run/septum/uids")


class IdentityError(RuntimeError):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_passwd(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


class UidLeases:
    def __init__(self, lease_dir: Path = LEASE_DIR, base: int = UID_BASE, count: int = UID_COUNT) -> None:
        self.lease_dir = lease_dir
        self.base = base
        self.count = count
        self.held: list[int] = []

    def _try(self, uid: int) -> bool:
        path = self.lease_dir / str(uid)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                owner = int(path.read_text() or "0")
            except (OSError, ValueError):
                return False
            if owner and _alive(owner):
                return False
            path.unlink(missing_ok=True)  # stale lease of a supervisor that has gone
            return self._try(uid)
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True

    def lease(self, n: int) -> list[int]:
        """Lease ``n`` uids; raises IdentityError when the range is exhausted."""
        self.lease_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        got: list[int] = []
        for uid in range(self.base, self.base + self.count):
            if len(got) == n:
                break
            if _in_passwd(uid):
                continue
            if self._try(uid):
                got.append(uid)
        self.held.extend(got)
        if len(got) < n:
            self.release()
            raise IdentityError(f"no free partition uids left in {self.base}..{self.base + self.count - 1}")
        return got

    def release(self) -> None:
        for uid in self.held:
            (self.lease_dir / str(uid)).unlink(missing_ok=True)
        self.held.clear()


def drop_to(uid: int, gid: int) -> None:
    """Irrevocably become uid/gid with no supplementary groups (call last in preexec_fn)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
