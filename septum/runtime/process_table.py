"""The supervisor's process table: one record per partition process, and the device's outcome.

Lock discipline. The supervisor thread is the only writer of everything here; other threads (the caller
of ``Supervisor.partition_pids``/``partition_state``/``code_version``/``outcome``, the CLI's live view,
``run --follow``, tests) read some of it while the device runs. The fields those threads read are the
*shared* fields, and ``ProcessTable.lock`` (one lock, the only one) guards them:

* ``Proc.state``, ``Proc.popen``, ``Proc.pidfd``, ``Proc.code_version`` (per process);
* ``ProcessTable.outcome`` and ``ProcessTable.failures`` (the device).

Every write of a shared field holds ``lock`` (``set_state``, ``set_outcome``, ``fail``, ``started``,
``set_code``); readers on other threads take it too (``pids``, ``state``, ``code_version``, ``failures_text``).
The supervisor thread may read shared fields without the lock, since it is their only writer. The list
``failures`` is only appended to (under the lock) and never rebound, so a reader that iterates it without
the lock sees a prefix of it. ``SHARED_FIELDS`` names these fields; tests/runtime/test_supervisor_states.py
fails on any assignment to one of them outside a ``with ... lock`` block in the runtime's supervisor modules.

Every other field of a ``Proc`` (deadlines, restart history, guard, kill reason, code folder) is touched by
the supervisor thread alone and takes no lock. Cross-thread signals that are not fields here are
``threading.Event``s (ready, failed, done) or the supervisor's one-way ``stop requested`` flag.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .control_guard import ControlGuard
from .plan import PartitionPlan
from .sandbox import limits
from .states import Outcome, ProcState

# (record, field) pairs other threads read: written only while holding ProcessTable.lock
SHARED_FIELDS = frozenset({"state", "popen", "pidfd", "code_version", "outcome", "failures"})


@dataclass
class Proc:
    plan: PartitionPlan
    uid: int | None
    gid: int | None
    control: socket.socket  # supervisor's end
    child_control: socket.socket  # partition's end (kept for restarts)
    fds: list[int]
    data_dir: Path
    log_path: Path
    cgroup: limits.PartitionCgroup | None = None
    popen: subprocess.Popen[bytes] | None = None  # shared (see the module docstring)
    pidfd: int | None = None  # shared
    state: ProcState = ProcState.NEW  # shared
    started: float = 0.0
    last_beat: float = 0.0
    stop_requested: bool = False
    killed_for: str | None = None
    oom_seen: int = 0
    restarts: list[float] = field(default_factory=list)
    restart_at: float | None = None
    last_fatal: str = ""
    guard: ControlGuard | None = None  # its control channel, as the supervisor accepts it
    code_dir: Path | None = None  # installed code folder first on the import path; None: the model's code
    code_version: str = ""  # shared; "" = the model's own code
    respawn: bool = False  # stopped to be started again at once (a code activation)

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.returncode is None


class ProcessTable:
    """The partitions' ``Proc`` records by name (in start-up order of the plan) and the device's outcome."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: dict[str, Proc] = {}
        self.outcome = Outcome.NEW
        self.failures: list[str] = []

    # ------------------------------------------------------------------ supervisor thread: writes
    def add(self, p: Proc) -> None:
        with self.lock:
            self.procs[p.plan.name] = p

    def set_state(self, p: Proc, state: ProcState) -> None:
        with self.lock:
            p.state = state

    def set_outcome(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcome = outcome

    def fail(self, text: str) -> None:
        with self.lock:
            self.failures.append(text)

    def started(self, p: Proc, popen: subprocess.Popen[bytes], now: float) -> int:
        """Record a new process of ``p`` (it is STARTING); returns its pidfd."""
        with self.lock:
            p.popen = popen
            p.pidfd = os.pidfd_open(popen.pid)
            p.state = ProcState.STARTING
            p.started = p.last_beat = now
            p.stop_requested = False
            p.killed_for = None
            p.last_fatal = ""  # a Fatal of the previous instance does not explain this one's exit
            return p.pidfd

    def exited(self, p: Proc) -> None:
        """The process of ``p`` is gone and reaped: forget its pidfd (the caller closes it)."""
        with self.lock:
            p.pidfd = None

    def set_code(self, p: Proc, code_dir: Path | None, version: str) -> None:
        with self.lock:
            p.code_dir, p.code_version = code_dir, version

    # ------------------------------------------------------------------ any thread: reads
    def pids(self) -> dict[str, int]:
        with self.lock:
            return {n: p.popen.pid for n, p in self.procs.items() if p.popen is not None and p.popen.returncode is None}

    def state(self, name: str) -> ProcState:
        with self.lock:
            return self.procs[name].state

    def code_version(self, name: str) -> str:
        with self.lock:
            return self.procs[name].code_version

    def failures_text(self) -> str:
        with self.lock:
            return "; ".join(self.failures)

    # ------------------------------------------------------------------ supervisor thread: iteration
    def __iter__(self) -> Iterator[Proc]:
        return iter(list(self.procs.values()))

    def get(self, name: str) -> Proc | None:
        return self.procs.get(name)

    def audit(self) -> list[Proc]:
        """The audit service's process(es): kept running longest (the others' exits must reach its log)."""
        return [p for p in self.procs.values() if p.plan.service == "audit"]

    def any_alive_or_due(self) -> bool:
        return any(p.alive or p.restart_at is not None for p in self.procs.values())
