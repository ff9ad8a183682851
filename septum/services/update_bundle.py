"""Signed update bundles, anti-rollback, and staged installation with an atomic switch.

Bundle file::

    MAGIC | msgpack {manifest: bytes, signature: bytes, files: {name: bytes}}

``manifest`` is itself msgpack (target, kind, version, file SHA-256 hashes and sizes, key id) and the
Ed25519 signature covers a domain string plus exactly those bytes, so nothing outside the signed bytes
decides what gets installed. Verification checks, in order: framing, signature by a trusted key, manifest
fields, target, the exact set of files, and every hash; the first failure is the reason given.

Installation (``SlotInstaller``) stages files into ``slots/<version>``, switches the ``current`` symlink
with one ``rename`` (atomic on POSIX), runs the health check, and switches back if it fails. The
anti-rollback floor rises only once a version has passed its health check.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from septum.crypto.keys import key_id
from septum.crypto.manifest import (  # the signed manifest's format and its signature check
    MAX_BUNDLE,
    SIGN_DOMAIN,
    BundleError,
    FileEntry,
    Manifest,
    Version,
    check_file_set,
    check_no_duplicates,
    check_target,
    parse_version,
    verify_manifest,
)
from septum.staged_write import fsync_dir, stage_tree, write_atomic

MAGIC = b"SEPTUPD\x01"


class _Container(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    manifest: bytes
    signature: bytes
    files: dict[str, bytes]


@dataclass(frozen=True)
class VerifiedBundle:
    manifest: Manifest
    manifest_version: Version
    files: dict[str, bytes]
    # the signed bytes, kept so a more trusted party (the supervisor activating partition code) can check
    # the signature and the staged files itself instead of trusting whoever staged them
    manifest_bytes: bytes = b""
    signature: bytes = b""


def make_bundle(
    private_key: Ed25519PrivateKey, *, target: str, kind: str, version: str, files: dict[str, bytes],
    created: float | None = None,
) -> bytes:
    check_target(target)
    parse_version(version)
    if kind not in ("partition", "data"):
        raise BundleError(f"kind {kind!r} is not 'partition' or 'data'")
    if not files:
        raise BundleError("a bundle needs at least one file")
    check_file_set({n: len(d) for n, d in files.items()})
    manifest = Manifest(
        format=1, target=target, kind=kind, version=version,  # type: ignore[arg-type]
        created=time.time() if created is None else created,
        key_id=key_id(private_key.public_key()).hex(),
        files={n: FileEntry(hashlib.sha256(d).hexdigest(), len(d)) for n, d in sorted(files.items())},
    )
    raw = msgspec.msgpack.encode(manifest)
    sig = private_key.sign(SIGN_DOMAIN + raw)
    return MAGIC + msgspec.msgpack.encode(_Container(raw, sig, dict(files)))


def make_bundle_from_paths(
    private_key: Ed25519PrivateKey, *, target: str, kind: str, version: str, paths: Sequence[Path],
    base: Path | None = None,
) -> bytes:
    """Sign regular files into a bundle. A symbolic link (the file, or a folder between ``base`` and it), a
    FIFO, a device or a file outside ``base`` is refused: what is packed is exactly what was named."""
    files: dict[str, bytes] = {}
    base_abs = Path(os.path.abspath(base)) if base is not None else None
    if base_abs is not None and not base_abs.is_dir():
        raise BundleError(f"--base {base}: not a folder")
    total = 0
    for p in paths:
        if base_abs is not None:
            rel = _relative_to_base(Path(os.path.abspath(p)), base_abs, p, base)  # type: ignore[arg-type]
            name = rel.as_posix()
            parts = list(rel.parts)
            anchor = base_abs
        else:
            name = p.name
            parts = [p.name]
            anchor = Path(os.path.abspath(p)).parent
        content = _read_plain_file(anchor, parts, p)
        total += len(content)
        if total > MAX_BUNDLE:
            raise BundleError(f"the files add up to more than the {MAX_BUNDLE}-byte bundle limit")
        if name in files:
            raise BundleError(f"{p}: two files would be named {name!r} in the bundle (use --base)")
        files[name] = content
    return make_bundle(private_key, target=target, kind=kind, version=version, files=files)


def _relative_to_base(p_abs: Path, base_abs: Path, p: Path, base: Path) -> Path:
    # lexically, so that a symlink cannot make a path outside the folder look inside it (or the reverse)
    try:
        rel = p_abs.relative_to(base_abs)
    except ValueError:
        raise BundleError(f"{p}: not under --base {base}") from None
    if not rel.parts or ".." in rel.parts:
        raise BundleError(f"{p}: not a file under --base {base}")
    return rel


def _read_plain_file(anchor: Path, parts: list[str], shown: Path) -> bytes:
    """Read ``anchor/parts...`` without following a symlink at any step, and only if it is a regular file."""
    try:
        fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise BundleError(f"{shown}: cannot open its folder ({exc.strerror})") from None
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                raise BundleError(f"{shown}: no such file") from None
            if stat.S_ISLNK(st.st_mode):
                where = "is" if last else f"goes through {'/'.join(parts[:i + 1])!r}, which is"
                raise BundleError(f"{shown} {where} a symbolic link; a bundle takes regular files only")
            if not last and not stat.S_ISDIR(st.st_mode):
                raise BundleError(f"{shown}: no such file")
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK if last else os.O_DIRECTORY)
            nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, device or socket)"
            raise BundleError(f"{shown} is {kind}; a bundle takes regular files only")
        if st.st_size > MAX_BUNDLE:
            raise BundleError(f"{shown}: larger than the {MAX_BUNDLE}-byte bundle limit")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_BUNDLE + 1)
        if len(data) > MAX_BUNDLE:
            raise BundleError(f"{shown}: larger than the {MAX_BUNDLE}-byte bundle limit")
        return data
    except OSError as exc:
        raise BundleError(f"{shown}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)


def verify_bundle(
    data: bytes, trusted: Iterable[Ed25519PublicKey], *, expect_target: str | None = None
) -> VerifiedBundle:
    if len(data) > MAX_BUNDLE:
        raise BundleError(f"bundle of {len(data)} bytes exceeds the {MAX_BUNDLE}-byte limit")
    if not data.startswith(MAGIC):
        raise BundleError("not a Septum update bundle (bad magic)")
    try:
        box = msgspec.msgpack.decode(data[len(MAGIC):], type=_Container)
    except msgspec.DecodeError as exc:
        raise BundleError(f"malformed bundle: {exc}") from None
    if not box.signature:
        raise BundleError("unsigned bundle")
    manifest, version = verify_manifest(box.manifest, box.signature, trusted, expect_target=expect_target)
    check_no_duplicates(data[len(MAGIC):], box.files, "bundle")
    missing = sorted(set(manifest.files) - set(box.files))
    extra = sorted(set(box.files) - set(manifest.files))
    if missing:
        raise BundleError(f"file {missing[0]!r} is in the manifest but not in the bundle")
    if extra:
        raise BundleError(f"file {extra[0]!r} is in the bundle but not in the signed manifest")
    for name, entry in manifest.files.items():
        content = box.files[name]
        if len(content) != entry.size or hashlib.sha256(content).hexdigest() != entry.sha256:
            raise BundleError(f"file {name!r} does not match its signed hash")
    return VerifiedBundle(manifest, version, box.files, box.manifest, box.signature)


# ---------------------------------------------------------------------------------------------- install


class VersionStore:
    """Per-target anti-rollback floor: the highest version that passed its health check. Only rises."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=dict[str, str])
        except (OSError, msgspec.DecodeError) as exc:
            # Failing closed: without the floor we cannot tell an old bundle from a new one.
            raise BundleError(f"{self.path}: anti-rollback state unreadable ({exc})") from None

    def accepted(self, target: str) -> str | None:
        return self._load().get(target)

    def floor(self, target: str) -> Version | None:
        v = self.accepted(target)
        return parse_version(v) if v else None

    def raise_floor(self, target: str, version: str) -> None:
        state = self._load()
        old = state.get(target)
        if old is not None and parse_version(old) >= parse_version(version):
            return
        state[target] = version
        write_atomic(self.path, msgspec.json.encode(state), 0o644)


InstallStatus = Literal["installed", "rolled-back", "refused"]


@dataclass(frozen=True)
class InstallResult:
    status: InstallStatus
    version: str | None  # the version now running
    reason: str = ""


HealthCheck = Callable[[Path], bool]


@dataclass(frozen=True)
class Staged:
    """A bundle staged and switched to, waiting for its health check (``SlotInstaller.finish``)."""

    verified: VerifiedBundle
    running: str | None  # the version to return to if the check fails


class SlotInstaller:
    """Installs bundles for one target under ``root/<target>/``: ``slots/<version>/``, ``current`` and
    ``previous`` symlinks. The caller (the update partition) restarts the target after a switch."""

    def __init__(self, root: Path, target: str, trusted: Sequence[Ed25519PublicKey], store: VersionStore):
        check_target(target)
        self.target = target
        self.dir = Path(root) / target
        self.slots = self.dir / "slots"
        self.current_link = self.dir / "current"
        self.previous_link = self.dir / "previous"
        self.trusted = list(trusted)
        self.store = store
        self.slots.mkdir(parents=True, exist_ok=True)

    def current_version(self) -> str | None:
        try:
            return os.readlink(self.current_link).rsplit("/", 1)[-1]
        except FileNotFoundError:
            return None

    def current_path(self) -> Path | None:
        v = self.current_version()
        return self.slots / v if v else None

    def _point(self, link: Path, version: str | None) -> None:
        if version is None:
            link.unlink(missing_ok=True)
        else:
            tmp = link.with_name(f".{link.name}.{secrets.token_hex(4)}")
            os.symlink(f"slots/{version}", tmp)
            os.replace(tmp, link)  # the switch: one rename, so readers see the old or the new, never neither
        fsync_dir(self.dir)

    def _stage(self, verified: VerifiedBundle) -> Path:
        version = verified.manifest.version
        # verify_manifest already refused every file set that cannot be one tree; this is the second line
        # for what only the file system can say (a full disk, a name it refuses)
        check_file_set(verified.manifest.files)
        try:
            final = stage_tree(self.slots, version, verified.files)
        except OSError as exc:
            raise BundleError(f"cannot stage version {version}: {exc.strerror or exc}") from None
        fsync_dir(self.slots)
        return final

    def _run_health(self, health_check: HealthCheck, path: Path) -> tuple[bool, str]:
        try:
            return (bool(health_check(path)), "health check failed")
        except Exception as exc:  # any crash of the check is a failed check, never a half-installed device
            return (False, f"health check raised {type(exc).__name__}: {exc}")

    def begin(self, bundle: bytes) -> Staged | InstallResult:
        """Verify, check anti-rollback, stage and switch ``current``; a refusal is an ``InstallResult``.
        The caller then runs the health check, possibly elsewhere and later (partition code is checked by
        the supervisor), and calls ``finish``: the floor does not rise before that."""
        running = self.current_version()
        try:
            verified = verify_bundle(bundle, self.trusted, expect_target=self.target)
            floor = self.store.floor(self.target)
            for have, what in ((floor, "accepted"), (parse_version(running) if running else None, "running")):
                if have is not None and verified.manifest_version <= have:
                    raise BundleError(
                        f"version {verified.manifest.version} is not newer than the {what} version "
                        f"{'.'.join(map(str, have))} (anti-rollback)"
                    )
            self._stage(verified)
        except BundleError as exc:
            return InstallResult("refused", running, str(exc))
        self._point(self.current_link, verified.manifest.version)
        return Staged(verified, running)

    def finish(self, staged: Staged, ok: bool, reason: str = "health check failed") -> InstallResult:
        new, running = staged.verified.manifest.version, staged.running
        if not ok:
            self._point(self.current_link, running)
            return InstallResult("rolled-back", running, f"{new}: {reason}; returned to {running or 'nothing'}")
        self.store.raise_floor(self.target, new)
        self._point(self.previous_link, running)
        self._prune(keep={new, running})
        return InstallResult("installed", new)

    def install(self, bundle: bytes, health_check: HealthCheck) -> InstallResult:
        staged = self.begin(bundle)
        if isinstance(staged, InstallResult):
            return staged
        ok, reason = self._run_health(health_check, self.slots / staged.verified.manifest.version)
        return self.finish(staged, ok, reason)

    def boot_check(self, health_check: HealthCheck) -> InstallResult:
        """After a power loss in the middle of an install, ``current`` may name a version that never
        passed its health check: check it now and fall back to ``previous`` if it fails."""
        running = self.current_version()
        floor = self.store.floor(self.target)
        if running is None or (floor is not None and parse_version(running) <= floor):
            return InstallResult("installed", running)
        ok, reason = self._run_health(health_check, self.slots / running)
        if ok:
            self.store.raise_floor(self.target, running)
            return InstallResult("installed", running)
        # The floor is the last version that passed its check, i.e. the one that ran before the switch.
        accepted = self.store.accepted(self.target)
        fallback = accepted if accepted and (self.slots / accepted).is_dir() else None
        self._point(self.current_link, fallback)
        return InstallResult("rolled-back", fallback, f"{running}: {reason}")

    def _prune(self, keep: set[str | None]) -> None:
        for slot in self.slots.iterdir():
            if slot.name not in keep:
                shutil.rmtree(slot, ignore_errors=True)
