"""What this host can enforce. Used by ``septum run --explain``, by the supervisor (to say loudly what
it could not apply) and by the tests (to skip with a printed reason when a mechanism is missing)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from . import disk, landlock, limits, seccomp


@dataclass(frozen=True)
class HostSupport:
    root: bool
    seccomp: bool
    landlock_abi: int
    netns: bool
    uid_drop: bool
    cgroup: limits.CgroupHost
    disk_unavailable: str | None = None  # why a data folder cannot get its own capped filesystem

    @property
    def disk_quota(self) -> bool:
        return self.disk_unavailable is None

    def cgroup_controller(self, name: str) -> bool:
        return name in self.cgroup.bases

    def missing(self) -> list[str]:
        out = []
        if not self.seccomp:
            out.append("seccomp (system-call filter)")
        if self.landlock_abi < 1:
            out.append("Landlock (filesystem rules)")
        if not self.netns:
            out.append("network namespaces (needs root)")
        if not self.uid_drop:
            out.append("per-partition uids (needs root)")
        if self.disk_unavailable is not None:
            out.append(f"per-partition disk quota ({self.disk_unavailable})")
        for ctrl in limits.CONTROLLERS:
            if not self.cgroup_controller(ctrl):
                out.append(f"cgroup {ctrl} controller")
        return out


def _seccomp_available() -> bool:
    if not seccomp.supported_arch():
        return False
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


@functools.cache
def probe() -> HostSupport:
    root = os.geteuid() == 0
    return HostSupport(
        root=root,
        seccomp=_seccomp_available(),
        landlock_abi=landlock.abi_version(),
        netns=root and os.path.exists("/proc/self/ns/net"),
        uid_drop=root,
        cgroup=limits.detect(),
        disk_unavailable=disk.unavailable(),
    )
