"""The part of the sandbox applied in the forked child before exec (``Popen(preexec_fn=...)``).

Order matters: join the cgroups and unshare the network while still root, set rlimits, drop to the
partition's uid/gid, and only then set the parent-death signal, because the kernel clears it on a
credential change. Everything is imported and resolved before fork: a preexec_fn must not import or
allocate much, since the parent has other threads. Seccomp and Landlock are applied after exec by
``septum.runtime.boot`` (the seccomp filter forbids execve).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from . import identity, limits, netns

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class SpawnPlan:
    cgroup_procs: tuple[str, ...]
    own_netns: bool
    rlimits: tuple[tuple[int, int], ...]
    uid: int | None
    gid: int | None
    parent_pid: int
    nice: int = 0  # scheduling priority (septum.runtime.sandbox.spawn.nice_for): safety partitions first


SAFETY_NICE = -5  # safety partitions and the supervisor thread: ahead of everything else on the host
DEFAULT_NICE = 0  # services and high-criticality partitions
LOW_NICE = 5  # low- and no-criticality partitions (the network partition): they yield the CPU first


def nice_for(criticality: str, restart_policy: str) -> int:
    """A partition's nice value: under CPU contention (a neighbour spinning, a host under load) the
    scheduler runs the safety partitions first, so their heartbeats and control periods stay on time."""
    if criticality == "safety" or restart_policy == "fail-safe":
        return SAFETY_NICE
    return LOW_NICE if criticality in ("none", "low") else DEFAULT_NICE


def set_nice(value: int) -> bool:
    """Set the calling thread's nice value (Linux: per thread); False when not permitted (no CAP_SYS_NICE
    for a negative value): the partition then keeps the priority it inherited, and --explain says so."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, value)
    except OSError:
        return False
    return True


def preexec(plan: SpawnPlan) -> Callable[[], None]:
    def run() -> None:
        try:
            for procs in plan.cgroup_procs:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))
            if plan.own_netns:
                netns.unshare_net()
            limits.apply_rlimits(list(plan.rlimits))
            if not set_nice(plan.nice) and plan.nice > 0:  # raising it is always allowed: insist
                raise OSError("setpriority failed")
            if plan.uid is not None and plan.gid is not None:
                identity.drop_to(plan.uid, plan.gid)
            if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
            if os.getppid() != plan.parent_pid:  # the supervisor died before the signal was armed
                os._exit(1)
        except BaseException as exc:
            # stderr is the partition's log file: leave the reason there for the supervisor to quote
            sys.stderr.write(f"septum: sandbox setup failed before exec: {exc!r}\n")
            sys.stderr.flush()
            raise

    return run
