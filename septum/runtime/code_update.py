"""Partition code updates, the supervisor's side: check what the update service staged, then build the
runtime-owned code folder a partition is restarted with.

The update partition is less trusted than the supervisor (it parses bundles from the outside world), so
nothing it says is taken as is. Its ``Activate`` request carries the signed manifest bytes and signature;
here the supervisor

* checks the signature with the manufacturer key *it* was given at start (the provisioning folder, not the
  update partition's writable copy), that the manifest is for this target, this version and kind
  ``partition``;
* computes the staged folder's path itself (``<update data>/slots/<target>/slots/<version>``, the
  ``SlotInstaller`` layout), opens every path component without following symlinks, reads only regular
  files listed in the manifest, bounded by their signed size, and re-hashes them;
* writes exactly the bytes it hashed (never a second read that could differ) into
  ``<state>/code/<target>/<version>/``, owned by root, group = the partition's gid, read-only: the
  partition can read and import it but not change it, and no other partition can read it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from septum.errors import SeptumError
from septum.staged_write import stage_tree

STAGED_ROOT = "slots"  # under the update partition's data dir (septum.services.update_service uses it)
MAX_CODE_BYTES = 64 * 1024 * 1024  # a code bundle the supervisor copies; larger requests are refused
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
_VERSION = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,3}$")


class CodeUpdateError(SeptumError):
    """An activation that must be refused; the message is the reason."""


def version_key(version: str) -> tuple[int, ...]:
    if not _VERSION.match(version):
        raise CodeUpdateError(f"version {version[:40]!r} is not 1-4 dot-separated integers")
    return tuple(int(x) for x in version.split("."))


def check_name(target: str) -> None:
    if not _NAME.match(target):
        raise CodeUpdateError(f"target {target[:80]!r} is not a partition name")


def verify_request(target: str, version: str, manifest: bytes, signature: bytes,
                   keys: list[Ed25519PublicKey]) -> dict[str, tuple[str, int]]:
    """The signed file list {name: (sha256, size)} if the manifest is a valid, trusted code bundle for
    exactly this target and version."""
    from septum.crypto.manifest import BundleError, verify_manifest

    check_name(target)
    version_key(version)
    if not keys:
        raise CodeUpdateError("no manufacturer key was provisioned for the update service")
    try:
        m, _ = verify_manifest(manifest, signature, keys, expect_target=target)
    except BundleError as exc:
        raise CodeUpdateError(f"manifest refused: {exc}") from None
    if m.kind != "partition":
        raise CodeUpdateError(f"the signed manifest is a {m.kind} bundle, not partition code")
    if m.version != version:
        raise CodeUpdateError(f"the request names version {version}, the signed manifest {m.version}")
    total = sum(e.size for e in m.files.values())
    if total > MAX_CODE_BYTES:
        raise CodeUpdateError(f"code bundle of {total} bytes exceeds {MAX_CODE_BYTES}")
    return {name: (e.sha256, e.size) for name, e in m.files.items()}


def _open_nofollow(base_fd: int, parts: list[str], *, directory: bool) -> int:
    """Open ``parts`` under ``base_fd`` one component at a time, never following a symlink: the folder
    belongs to another uid, which could otherwise point the supervisor (root) anywhere."""
    fd = os.dup(base_fd)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            flags |= os.O_DIRECTORY if (directory or not last) else os.O_NONBLOCK  # a FIFO must not block us
            nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_staged(update_data: Path, target: str, version: str,
                files: dict[str, tuple[str, int]]) -> dict[str, bytes]:
    """Read and re-hash the staged files of ``target`` ``version``; refuse anything that differs."""
    check_name(target)
    version_key(version)
    rel = [STAGED_ROOT, target, "slots", version]
    try:
        root = os.open(update_data, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CodeUpdateError(f"update data folder unreadable: {exc.strerror}") from None
    try:
        try:
            slot = _open_nofollow(root, rel, directory=True)
        except OSError as exc:
            raise CodeUpdateError(f"no staged folder for {target} {version} ({exc.strerror})") from None
        try:
            out: dict[str, bytes] = {}
            for name, (sha, size) in sorted(files.items()):
                try:
                    fd = _open_nofollow(slot, name.split("/"), directory=False)
                except OSError as exc:
                    raise CodeUpdateError(f"staged file {name!r} cannot be opened safely "
                                          f"({exc.strerror}; symlinks are refused)") from None
                with os.fdopen(fd, "rb") as f:
                    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                        raise CodeUpdateError(f"staged file {name!r} is not a regular file")
                    data = f.read(size + 1)  # one byte more than signed shows a longer file
                if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
                    raise CodeUpdateError(f"staged file {name!r} does not match its signed hash")
                out[name] = data
            return out
        finally:
            os.close(slot)
    finally:
        os.close(root)


def write_code(code_root: Path, target: str, version: str, files: dict[str, bytes], gid: int | None) -> Path:
    """Write a partition's code folder ``code_root/<target>/<version>`` atomically (staged, renamed);
    root owns it, the partition's gid may read it, nobody else may."""
    check_name(target)
    version_key(version)
    code_root.mkdir(mode=0o711, exist_ok=True)
    os.chmod(code_root, 0o711)  # noqa: S103 - traverse only: each partition reaches its own folder
    tdir = code_root / target
    tdir.mkdir(exist_ok=True)
    _protect(tdir, gid, directory=True)
    def protect(staging: Path) -> None:
        for path in [*staging.rglob("*"), staging]:
            _protect(path, gid, directory=path.is_dir())

    return stage_tree(tdir, version, files, before_rename=protect)


def _protect(path: Path, gid: int | None, *, directory: bool) -> None:
    if gid is None:  # no uid drop on this host: every partition runs as us anyway
        os.chmod(path, 0o555 if directory else 0o444)
        return
    os.chown(path, 0, gid)
    os.chmod(path, 0o550 if directory else 0o440)


def remove_code(code_root: Path, target: str, keep: set[str]) -> None:
    """Remove the target's code folders other than ``keep`` (versions no longer needed for a return)."""
    tdir = code_root / target
    if not tdir.is_dir():
        return
    for d in tdir.iterdir():
        if d.name not in keep:
            shutil.rmtree(d, ignore_errors=True)
