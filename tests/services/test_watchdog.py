"""A stuck partition is detected within two heartbeat periods; stale beats do not keep it alive."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from septum.model import Model
from septum.services.watchdog import Watchdog


def _run_until_stuck(wd: Watchdog, start: float, limit: float) -> float | None:
    """Drive the watchdog the way an event loop does: wake at next_deadline(), call check()."""
    now = start
    for _ in range(10_000):  # bounded: a watchdog that never fires must fail the test, not hang it
        if now >= limit:
            break
        nxt = wd.next_deadline()
        if nxt is None:
            return None
        now = max(now, nxt)
        if wd.check(now):
            return now
    return None


@given(period=st.floats(min_value=0.01, max_value=10), beats=st.integers(min_value=1, max_value=50),
       jitter=st.floats(min_value=0, max_value=0.4))
def test_stuck_detected_within_two_periods(period: float, beats: int, jitter: float) -> None:
    wd = Watchdog(startup_grace=0)
    wd.watch("p", period, 0.0)
    now = 0.0
    for seq in range(beats):
        now += period * (1 + jitter)  # late but alive: never reported
        assert wd.check(now) == []
        assert wd.beat("p", seq, now)
    last_beat = now
    detected = _run_until_stuck(wd, now, now + 100 * period)
    assert detected is not None and last_beat + period < detected <= last_beat + 2 * period


def test_from_model_and_stale_beats(device_model: Model) -> None:
    wd = Watchdog.from_model(device_model, 0.0, startup_grace=1.0)
    assert wd.next_deadline() == 1.0 + 0.15  # pump_control: heartbeat_ms 100
    assert wd.beat("pump_control", 5, 0.5)
    assert not wd.beat("pump_control", 5, 0.6)  # replayed sequence is ignored
    assert not wd.beat("pump_control", 4, 0.6)
    assert not wd.beat("ui", 1, 0.6)  # not watched
    assert wd.check(0.64) == []
    stuck = wd.check(0.65)
    assert [s.partition for s in stuck] == ["pump_control"]
    assert wd.check(0.9) == []  # reported once
    assert wd.beat("pump_control", 6, 1.0) and wd.check(1.1) == []
