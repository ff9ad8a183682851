"""Decommissioning a device: a final audit anchor exported, then every secret and record on it erased.

``decommission(state_dir, anchor_out, ...)``:

1. **Anchor first.** The audit log in the device's audit data folder is verified with its public key and,
   only if it is whole, an anchor for its last seal is written to ``anchor_out`` (which must lie outside
   everything that is erased): whoever holds the log's exported copies can later prove they are the
   device's complete record up to the end. A log that does not verify stops the erase, unless the
   operator passes ``without_anchor`` (the reason is printed either way).
2. **Erase.** Every regular file under the state folder (network settings, TLS and audit keys, sealed
   secrets, credentials, the drug library and its slots, the outbound event buffer with its PHI, the audit
   log, partition logs, the supervisor's event stream, installed code) and under each extra folder given
   (the provisioning output) is overwritten with random bytes, flushed and unlinked. A data folder still
   loop-mounted from its disk image (a run that did not tear down) is erased inside the image, unmounted,
   and then the image itself is overwritten (its allocated extents; holes hold nothing) and unlinked. The
   device key file, if given, is overwritten and unlinked last: that is a crypto-erase of any sealed copy
   the overwrite could not reach (flash wear levelling, copy-on-write and journalling filesystems keep old
   blocks that no overwrite in place touches; only the sealing protects those).
3. The report says what was erased, by kind, with sizes.

Refuses (``DecommissionError``) a folder that is not a Septum state folder, an anchor path inside the area
to erase, and a device whose partitions are still running (``--force`` is not offered: stop it first).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from septum.crypto.keys import KeyFileError, key_id, load_public_key
from septum.crypto.secrets_at_rest import SEALED_SUFFIX
from septum.errors import SeptumError
from septum.staged_write import write_atomic

from .audit_anchor import Anchor
from .audit_log import AuditError, verify

KEY_NAMES = {"credentials.json", "machine_pins.json", "lockout.json", "replay.json", "hospital-ca.pem",
             "server.pem", "manufacturer.pub", "audit.pub"}
NETWORK_NAMES = {"hospital.json"}
LOG_NAMES = {"events.jsonl", "supervisor_feed.json"}


class DecommissionError(SeptumError, ValueError):
    """The device cannot be decommissioned as asked (the message says why); nothing was erased."""


@dataclass
class Erased:
    kind: str
    path: Path
    size: int


@dataclass
class Report:
    anchor: Anchor | None = None
    anchor_path: Path | None = None
    anchor_note: str = ""
    erased: list[Erased] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def by_kind(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for e in self.erased:
            n, size = out.get(e.kind, (0, 0))
            out[e.kind] = (n + 1, size + e.size)
        return out


def kind_of(path: Path) -> str:
    """What a file on the device is, for the report (the erase treats every file alike)."""
    name = path.name[: -len(SEALED_SUFFIX)] if path.name.endswith(SEALED_SUFFIX) else path.name
    parts = set(path.parts)
    if path.suffix == ".img" and "disks" in parts:
        return "data disk images"
    if name.endswith(".key") or name in KEY_NAMES or path.name.endswith(SEALED_SUFFIX):
        return "keys and credentials"
    if name in NETWORK_NAMES:
        return "network settings"
    if "drug_library" in parts or name.startswith("drug_library") or name == "versions.json":
        return "drug library"
    if name in LOG_NAMES or "logs" in parts or "outbound" in parts or name.startswith("audit.log") \
            or name.endswith(".head"):
        return "logs and buffered events (PHI)"
    if "code" in parts or "slots" in parts:
        return "installed code"
    return "other device data"


def _overwrite_extents(fd: int, size: int) -> int:
    """Overwrite the allocated ranges of a (possibly sparse) file; returns the bytes written."""
    written, pos = 0, 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # no data after pos (ENXIO)
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        os.lseek(fd, start, os.SEEK_SET)
        left = end - start
        while left > 0:
            n = os.write(fd, secrets.token_bytes(min(left, 1 << 20)))
            left -= n
            written += n
        pos = end
    return written


def erase_file(path: Path) -> int:
    """Overwrite (allocated extents, random bytes, fsynced) and unlink; returns the file's size."""
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            _overwrite_extents(fd, st.st_size)
            os.fsync(fd)
        finally:
            os.close(fd)
    os.unlink(path)
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _mounts() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                out[fields[4].encode().decode("unicode_escape")] = fields[fields.index("-") + 2]
    except (OSError, ValueError):
        return {}
    return out


def _running_partitions(state_dir: Path) -> list[str]:
    """Processes whose working directory or open files are inside the state folder (a running device)."""
    root = str(state_dir.resolve()) + "/"
    busy = []
    for pid in (d for d in os.listdir("/proc") if d.isdigit()):
        if int(pid) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if (cwd + "/").startswith(root):
            busy.append(pid)
    return busy


def _audit_log(state_dir: Path) -> tuple[Path, Path] | None:
    """(log, public key) of the device's audit service: ``data/<audit>/audit.log`` with ``audit.pub``."""
    for log in sorted((state_dir / "data").glob("*/audit.log")):
        return log, log.parent / "audit.pub"
    return None


def export_anchor(state_dir: Path, anchor_out: Path, audit_pub: Path | None) -> tuple[Anchor | None, str]:
    found = _audit_log(state_dir)
    if found is None:
        return None, "no audit log on the device"
    log, pub = found
    pub = audit_pub or pub
    try:
        key = load_public_key(pub)
    except KeyFileError as exc:
        return None, f"audit public key unusable: {exc}"
    try:
        res = verify(log, key)
    except AuditError as exc:
        return None, f"the audit log cannot be read: {exc}"
    if res.damage is not None or res.last_checkpoint_seq < 0:
        return None, f"the audit log does not verify: {res.damage.describe() if res.damage else 'no seal'}"
    anchor = Anchor(res.last_checkpoint_seq, res.last_checkpoint_digest, key_id(key), res.last_checkpoint_time,
                    res.records)
    write_atomic(anchor_out, anchor.to_json().encode(), 0o644)
    return anchor, f"final audit anchor: seal {anchor.seq} of {log}"


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    p = path.resolve()
    return any(p == r or p.is_relative_to(r) for r in roots)


def decommission(state_dir: Path, anchor_out: Path, *, extra: Iterable[Path] = (), device_key: Path | None = None,
                 audit_pub: Path | None = None, without_anchor: bool = False) -> Report:
    state = Path(state_dir).resolve()
    extras = [Path(e).resolve() for e in extra]
    if not (state / "data").is_dir():
        raise DecommissionError(f"{state}: not a Septum device state folder (no data/ folder)")
    roots = [state, *extras]
    if _inside(anchor_out, roots):
        raise DecommissionError(f"{anchor_out}: the anchor must be kept outside the folders being erased")
    if device_key is not None and _inside(device_key, [state / "data"]):
        raise DecommissionError(f"{device_key}: a device key inside a partition's folder is not a sealed key")
    busy = _running_partitions(state)
    if busy:
        raise DecommissionError(f"{state}: processes {', '.join(busy[:8])} are running in it; stop the device first")
    report = Report()
    anchor, note = export_anchor(state, Path(anchor_out), audit_pub)
    if anchor is None and not without_anchor:
        raise DecommissionError(f"no final audit anchor ({note}); nothing was erased "
                                "(pass --without-anchor to erase without one)")
    report.anchor, report.anchor_path, report.anchor_note = anchor, (Path(anchor_out) if anchor else None), note
    mounts = _mounts()
    data_root = str(state / "data") + "/"
    mounted = sorted(Path(p) for p in mounts if p.startswith(data_root))
    for folder in mounted:  # inside the image first, then the image itself once unmounted
        _erase_tree(folder, report, remove_root=False)
        if _umount(folder):
            report.problems.append(f"{folder}: could not be unmounted; its image is kept mounted")
    for root in roots:
        _erase_tree(root, report, remove_root=root != state)
    if device_key is not None and Path(device_key).exists():
        report.erased.append(Erased("device key (crypto-erase of sealed copies)", Path(device_key),
                                    erase_file(Path(device_key))))
    return report


def _umount(folder: Path) -> bool:
    """Unmount a data image; True when it could not be (the report says so)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.umount2(str(folder).encode(), 0) != 0


def _erase_tree(root: Path, report: Report, *, remove_root: bool) -> None:
    if not root.exists():
        return
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        d = Path(dirpath)
        for name in filenames:
            p = d / name
            try:
                report.erased.append(Erased(kind_of(p), p, erase_file(p)))
            except OSError as exc:
                report.problems.append(f"{p}: {exc.strerror or exc}")
        for name in dirnames:
            sub = d / name
            try:
                if sub.is_symlink():
                    sub.unlink()
                elif not os.path.ismount(sub):
                    sub.rmdir()
            except OSError as exc:
                report.problems.append(f"{sub}: {exc.strerror or exc}")
    if remove_root and not os.path.ismount(root):
        try:
            root.rmdir()
        except OSError as exc:
            report.problems.append(f"{root}: {exc.strerror or exc}")
