"""A distinct uid/gid per partition, leased from a high range.

Partitions run as uids ``UID_BASE .. UID_BASE + UID_COUNT - 1`` (61000-61999 by default), with the same
number as gid. A uid is leased by a file ``/run/septum/uids/<uid>`` holding the supervisor's pid, so that
concurrent runs on one host never share a uid (a shared uid would let partitions of different runs signal
each other and share RLIMIT_NPROC). uids that exist in the passwd database are skipped.

A lease cannot be stolen:

- the lease file is complete before it is visible: the pid is written to a private temporary file, which
  is then hard-linked to the lease name (``link`` fails if the name exists, atomically), so no supervisor
  ever reads an empty lease;
- every lease, reclaim and release runs under an exclusive ``flock`` of ``<dir>/.lock``, so two
  supervisors that both find the lease of a dead supervisor cannot both delete it and both take the uid
  (without the lock, the second would delete the first one's fresh lease);
- a lease is reclaimed only when its pid no longer exists. A lease file that holds no pid (left by an older
  Septum that created the file before writing it) is reclaimed only once it is ``STALE_EMPTY_S`` old, so
  a writer that is still between create and write keeps it.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from septum.errors import SeptumError

UID_BASE = 61000
UID_COUNT = 1000
LEASE_DIR = Path("/run/septum/uids")
LOCK_NAME = ".lock"
STALE_EMPTY_S = 10.0


class IdentityError(SeptumError, RuntimeError):
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


def _owner(path: Path) -> int | None:
    """The pid in a lease file; None when it holds none; raises FileNotFoundError when there is no lease."""
    text = path.read_text()
    try:
        pid = int(text)
    except ValueError:
        return None
    return pid if pid > 0 else None


class UidLeases:
    def __init__(self, lease_dir: Path = LEASE_DIR, base: int = UID_BASE, count: int = UID_COUNT) -> None:
        self.lease_dir = lease_dir
        self.base = base
        self.count = count
        self.held: list[int] = []

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.lease_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lease_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def _create(self, path: Path) -> bool:
        """Atomically create ``path`` holding our pid; False if it exists."""
        tmp = self.lease_dir / f".tmp.{os.getpid()}.{path.name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def _try(self, uid: int) -> bool:
        """Take ``uid`` if free or stale (caller holds the lock)."""
        path = self.lease_dir / str(uid)
        if self._create(path):
            return True
        try:
            owner = _owner(path)
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return self._create(path)  # released meanwhile by a supervisor that did not take the lock
        except OSError:
            return False
        if owner is not None and _alive(owner):
            return False
        if owner is None and age < STALE_EMPTY_S:
            return False
        path.unlink(missing_ok=True)  # the lease of a supervisor that has gone
        return self._create(path)

    def lease(self, n: int) -> list[int]:
        """Lease ``n`` uids; raises IdentityError when the range is exhausted."""
        got: list[int] = []
        with self._locked():
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
        """Give back our leases; a lease file that no longer holds our pid is someone else's and stays."""
        if not self.held:
            return
        me = os.getpid()
        with self._locked():
            for uid in self.held:
                path = self.lease_dir / str(uid)
                try:
                    if _owner(path) == me:
                        path.unlink()
                except FileNotFoundError:
                    pass
        self.held.clear()


def drop_to(uid: int, gid: int) -> None:
    """Irrevocably become uid/gid with no supplementary groups (call last in preexec_fn)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
