"""Restart policy: what follows an unexpected exit of a partition, decided from its history alone.

Pure functions (no process, no clock of their own, no event): the supervisor passes what happened and
carries out the decision, so each rule is unit-tested without starting anything.

* ``always``: restart after an exponential backoff (50 ms, doubling, at most 2 s); at most
  ``max_restarts`` restarts within any ``window_s``, then give up (the partition has FAILED);
* ``never``: not restarted (FAILED);
* ``fail-safe``: never silently restarted; the device goes to its safe state (every partition but the
  audit service is stopped: the therapy path stops).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from . import protocol as proto

BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0


class Verdict(StrEnum):
    RESTART = "restart"
    GIVE_UP = "restart_limit"  # ``always``, but too many restarts in the window
    NOT_RESTARTED = "not_restarted"  # ``never``
    SAFE_STATE = "safe_state"  # ``fail-safe``


@dataclass(frozen=True)
class Limits:
    max_restarts: int = 5
    window_s: float = 60.0


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    restarts: tuple[float, ...]  # the restart history to keep: within the window, this restart included
    delay_s: float = 0.0  # RESTART: wait this long before starting it again

    @property
    def attempt(self) -> int:
        return len(self.restarts)


def backoff(attempt: int) -> float:
    """Delay before restart number ``attempt`` (1-based)."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * (2 ** (attempt - 1)))


def decide(policy: str, restarts: Sequence[float], now: float, limits: Limits) -> Decision:
    """The decision for an unexpected exit at ``now`` of a partition restarted at the times ``restarts``."""
    if policy == "always":
        recent = tuple(t for t in restarts if now - t < limits.window_s)
        if len(recent) >= limits.max_restarts:
            return Decision(Verdict.GIVE_UP, recent)
        kept = (*recent, now)
        return Decision(Verdict.RESTART, kept, backoff(len(kept)))
    if policy == "never":
        return Decision(Verdict.NOT_RESTARTED, tuple(restarts))
    return Decision(Verdict.SAFE_STATE, tuple(restarts))  # fail-safe, and anything the model did not allow


def exit_reason(code: int, *, oom: bool, killed_for: str | None) -> str:
    """Why a partition process ended, in the words the events use: the memory limit first (the kernel's
    OOM kill looks like any SIGKILL), then the supervisor's own reason for killing it, then boot's code."""
    if oom or code == proto.EXIT_MEMORY:
        return "memory_limit"
    if killed_for is not None:
        return killed_for
    return proto.EXIT_REASONS.get(code, "exited")
