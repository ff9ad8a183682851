"""The supervisor's states, as enums: a partition process, the device's outcome, a code activation's phase.

They are ``StrEnum``s, so events, the live view and JSON show the same words as before (``"ready"``,
``"safe_state"``) and a comparison with the plain word still holds; a misspelt state is now an
``AttributeError`` instead of a comparison that is silently never true.

Lock discipline (``Supervisor._lock``): a process's ``state`` and the supervisor's ``outcome`` are read by
other threads (``partition_state``, the CLI's live view, ``run --follow``), so every write of either goes
through ``Supervisor._set_state`` / ``_set_outcome``, which hold the lock; the supervisor thread alone
writes them, so it may read them without it. An activation's ``phase`` is touched only by the supervisor
thread and needs no lock.
"""

from __future__ import annotations

from enum import StrEnum


class ProcState(StrEnum):
    NEW = "new"
    STARTING = "starting"
    READY = "ready"
    EXITED = "exited"  # ended unexpectedly; the restart policy decides what follows
    FAILED = "failed"  # given up on: restart limit, policy never, or fail-safe
    STOPPED = "stopped"  # ended because it was asked to


class Outcome(StrEnum):
    NEW = "new"
    RUNNING = "running"
    SAFE_STATE = "safe_state"  # a fail-safe partition failed, or the supervisor itself did
    HALTED = "halted"
    STOPPED = "stopped"


class ActivationPhase(StrEnum):
    STOPPING = "stopping"  # the old code is asked to stop
    STARTING = "starting"  # the new code is starting
    PROBATION = "probation"  # the new code is ready and must stay healthy for the probation time
