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


def preexec(plan: SpawnPlan) -> Callable[[], None]:
    def run() -> None:
        try:
            for procs in plan.cgroup_procs:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))
            if plan.own_netns:
                netns.unshare_net()
            limits.apply_rlimits(list(plan.rlimits))
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
