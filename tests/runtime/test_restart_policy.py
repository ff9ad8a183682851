"""The restart policy as pure decisions: given a partition's restart history and the time of its exit,
restart (after which delay), give up, leave it stopped, or put the device in its safe state. No process
is started here."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from septum.runtime import protocol as proto
from septum.runtime.restart_policy import Limits, Verdict, backoff, decide, exit_reason

LIMITS = Limits(max_restarts=3, window_s=60.0)


def test_always_restarts_with_a_doubling_backoff_up_to_two_seconds() -> None:
    history: tuple[float, ...] = ()
    delays = []
    for i in range(3):
        d = decide("always", history, 100.0 + i, Limits(max_restarts=10, window_s=60.0))
        assert d.verdict == Verdict.RESTART and d.attempt == i + 1
        delays.append(d.delay_s)
        history = d.restarts
    assert delays == [0.05, 0.1, 0.2]
    assert [backoff(n) for n in (6, 7, 20)] == [1.6, 2.0, 2.0]


def test_always_gives_up_at_the_limit_within_the_window() -> None:
    d = decide("always", (10.0, 20.0, 30.0), 40.0, LIMITS)
    assert d.verdict == Verdict.GIVE_UP and d.restarts == (10.0, 20.0, 30.0)


def test_restarts_older_than_the_window_are_forgotten() -> None:
    d = decide("always", (10.0, 20.0, 30.0), 75.0, LIMITS)  # 10.0 is 65 s old
    assert d.verdict == Verdict.RESTART and d.restarts == (20.0, 30.0, 75.0) and d.delay_s == 0.2


def test_never_and_fail_safe_do_not_restart() -> None:
    assert decide("never", (), 1.0, LIMITS).verdict == Verdict.NOT_RESTARTED
    assert decide("fail-safe", (), 1.0, LIMITS).verdict == Verdict.SAFE_STATE
    # a policy the model does not allow is treated as the safest one, never as a restart
    assert decide("sometimes", (), 1.0, LIMITS).verdict == Verdict.SAFE_STATE


@given(st.lists(st.floats(min_value=0, max_value=1000), max_size=20), st.integers(min_value=1, max_value=6))
def test_always_never_restarts_more_than_the_limit_in_any_window(exits: list[float], limit: int) -> None:
    """Feed a run of exits through the policy as the supervisor does (the history it keeps is the one the
    last decision returned): no window of ``window_s`` holds more than ``limit`` restarts, and the policy
    gives up exactly when the window is full."""
    lim = Limits(max_restarts=limit, window_s=60.0)
    history: tuple[float, ...] = ()
    restarted: list[float] = []
    for now in sorted(exits):
        d = decide("always", history, now, lim)
        full = sum(1 for t in history if now - t < lim.window_s) >= limit
        assert (d.verdict == Verdict.GIVE_UP) == full
        assert all(now - t < lim.window_s for t in d.restarts) and len(d.restarts) <= limit
        if d.verdict == Verdict.GIVE_UP:
            break
        assert d.restarts[-1] == now and d.delay_s == backoff(d.attempt)
        restarted.append(now)
        history = d.restarts
    for t in restarted:
        assert sum(1 for u in restarted if t <= u < t + lim.window_s) <= limit


@pytest.mark.parametrize(("code", "oom", "killed_for", "reason"), [
    (-9, True, "heartbeat missed", "memory_limit"),  # the kernel's OOM kill is a SIGKILL: the cgroup says why
    (proto.EXIT_MEMORY, False, None, "memory_limit"),
    (-9, False, "heartbeat missed", "heartbeat missed"),
    (proto.EXIT_IMPORT, False, None, "entry point could not be imported"),
    (3, False, None, "exited"),
])
def test_exit_reason(code: int, oom: bool, killed_for: str | None, reason: str) -> None:
    assert exit_reason(code, oom=oom, killed_for=killed_for) == reason
