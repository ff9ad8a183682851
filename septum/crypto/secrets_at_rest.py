"""Device keys and credentials encrypted at rest under a device key.

**The device key stands in for a TPM-sealed key.** On a product the key that protects secrets at rest is
sealed by a TPM (or a secure element) and released only to the device's measured boot; here it is
*simulated* by a root-only file: mode 0600, owned by root, a regular file (never a symlink), kept outside
every partition's data folder and provisioning folder (``Supervisor(device_key=...)`` refuses one inside
them). Partitions run under their own uids and cannot read it. The supervisor (root, the trusted base)
reads it at each partition start, unseals that partition's sealed files and hands the plaintext to the
partition in its boot configuration (``septum.secrets``: name -> bytes), in memory only: nothing decrypted
is ever written to disk. Someone who copies the storage without the device key (a disk image, a returned
device's flash) gets ciphertext. Someone who is root on the running device gets everything, as with a TPM
whose measured software is compromised.

Sealed file (``<name>.sealed`` beside where ``<name>`` would be)::

    MAGIC ("SEPTSEAL\\x01") | key id (8 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag

with the associated data ``MAGIC | key id | partition | 0x00 | name``: a sealed file is bound to its
partition and name, so one partition's sealed audit key cannot be moved in as another's, and a renamed or
edited file fails to open. Key id: the first 8 bytes of SHA-256 over the key.

Device key file: ``septum-device-key-1`` then one hex key per line, newest first. **Rotation**
(``rotate``): a new key is added in front (the file now holds both), every sealed file is sealed again
under it (each replaced atomically), then the old key is dropped. A crash at any point leaves every sealed
file readable by a key the file still holds; run ``rotate`` again to finish.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from septum.errors import SeptumError
from septum.staged_write import write_atomic

MAGIC = b"SEPTSEAL\x01"
KEY_FILE_HEADER = "septum-device-key-1"
SEALED_SUFFIX = ".sealed"
SECRETS_CONFIG_KEY = "septum.secrets"  # boot configuration: the partition's unsealed secrets (name -> bytes)
KEY_BYTES = 32
NONCE_BYTES = 12
MAX_SEALED = 1024 * 1024  # keys and credential files are a few kB; a larger "sealed" file is not one
MAX_KEYS = 4


class SecretsError(SeptumError, ValueError):
    """A device key or sealed file that cannot be used (the message says why)."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:8]


def _aad(kid: bytes, partition: str, name: str) -> bytes:
    return MAGIC + kid + partition.encode() + b"\x00" + name.encode()


@dataclass(frozen=True)
class DeviceKey:
    """The device key ring, newest first (more than one only during a rotation)."""

    keys: tuple[bytes, ...]
    path: Path | None = None

    @property
    def current_id(self) -> bytes:
        return key_id(self.keys[0])

    def seal(self, plaintext: bytes, partition: str, name: str) -> bytes:
        kid, nonce = key_id(self.keys[0]), secrets.token_bytes(NONCE_BYTES)
        return MAGIC + kid + nonce + AESGCM(self.keys[0]).encrypt(nonce, plaintext, _aad(kid, partition, name))

    def unseal(self, blob: bytes, partition: str, name: str) -> bytes:
        head = len(MAGIC) + 8 + NONCE_BYTES
        if len(blob) < head + 16 or not blob.startswith(MAGIC):
            raise SecretsError(f"{partition}/{name}: not a sealed file")
        kid, nonce = blob[len(MAGIC):len(MAGIC) + 8], blob[len(MAGIC) + 8:head]
        key = next((k for k in self.keys if key_id(k) == kid), None)
        if key is None:
            raise SecretsError(f"{partition}/{name}: sealed under device key {kid.hex()}, which this device "
                               f"key file ({', '.join(key_id(k).hex() for k in self.keys)}) does not hold")
        try:
            return AESGCM(key).decrypt(nonce, blob[head:], _aad(kid, partition, name))
        except InvalidTag:
            raise SecretsError(f"{partition}/{name}: does not open with the device key (altered, or sealed "
                               "for another partition or file name)") from None


def _key_text(keys: Iterable[bytes]) -> bytes:
    return ("\n".join([KEY_FILE_HEADER, *(k.hex() for k in keys)]) + "\n").encode()


def _write_key_file(path: Path, keys: Iterable[bytes], *, exclusive: bool) -> None:
    data = _key_text(keys)
    if exclusive:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        target = path
    else:  # replaced atomically, so a crash leaves the old or the new ring, never half of one
        target = path.with_name(path.name + ".tmp")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if os.geteuid() == 0:
            os.fchown(fd, 0, 0)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if target != path:
        os.replace(target, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def create_device_key(path: str | Path) -> DeviceKey:
    """A new device key file (0600, root-owned when run as root); refuses to overwrite one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = AESGCM.generate_key(bit_length=256)
    try:
        _write_key_file(p, [key], exclusive=True)
    except FileExistsError:
        raise SecretsError(f"{p}: already exists; refusing to overwrite a device key") from None
    return DeviceKey((key,), p)


def load_device_key(path: str | Path, *, require_root_owner: bool = True) -> DeviceKey:
    """Read a device key file, refusing one that others could read or replace."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise SecretsError(f"{p}: no device key file") from None
    except OSError as exc:
        raise SecretsError(f"{p}: cannot open the device key file ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretsError(f"{p}: the device key must be a regular file")
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise SecretsError(f"{p}: mode {stat.S_IMODE(st.st_mode):04o}; the device key must be 0600 (root only)")
        if require_root_owner and st.st_uid != 0:
            raise SecretsError(f"{p}: owned by uid {st.st_uid}; the device key must be owned by root")
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    lines = data.decode("ascii", "replace").split()
    if not lines or lines[0] != KEY_FILE_HEADER:
        raise SecretsError(f"{p}: not a device key file (expected {KEY_FILE_HEADER!r} first)")
    try:
        keys = tuple(bytes.fromhex(x) for x in lines[1:])
    except ValueError:
        raise SecretsError(f"{p}: a key line is not hex") from None
    if not keys or len(keys) > MAX_KEYS or any(len(k) != KEY_BYTES for k in keys):
        raise SecretsError(f"{p}: expected 1-{MAX_KEYS} keys of {KEY_BYTES} bytes")
    return DeviceKey(keys, p)


def write_sealed(path: Path, plaintext: bytes, key: DeviceKey, partition: str) -> Path:
    """Write ``path.sealed`` (0600) holding ``plaintext`` for ``partition``; ``path`` itself is never written."""
    out = path.with_name(path.name + SEALED_SUFFIX)
    write_atomic(out, key.seal(plaintext, partition, path.name))
    return out


def seal_file(path: Path, key: DeviceKey, partition: str) -> Path:
    """Seal an existing cleartext file, then overwrite and remove the cleartext."""
    out = write_sealed(path, path.read_bytes(), key, partition)
    shred(path)
    return out


def sealed_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.name.endswith(SEALED_SUFFIX) and f.is_file()
                  and not f.is_symlink()) if folder.is_dir() else []


def unseal_folder(folder: Path, key: DeviceKey, partition: str) -> tuple[dict[str, bytes], list[str]]:
    """The plaintext of every sealed file directly in ``folder`` (name without ``.sealed`` -> bytes) and,
    for each that cannot be opened, the reason. Files are opened without following symlinks (the folder
    belongs to the partition, which may have planted one)."""
    out: dict[str, bytes] = {}
    problems: list[str] = []
    for f in sealed_files(folder):
        name = f.name[: -len(SEALED_SUFFIX)]
        try:
            fd = os.open(f, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                blob = os.read(fd, MAX_SEALED + 1)
            finally:
                os.close(fd)
            if len(blob) > MAX_SEALED:
                raise SecretsError(f"{partition}/{name}: larger than {MAX_SEALED} bytes")
            out[name] = key.unseal(blob, partition, name)
        except (OSError, SecretsError) as exc:
            problems.append(str(exc))
    return out, problems


def rotate(path: str | Path, folders: Mapping[str, Path]) -> DeviceKey:
    """A new device key; every sealed file in ``folders`` (partition -> folder) sealed again under it."""
    old = load_device_key(path)
    new_key = AESGCM.generate_key(bit_length=256)
    ring = DeviceKey((new_key, *old.keys[: MAX_KEYS - 1]), old.path)
    _write_key_file(Path(path), ring.keys, exclusive=False)  # both keys: every file stays readable
    for partition, folder in folders.items():
        for f in sealed_files(Path(folder)):
            name = f.name[: -len(SEALED_SUFFIX)]
            plain = ring.unseal(f.read_bytes(), partition, name)
            write_sealed(f.with_name(name), plain, ring, partition)
    done = DeviceKey((new_key,), old.path)
    _write_key_file(Path(path), done.keys, exclusive=False)
    return done


def shred(path: Path, passes: int = 1) -> int:
    """Overwrite a regular file with random bytes (fsynced), then unlink it; returns the bytes overwritten.

    On a copy-on-write or journalling-data filesystem or flash with wear levelling, overwriting in place
    does not reach every old copy of the blocks: sealing secrets at rest is what protects them there."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        os.unlink(path)
        return 0
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        for _ in range(passes):
            os.lseek(fd, 0, os.SEEK_SET)
            left = st.st_size
            while left > 0:
                n = os.write(fd, secrets.token_bytes(min(left, 1 << 20)))
                left -= n
            os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)
    return st.st_size


def secret(config: Mapping[str, Any], data_dir: Path, name: str) -> bytes:
    """A partition's secret: unsealed by the supervisor (boot configuration), else the cleartext file of a
    device provisioned without a device key. Raises FileNotFoundError when neither exists."""
    given = config.get(SECRETS_CONFIG_KEY)
    if isinstance(given, Mapping) and isinstance(given.get(name), bytes):
        return given[name]
    if (data_dir / (name + SEALED_SUFFIX)).exists():
        raise SecretsError(f"{name} is sealed but the supervisor handed no device key's plaintext for it "
                           "(start the device with its device key)")
    return (data_dir / name).read_bytes()
