"""A size-capped filesystem per partition data folder (``resources.disk_mb``).

Each data folder is the mount point of its own ext4 file image (``<state>/disks/<partition>.img``,
sparse, loop-mounted ``nosuid,nodev,noexec,noatime``): a partition that fills it gets ENOSPC from its own
filesystem, while the state folder's filesystem, the other partitions and the audit log (in the audit
service's own image) keep their space. ext4 on a loop device keeps fsync/fdatasync durable (the loop
driver turns a flush into an fsync of the image file), which a memory-backed tmpfs with ``size=`` would
not: the audit log relies on it. ``-m 0``: no blocks reserved for root, so the cap is what the partition
gets, minus ext4's own metadata (about 7% at 64 MiB).

Life cycle, stateless so that it survives a supervisor crash:
- ``attach`` (setup, after the folder exists, before provisioning is copied in): if the folder is already
  mounted from its image (left by a crashed run) it is kept; if an image exists it is mounted (it holds
  the newest data); otherwise a new image is made from the folder's contents (``mkfs.ext4 -d``);
- ``detach_all`` (teardown, after every partition process is gone): the contents are copied back into
  the plain folder (owners and modes kept, so ``data/<partition>/`` stays readable after the run, as
  without quotas), the image is unmounted and deleted.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from septum.errors import SeptumError

MKFS = ("/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4")
DISKS = "disks"

# loop devices and mount(2) directly (no mount(8) process per partition: it was half the start-up cost)
LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A  # Linux 5.8+: attach a file and set its flags in one call
LO_FLAGS_AUTOCLEAR = 4  # the loop device detaches itself when the filesystem is unmounted
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_NOATIME = 2, 4, 8, 1024
MNT_DETACH = 2
_LOOP_INFO64 = "5Q4I64s64s32s2Q"  # struct loop_info64
_libc = ctypes.CDLL(None, use_errno=True)


class DiskError(SeptumError, OSError):
    """An OSError, so the supervisor reports it as a setup failure and tears down."""


def _tool(candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


def _run(cmd: list[str]) -> None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DiskError(f"{cmd[0]}: {exc}") from None
    if r.returncode != 0:
        raise DiskError(f"{' '.join(cmd)}: {(r.stderr or r.stdout).strip()[-300:]}")


@functools.cache
def unavailable() -> str | None:
    """None when this host can give a partition its own capped filesystem, else why not."""
    if os.geteuid() != 0:
        return "needs root (loop mount)"
    if _tool(MKFS) is None:
        return "mkfs.ext4 not installed (Debian package e2fsprogs)"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices (/dev/loop-control)"
    work = Path(tempfile.mkdtemp(prefix="septum-disk-probe-"))
    try:
        image, mnt = work / "probe.img", work / "mnt"
        mnt.mkdir()
        _make(image, 8, None)
        _mount(image, mnt)
        _umount(mnt)
    except DiskError as exc:
        return f"loop-mounted ext4 unusable here: {exc}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return None


def _make(image: Path, size_mb: int, source: Path | None) -> None:
    mkfs = _tool(MKFS)
    if mkfs is None:
        raise DiskError("mkfs.ext4 not installed")
    with open(image, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)  # sparse: the host's space is used only as the partition writes
    cmd = [mkfs, "-q", "-F", "-m", "0", "-E", "root_owner=0:0"]
    if source is not None and any(source.iterdir()):
        cmd += ["-d", str(source)]
    _run([*cmd, str(image)])


def _loop_attach(image: Path) -> tuple[str, int]:
    """A free loop device backed by ``image`` (autoclear): its /dev path and an open fd on it, which the
    caller closes only after mounting (autoclear detaches the device when its last opener closes it)."""
    info = struct.pack(_LOOP_INFO64, 0, 0, 0, 0, 0, 0, 0, 0, LO_FLAGS_AUTOCLEAR, b"", b"", b"", 0, 0)
    img = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(64):  # another process may take the free device first: ask again
                n = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
                dev = f"/dev/loop{n}"
                fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
                try:
                    fcntl.ioctl(fd, LOOP_CONFIGURE, struct.pack("II", img, 0) + info + bytes(64))
                    return dev, fd
                except OSError as exc:
                    os.close(fd)
                    if exc.errno != errno.EBUSY:
                        raise DiskError(exc.errno, f"LOOP_CONFIGURE {dev}: {os.strerror(exc.errno or 0)}") from None
        finally:
            os.close(ctl)
    finally:
        os.close(img)
    raise DiskError(errno.EBUSY, "no free loop device")


def _mount(image: Path, target: Path) -> None:
    dev, fd = _loop_attach(image)
    try:
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME
        if _libc.mount(dev.encode(), str(target).encode(), b"ext4", ctypes.c_ulong(flags), None) != 0:
            err = ctypes.get_errno()
            raise DiskError(err, f"mount {image} on {target}: {os.strerror(err)}")
    finally:
        os.close(fd)  # unmounted (or never mounted) and closed: autoclear frees the device


def _umount(target: Path, *, lazy: bool = False) -> None:
    if _libc.umount2(str(target).encode(), MNT_DETACH if lazy else 0) != 0:
        err = ctypes.get_errno()
        raise DiskError(err, f"umount {target}: {os.strerror(err)}")


def _mounts() -> dict[str, str]:
    """mount point -> source, from /proc/self/mountinfo (octal escapes decoded)."""
    out: dict[str, str] = {}
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                point = fields[4].encode().decode("unicode_escape")
                out[point] = fields[sep + 2]
    except (OSError, ValueError):
        return {}
    return out


def image_of(state_dir: Path, partition: str) -> Path:
    return state_dir / DISKS / f"{partition}.img"


def attach(state_dir: Path, partition: str, folder: Path, size_mb: int) -> bool:
    """Mount a ``size_mb`` filesystem on ``folder``; False (nothing done) when the host cannot."""
    if unavailable() is not None:
        return False
    folder = folder.resolve()
    if str(folder) in _mounts():
        return True
    disks = state_dir / DISKS
    disks.mkdir(mode=0o700, exist_ok=True)
    image = image_of(state_dir, partition)
    if not image.exists():
        _make(image, size_mb, folder)
    _mount(image, folder)
    lost = folder / "lost+found"
    if lost.is_dir() and not any(lost.iterdir()):
        lost.rmdir()
    return True


def used_bytes(folder: Path) -> tuple[int, int] | None:
    """(used, total) bytes of the folder's filesystem, for tests and events."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize


def _copy_back(src: Path, dst: Path) -> None:
    """Copy a mounted data folder's contents to a plain folder, owners and modes included."""
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    for path in [dst, *dst.rglob("*")]:
        rel = path.relative_to(dst)
        st = os.lstat(src / rel)
        os.lchown(path, st.st_uid, st.st_gid)
        if not path.is_symlink():
            os.chmod(path, st.st_mode & 0o7777)


def _mounted_data_dirs(state_dir: Path) -> list[Path]:
    data = str((state_dir / "data").resolve()) + "/"
    return sorted(Path(point) for point in _mounts() if point.startswith(data))


def detach_all(state_dir: Path) -> list[str]:
    """Copy back, unmount and delete every data image of a run; returns the problems (never raises)."""
    problems: list[str] = []
    for folder in _mounted_data_dirs(state_dir):
        try:
            staged = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
            _copy_back(folder, staged)
            _umount(folder)
            shutil.rmtree(folder)  # the stale pre-run contents the mount was hiding
            staged.rename(folder)
        except (OSError, DiskError) as exc:
            problems.append(f"{folder.name}: {exc}")
    _remove_images(state_dir, problems)
    return problems


def release(state_dir: Path) -> list[str]:
    """Unmount every data image of a run without copying anything back (before the state folder is
    deleted; lazily, so a process still inside cannot keep the mount alive)."""
    problems: list[str] = []
    for folder in _mounted_data_dirs(state_dir):
        try:
            _umount(folder, lazy=True)
        except DiskError as exc:
            problems.append(f"{folder.name}: {exc}")
    _remove_images(state_dir, problems)
    return problems


def _remove_images(state_dir: Path, problems: list[str]) -> None:
    disks = state_dir / DISKS
    if not disks.is_dir():
        return
    mounted = set(_mounted_data_dirs(state_dir))
    for image in sorted(disks.glob("*.img")):
        if (state_dir / "data" / image.stem).resolve() in mounted:
            problems.append(f"{image.stem}: still mounted, image kept")
            continue
        image.unlink(missing_ok=True)
    try:
        disks.rmdir()
    except OSError:
        pass
