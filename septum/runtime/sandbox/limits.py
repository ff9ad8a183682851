"""Resource limits from the model's ``resources``: rlimits (always) and cgroups (where the host offers).

rlimits are set in the forked child before exec. Root here lacks CAP_SYS_RESOURCE, so hard limits are
only ever lowered. RLIMIT_AS is a backstop with headroom for the interpreter's mappings; the cgroup
memory limit is the real bound on resident memory (the kernel OOM-kills the partition at the limit,
and the supervisor reads the cgroup's oom_kill counter to name the cause).

cgroup v1 (controllers mounted at /sys/fs/cgroup/<controller>) and v2 (one hierarchy) are detected at
run time. Partition cgroups are created under the supervisor's own cgroup, so that a limit imposed on
the supervisor still applies to its partitions.
"""

from __future__ import annotations

import os
import resource
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AS_HEADROOM_MB = 512
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000


SAFETY_CPU_WEIGHT = 4096  # safety and fail-safe partitions: four times an ordinary task's share
DEFAULT_CPU_WEIGHT = 1024
LOW_CPU_WEIGHT = 256  # low- and no-criticality partitions


def cpu_weight_for(criticality: str, restart_policy: str) -> int:
    """A partition's CPU weight under contention: the safety partitions are scheduled first."""
    if criticality == "safety" or restart_policy == "fail-safe":
        return SAFETY_CPU_WEIGHT
    return LOW_CPU_WEIGHT if criticality in ("none", "low") else DEFAULT_CPU_WEIGHT


def rlimits(res: Any) -> list[tuple[int, int]]:
    """(resource, limit) pairs for a ``septum.model`` Resources (soft = hard)."""
    return [
        (resource.RLIMIT_AS, (res.memory_mb + AS_HEADROOM_MB) * 1024 * 1024),
        (resource.RLIMIT_NOFILE, res.max_open_files),
        (resource.RLIMIT_NPROC, res.max_pids),  # per uid: meaningful because each partition has its own
        (resource.RLIMIT_CORE, 0),  # no core files: they would hold patient data outside the data dir
    ]


def apply_rlimits(limits: list[tuple[int, int]]) -> None:
    for res, value in limits:
        _soft, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(res, (value, value))


def _own_path_v1(controller: str) -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, names, path = line.rstrip("\n").split(":", 2)
                if controller in names.split(","):
                    return path
    except OSError:
        return None
    return None


def _own_path_v2() -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].rstrip("\n")
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class CgroupHost:
    version: int  # 1, 2 or 0 (none usable)
    bases: dict[str, Path]  # controller -> directory under which partition groups are made


def detect() -> CgroupHost:
    if os.geteuid() != 0:
        return CgroupHost(0, {})
    bases: dict[str, Path] = {}
    for ctrl in CONTROLLERS:
        mount = CGROUP_ROOT / ctrl
        own = _own_path_v1(ctrl)
        if (mount / "cgroup.procs").exists() and own is not None:
            base = mount / own.lstrip("/")
            if os.access(base, os.W_OK):
                bases[ctrl] = base
    if bases:
        return CgroupHost(1, bases)
    ctl = CGROUP_ROOT / "cgroup.controllers"
    own2 = _own_path_v2()
    if ctl.exists() and own2 is not None:
        base = CGROUP_ROOT / own2.lstrip("/")
        try:
            available = (base / "cgroup.controllers").read_text().split()
        except OSError:
            available = []
        for ctrl in CONTROLLERS:
            if ctrl in available and os.access(base, os.W_OK):
                bases[ctrl] = base
        if bases:
            return CgroupHost(2, bases)
    return CgroupHost(0, {})


@dataclass
class PartitionCgroup:
    """The cgroup directories of one partition (one per controller on v1, one shared on v2)."""

    host: CgroupHost
    dirs: dict[str, Path] = field(default_factory=dict)
    applied: dict[str, str] = field(default_factory=dict)  # controller -> human description

    @classmethod
    def create(cls, host: CgroupHost, run_id: str, partition: str, res: Any, *, cpu_weight: int = 1024,
               partitions: int = 1) -> PartitionCgroup:
        """``cpu_weight``: the partition's share of the CPU among the device's partitions (cgroup v1
        ``cpu.shares`` scale, default 1024; see ``cpu_weight_for``). ``partitions``: how many the device
        has; the run's group gets a weight worth that many ordinary tasks, so the device as a whole is not
        treated as one task against the other processes of the host."""
        cg = cls(host)
        for ctrl, base in host.bases.items():
            d = base / f"septum-{run_id}" / partition
            d.mkdir(parents=True, exist_ok=True)
            cg.dirs[ctrl] = d
        if host.version == 2 and host.bases:
            parent = next(iter(cg.dirs.values())).parent
            wanted = " ".join(f"+{c}" for c in host.bases)
            (parent / "cgroup.subtree_control").write_text(wanted)
        cg._limit(res)
        cg._weigh(cpu_weight, partitions)
        return cg

    def _weigh(self, weight: int, partitions: int) -> None:
        """CPU shares: with group scheduling a partition competes as its cgroup, so the nice value of its
        process alone does not order it against other partitions; the cgroup weight does."""
        if "cpu" not in self.dirs:
            return
        group = self.dirs["cpu"].parent
        if self.host.version == 2:  # cpu.weight: 1..10000, default 100
            self._write("cpu", "cpu.weight", str(max(1, min(10_000, weight * 100 // 1024))))
            (group / "cpu.weight").write_text(str(max(1, min(10_000, 200 * partitions))))
        else:  # cpu.shares: default 1024
            self._write("cpu", "cpu.shares", str(max(2, weight)))
            (group / "cpu.shares").write_text(str(2 * 1024 * partitions))
        self.applied["cpu_weight"] = f"CPU weight {weight} (1024 = an ordinary task)"

    def _write(self, ctrl: str, name: str, value: str) -> None:
        (self.dirs[ctrl] / name).write_text(value)

    def _limit(self, res: Any) -> None:
        mem = res.memory_mb * 1024 * 1024
        v2 = self.host.version == 2
        if "memory" in self.dirs:
            if v2:
                self._write("memory", "memory.max", str(mem))
                if (self.dirs["memory"] / "memory.swap.max").exists():
                    self._write("memory", "memory.swap.max", "0")
            else:
                self._write("memory", "memory.limit_in_bytes", str(mem))
                if (self.dirs["memory"] / "memory.memsw.limit_in_bytes").exists():
                    self._write("memory", "memory.memsw.limit_in_bytes", str(mem))
            self.applied["memory"] = f"{res.memory_mb} MiB"
        if "pids" in self.dirs:
            self._write("pids", "pids.max", str(res.max_pids))
            self.applied["pids"] = f"{res.max_pids} tasks"
        if "cpu" in self.dirs:
            quota = CFS_PERIOD_US * res.cpu_percent // 100
            if v2:
                self._write("cpu", "cpu.max", f"{quota} {CFS_PERIOD_US}")
            else:
                self._write("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US))
                self._write("cpu", "cpu.cfs_quota_us", str(quota))
            self.applied["cpu"] = f"{res.cpu_percent}% of one CPU"

    def cpu_stat(self) -> dict[str, int]:
        """The cpu controller's counters (``nr_periods``, ``nr_throttled``, ``throttled_time`` or
        ``throttled_usec``): how often the quota stopped the partition."""
        d = self.dirs.get("cpu")
        out: dict[str, int] = {}
        if d is None:
            return out
        try:
            for line in (d / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if value.strip().isdigit():
                    out[key] = int(value)
        except OSError:
            return {}
        return out

    def procs_files(self) -> list[str]:
        """The files the child writes its pid into (deduplicated: v2 has one directory)."""
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def oom_kills(self) -> int:
        d = self.dirs.get("memory")
        if d is None:
            return 0
        name = "memory.events" if self.host.version == 2 else "memory.oom_control"
        try:
            for line in (d / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            return 0
        return 0

    def pids(self) -> list[int]:
        out: set[int] = set()
        for d in self.dirs.values():
            try:
                out.update(int(x) for x in (d / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                continue
        return sorted(out)

    def kill_all(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        parents = set()
        for d in self.dirs.values():
            parents.add(d.parent)
            try:
                d.rmdir()
            except OSError:
                pass
        for p in parents:
            try:
                p.rmdir()  # the run's group, once its last partition group is gone
            except OSError:
                pass
