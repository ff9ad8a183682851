"""The signed manifest of an update bundle, and the check of its signature.

The manifest (msgpack: target, kind, version, the SHA-256 hash and size of every file, key id) is what an
update's Ed25519 signature covers, with a domain string in front. Both the update service (installing a
bundle) and the runtime (the supervisor activating partition code, which re-checks what the update
partition staged instead of trusting it) verify it here; neither imports the other for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from septum.errors import SeptumError

from .keys import key_id

MAX_BUNDLE = 256 * 1024 * 1024
MAX_FILES = 4096
MAX_DEPTH = 16  # folders in a file name
SIGN_DOMAIN = b"septum-update-manifest-v1\x00"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._\-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

BundleKind = Literal["partition", "data"]
Version = tuple[int, ...]


class BundleError(SeptumError):
    """A bundle (or a request to make one) that must be refused; the message is the reason."""


class FileEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sha256: str
    size: int


class Manifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: int
    target: str
    kind: BundleKind
    version: str
    created: float
    key_id: str
    files: dict[str, FileEntry]


def parse_version(text: str) -> Version:
    """Dotted non-negative integers (1 to 4 parts); compared as tuples, so 1.10 > 1.9."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(p.isdigit() and len(p) <= 9 for p in parts):
        raise BundleError(f"version {text!r} is not 1-4 dot-separated integers (e.g. 1.4.2)")
    return tuple(int(p) for p in parts)


def check_relpath(name: str) -> None:
    """File names inside a bundle: relative, no '..', no hidden tricks, so staging stays in its slot."""
    parts = name.split("/")
    if len(name) > 512 or not all(_PATH_PART.fullmatch(p) for p in parts) or any(p in {".", ".."} for p in parts):
        raise BundleError(f"file name {name!r} is not a plain relative path")


def check_file_set(files: dict[str, FileEntry] | dict[str, int]) -> None:
    """Refuse a set of file names that cannot be staged as one tree, before anything is written.

    Each name must pass ``check_relpath`` (ASCII only, so Unicode look-alikes and normalisation forms
    cannot make two names one file). Two names may not be the same file on a case-insensitive file system
    (``Main.py`` and ``main.py``, or folders ``Lib/`` and ``lib/``), and no name may be both a file and a
    folder (``a`` and ``a/b``). Sizes
    and hashes must be well formed and the total must fit in a bundle.
    """
    if len(files) > MAX_FILES:
        raise BundleError(f"too many files ({len(files)} > {MAX_FILES})")
    folded: dict[str, str] = {}
    for name in sorted(files):
        check_relpath(name)
        if name.count("/") >= MAX_DEPTH:
            raise BundleError(f"file name {name!r} is nested deeper than {MAX_DEPTH} folders")
        key = name.casefold()
        if key in folded:
            raise BundleError(f"file names {folded[key]!r} and {name!r} differ only in case")
        folded[key] = name
    folders: dict[str, str] = {}  # folded folder path -> as first spelled
    for key, name in folded.items():
        parts = key.split("/")
        spelled = name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in folded:
                raise BundleError(f"{folded[parent]!r} is a file, but {name!r} needs it to be a folder")
            # one folder or two, depending on the file system: 'Lib/a' and 'lib/b'
            as_spelled = "/".join(spelled[:i])
            if folders.setdefault(parent, as_spelled) != as_spelled:
                raise BundleError(f"folders {folders[parent]!r} and {as_spelled!r} differ only in case")
    total = 0
    for name, entry in files.items():
        size = entry.size if isinstance(entry, FileEntry) else entry
        if isinstance(entry, FileEntry) and not _SHA256.fullmatch(entry.sha256):
            raise BundleError(f"file {name!r}: {entry.sha256[:80]!r} is not a SHA-256 hash")
        if size < 0:
            raise BundleError(f"file {name!r}: negative size {size}")
        total += size
    if total > MAX_BUNDLE:
        raise BundleError(f"files total {total} bytes, more than the {MAX_BUNDLE}-byte bundle limit")


def _map_len(raw: bytes) -> int:
    """Entries a msgpack map header declares; more than the decoded dict holds means duplicate keys."""
    b = raw[0] if raw else 0
    if 0x80 <= b <= 0x8F:
        return b & 0x0F
    if b == 0xDE and len(raw) >= 3:
        return int.from_bytes(raw[1:3], "big")
    if b == 0xDF and len(raw) >= 5:
        return int.from_bytes(raw[1:5], "big")
    return -1


class _RawFiles(msgspec.Struct, frozen=True):
    files: msgspec.Raw


def check_no_duplicates(raw: bytes, decoded: Mapping[str, object], what: str) -> None:
    # msgspec keeps the last of two equal keys silently; a signed list naming a file twice is ambiguous
    try:
        files = msgspec.msgpack.decode(raw, type=_RawFiles).files
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BundleError(f"malformed {what}: {exc}") from None
    if _map_len(bytes(files)) != len(decoded):
        raise BundleError(f"the {what} names a file more than once")


def check_target(target: str) -> None:
    if not _NAME.fullmatch(target):
        raise BundleError(f"target {target!r} is not a partition or data item name")


def verify_manifest(
    raw: bytes, signature: bytes, trusted: Iterable[Ed25519PublicKey], *, expect_target: str | None = None
) -> tuple[Manifest, Version]:
    """Check a manifest's signature by a trusted key and its fields (target, version, file names); the
    manifest then says exactly which files, with which hashes, make up the bundle."""
    if not signature:
        raise BundleError("unsigned bundle")
    keys = list(trusted)
    for k in keys:
        try:
            k.verify(signature, SIGN_DOMAIN + raw)
            break
        except InvalidSignature:
            continue
    else:
        try:
            claimed = msgspec.msgpack.decode(raw, type=Manifest).key_id
        except (msgspec.DecodeError, msgspec.ValidationError):
            claimed = "?"
        if claimed not in {key_id(k).hex() for k in keys}:
            raise BundleError(f"signed by key {claimed}, which is not a trusted update key")
        raise BundleError("bad signature: the manifest was altered after signing")
    try:
        manifest = msgspec.msgpack.decode(raw, type=Manifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BundleError(f"malformed manifest: {exc}") from None
    if manifest.format != 1:
        raise BundleError(f"unsupported manifest format {manifest.format}")
    check_target(manifest.target)
    version = parse_version(manifest.version)
    if expect_target is not None and manifest.target != expect_target:
        raise BundleError(f"bundle is for {manifest.target!r}, not {expect_target!r}")
    check_no_duplicates(raw, manifest.files, "signed manifest")
    check_file_set(manifest.files)
    return manifest, version
