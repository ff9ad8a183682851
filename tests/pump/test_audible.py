"""Audible alarm logic: IEC 60601-1-8 tone patterns by priority, audio pause with a timeout, and the two
invariants (an active alarm is never unsounded past its pause; a new alarm always sounds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from septum_pump.therapy.alarms import Priority
from septum_pump.therapy.audible import AUDIO_PAUSE_S, PATTERNS, TIMING, AlarmAudio
from septum_pump.therapy.errors import TherapyError

HIGH, MEDIUM, LOW = Priority.HIGH, Priority.MEDIUM, Priority.LOW


def gaps(prio: Priority) -> list[float]:
    p = PATTERNS[prio].pulses
    return [round(b.start_s - (a.start_s + a.duration_s), 9) for a, b in pairwise(p)]


def test_pulse_counts_by_priority() -> None:
    assert [len(PATTERNS[p].pulses) for p in (HIGH, MEDIUM, LOW)] == [10, 3, 2]


def test_high_burst_is_two_groups_of_three_and_two() -> None:
    t = TIMING[HIGH]
    x, td = t.spacing_s, t.pulse_s
    half = [x, x, round(2 * x + td, 9), x]
    assert gaps(HIGH) == [*half, t.half_gap_s, *half]


def test_timing_is_inside_the_standard_ranges() -> None:
    high, med, low = TIMING[HIGH], TIMING[MEDIUM], TIMING[LOW]
    assert 0.075 <= high.pulse_s <= 0.200 and 0.050 <= high.spacing_s <= 0.125
    assert 0.35 <= high.half_gap_s <= 1.30
    for t in (med, low):
        assert 0.125 <= t.pulse_s <= 0.250 and 0.125 <= t.spacing_s <= 0.250
    assert 2.5 <= PATTERNS[HIGH].interburst_s <= 15
    assert 2.5 <= PATTERNS[MEDIUM].interburst_s <= 30
    assert PATTERNS[LOW].interburst_s > 15
    for t in TIMING.values():
        assert 150 <= t.frequency_hz <= 1000
    assert all(p.harmonics >= 4 for p in PATTERNS.values())


def test_sounding_follows_the_pulses_and_repeats() -> None:
    high = PATTERNS[HIGH]
    first = high.pulses[0]
    assert high.sounding(first.start_s + first.duration_s / 2)
    assert not high.sounding(first.duration_s + TIMING[HIGH].spacing_s / 2)
    assert not high.sounding(high.burst_s + 0.1)
    assert high.sounding(high.repeat_s + first.duration_s / 2)
    assert high.as_dict()["pulses"][0] == [0.0, first.duration_s]


def test_quiet_without_alarms_and_silence_without_alarms_does_nothing() -> None:
    audio = AlarmAudio()
    assert audio.state(0).pattern is None
    assert audio.silence(1) is False
    audio.update(2, {"occlusion": HIGH})
    assert audio.state(2).pattern is HIGH  # no pre-emptive pause was started


def test_pause_mutes_then_the_still_active_alarm_sounds_again_after_the_default_120_s() -> None:
    assert AUDIO_PAUSE_S == 120.0
    audio = AlarmAudio()
    audio.update(0, {"occlusion": HIGH})
    assert audio.silence(10)
    st_ = audio.state(11)
    assert (st_.pattern, st_.paused, st_.paused_remaining_s) == (None, True, 119.0)
    assert audio.state(129.999).pattern is None
    back = audio.state(130)
    assert (back.pattern, back.alarm, back.paused) == (HIGH, "occlusion", False)


def test_a_new_higher_priority_alarm_sounds_during_a_pause() -> None:
    audio = AlarmAudio()
    audio.update(0, {"reservoir-low": MEDIUM})
    audio.silence(1)
    audio.update(2, {"reservoir-low": MEDIUM, "air-in-line": HIGH})
    s = audio.state(2)
    assert (s.pattern, s.alarm, s.paused) == (HIGH, "air-in-line", True)


def test_an_alarm_that_clears_and_comes_back_is_new_and_sounds() -> None:
    audio = AlarmAudio()
    audio.update(0, {"door-open": HIGH})
    audio.silence(1)
    audio.update(2, {})
    audio.update(3, {"door-open": HIGH})
    assert audio.state(3).pattern is HIGH


def test_a_paused_alarm_whose_priority_rises_sounds() -> None:
    audio = AlarmAudio()
    audio.update(0, {"reservoir": MEDIUM})
    audio.silence(1)
    audio.update(2, {"reservoir": HIGH})
    assert audio.state(2).pattern is HIGH


def test_the_highest_unpaused_priority_plays() -> None:
    audio = AlarmAudio()
    audio.update(0, {"complete": LOW, "under-infusion": MEDIUM})
    assert audio.state(0).pattern is MEDIUM
    audio.update(1, {"complete": LOW, "under-infusion": MEDIUM, "occlusion": HIGH})
    assert audio.state(1).pattern is HIGH


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "120"])
def test_bad_pause_is_refused(bad: object) -> None:
    with pytest.raises(TherapyError):
        AlarmAudio(pause_s=bad)  # type: ignore[arg-type]


def test_time_must_not_go_backwards() -> None:
    audio = AlarmAudio()
    audio.update(5, {})
    with pytest.raises(TherapyError):
        audio.state(4)


# ------------------------------------------------------------------ properties

NAMES = ["occlusion", "air-in-line", "door-open", "reservoir-low", "under-infusion", "complete"]
events = st.lists(st.one_of(
    st.tuples(st.just("raise"), st.sampled_from(NAMES), st.sampled_from([LOW, MEDIUM, HIGH])),
    st.tuples(st.just("clear"), st.sampled_from(NAMES)),
    st.tuples(st.just("silence")),
    st.tuples(st.just("wait"), st.floats(min_value=0, max_value=200, allow_nan=False)),
), max_size=60)


@dataclass
class Reference:
    """What the speaker must do, written independently of AlarmAudio: each condition instance with the
    time until which a pause that began while it was active may keep it quiet."""

    pause_s: float
    active: dict[str, tuple[Priority, int]] = field(default_factory=dict)
    muted_until: dict[int, float] = field(default_factory=dict)
    serial: int = 0

    def raise_(self, name: str, prio: Priority) -> bool:
        old = self.active.get(name)
        if old is None or prio > old[0]:
            self.serial += 1
            self.active[name] = (prio, self.serial)
            return True
        self.active[name] = (min(prio, old[0]) if prio < old[0] else old[0], old[1])
        return False

    def silence(self, now: float) -> None:
        if self.active:
            self.muted_until = {s: now + self.pause_s for _, s in self.active.values()}

    def may_be_quiet(self, serial: int, now: float) -> bool:
        return now < self.muted_until.get(serial, -1.0)


@settings(max_examples=400, deadline=None)
@given(events=events, pause=st.sampled_from([1.0, 30.0, AUDIO_PAUSE_S]))
def test_no_active_alarm_is_left_unsounded_past_its_pause(events: list[tuple], pause: float) -> None:
    """After every event, every active condition is either at or below the priority playing, or covered by
    a pause that began while it was active and began less than ``pause`` ago. In particular an active high
    alarm is never quiet for longer than the pause timeout after the last silence that covered it."""
    audio, ref, now = AlarmAudio(pause_s=pause), Reference(pause), 0.0
    conditions: dict[str, Priority] = {}
    for ev in events:
        new_top: Priority | None = None
        if ev[0] == "raise":
            conditions[ev[1]] = ev[2]
            if ref.raise_(ev[1], ev[2]):
                new_top = ev[2]
            audio.update(now, dict(conditions))
        elif ev[0] == "clear":
            conditions.pop(ev[1], None)
            ref.active.pop(ev[1], None)
            audio.update(now, dict(conditions))
        elif ev[0] == "silence":
            assert audio.silence(now) == bool(conditions)
            ref.silence(now)
        else:
            now += ev[1]
        state = audio.state(now)
        playing = state.pattern or 0
        for _name, (prio, serial) in ref.active.items():
            assert prio <= playing or ref.may_be_quiet(serial, now), (ev, state, ref)
        if new_top is not None:
            assert playing >= new_top, ("a newly raised alarm did not sound", ev, state)
        # and nothing sounds louder than what is active
        assert playing <= max((p for p, _ in ref.active.values()), default=0)
        if state.paused:
            assert 0 < state.paused_remaining_s <= pause


@settings(max_examples=200, deadline=None)
@given(events=events, prio=st.sampled_from([LOW, MEDIUM, HIGH]))
def test_a_newly_raised_alarm_above_everything_active_always_sounds(events: list[tuple], prio: Priority) -> None:
    audio, now = AlarmAudio(), 0.0
    conditions: dict[str, Priority] = {}
    for ev in events:
        if ev[0] == "raise":
            conditions[ev[1]] = ev[2]
        elif ev[0] == "clear":
            conditions.pop(ev[1], None)
        elif ev[0] == "silence":
            audio.silence(now)
        else:
            now += ev[1]
        audio.update(now, dict(conditions))
    if any(p >= prio for p in conditions.values()):
        return
    conditions["new-alarm"] = prio
    audio.update(now, conditions)
    assert audio.state(now).pattern is prio
