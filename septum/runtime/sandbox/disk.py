"""A size-capped filesystem per partition data folder (``resources.disk_mb``).

Each data folder is the mount point of its own ext4 file image (``<state>/disks/<partition>.img``,
sparse, loop-mounted ``nosuid,nodev,noexec``): a partition that fills it gets ENOSPC from its own
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

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

MKFS = ("/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4")
MOUNT_OPTS = "loop,nosuid,nodev,noexec,noatime"
DISKS = "disks"


class DiskError(OSError):
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
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount/umount not installed"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices (/dev/loop-control)"
    work = Path(tempfile.mkdtemp(prefix="septum-disk-probe-"))
    try:
        image, mnt = work / "probe.img", work / "mnt"
        mnt.mkdir()
        _make(image, 8, None)
        _run(["mount", "-o", MOUNT_OPTS, str(image), str(mnt)])
        _run(["umount", str(mnt)])
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
    _run(["mount", "-o", MOUNT_OPTS, str(image), str(folder)])
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
            _run(["umount", str(folder)])
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
            _run(["umount", "-l", str(folder)])
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
