"""Audible alarm signals: which tone pattern the speaker plays, and audio pause (silence) with a timeout.

Pure logic, time an input (seconds), so every rule below is tested exactly (tests/pump/test_audible.py).

Tone patterns follow the priority encoding of IEC 60601-1-8 (auditory alarm signals, its Tables 3 and 4): a
*burst* of pulses repeated after an interburst interval, with

  high    10 pulses, spaced x x 2x+td x, a longer gap, x x 2x+td x (two groups of 3+2), repeated
  medium   3 pulses, repeated
  low      2 pulses, repeated slowly (the standard allows 1 or 2, repeated after more than 15 s or not at all)

The numbers (``PatternTiming``: pulse duration td, pulse spacing x, the gap between the two halves of a high
burst, the interburst interval, the fundamental frequency) are chosen inside the standard's ranges: td
75-200 ms for high, 125-250 ms for medium and low; x 50-125 ms for high, 125-250 ms otherwise; the gap between
the high halves 0.35-1.30 s; interburst 2.5-15 s high, 2.5-30 s medium, more than 15 s low; a fundamental of
150-1000 Hz with harmonics (the speaker plays 5). They are illustrative defaults for this reference pump, not
a validated sound design.

Audio pause (the *silence* key): pausing mutes the alarm conditions active at that moment for ``pause_s``
(default 120 s, the standard's usual audio-paused period). When it runs out, a condition still active sounds
again. It never mutes a condition raised after the pause began (a new alarm sounds at once, at its own
priority, and a condition that went and came back is a new one), and a condition whose priority rises is new
too. Pausing again while paused restarts the period for what is active then. Pausing changes nothing but the
sound: the display and the alarm light still show every alarm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .alarms import Priority
from .errors import TherapyError, require_time

AUDIO_PAUSE_S = 120.0


@dataclass(frozen=True)
class Pulse:
    start_s: float  # from the start of the burst
    duration_s: float


@dataclass(frozen=True)
class TonePattern:
    """One priority's burst: the pulses, then silence until ``repeat_s`` after the burst's start."""

    priority: Priority
    frequency_hz: float
    harmonics: int
    pulses: tuple[Pulse, ...]
    repeat_s: float  # burst start to the next burst's start

    @property
    def burst_s(self) -> float:
        last = self.pulses[-1]
        return last.start_s + last.duration_s

    @property
    def interburst_s(self) -> float:
        return self.repeat_s - self.burst_s

    def sounding(self, t_s: float) -> bool:
        """Whether a pulse is on at ``t_s`` seconds after the pattern started (for tests and simulators)."""
        phase = t_s % self.repeat_s
        return any(p.start_s <= phase < p.start_s + p.duration_s for p in self.pulses)

    def as_dict(self) -> dict[str, object]:
        """Plain data for a speaker driver or the browser front panel, which play exactly this."""
        return {"priority": self.priority.name.lower(), "frequency_hz": self.frequency_hz,
                "harmonics": self.harmonics, "repeat_s": self.repeat_s,
                "pulses": [[p.start_s, p.duration_s] for p in self.pulses]}


@dataclass(frozen=True)
class PatternTiming:
    pulse_s: float  # td, effective pulse duration
    spacing_s: float  # x, silence between pulses of one group
    interburst_s: float  # silence after the last pulse of a burst
    frequency_hz: float
    half_gap_s: float = 0.0  # high only: silence between the two halves of the 10-pulse burst


TIMING: dict[Priority, PatternTiming] = {
    Priority.HIGH: PatternTiming(pulse_s=0.15, spacing_s=0.10, interburst_s=3.0, frequency_hz=880.0, half_gap_s=0.50),
    Priority.MEDIUM: PatternTiming(pulse_s=0.20, spacing_s=0.20, interburst_s=6.0, frequency_hz=660.0),
    Priority.LOW: PatternTiming(pulse_s=0.20, spacing_s=0.20, interburst_s=16.0, frequency_hz=440.0),
}
HARMONICS = 5


def _group(start: float, td: float, gaps: list[float]) -> list[Pulse]:
    out = [Pulse(start, td)]
    for gap in gaps:
        out.append(Pulse(out[-1].start_s + td + gap, td))
    return out


def build_pattern(priority: Priority, timing: PatternTiming) -> TonePattern:
    td, x = timing.pulse_s, timing.spacing_s
    if priority is Priority.HIGH:
        half = [x, x, 2 * x + td, x]  # 3 + 2 pulses, spaced x x 2x+td x
        first = _group(0.0, td, half)
        second = _group(first[-1].start_s + td + timing.half_gap_s, td, half)
        pulses = first + second
    elif priority is Priority.MEDIUM:
        pulses = _group(0.0, td, [x, x])
    else:
        pulses = _group(0.0, td, [x])
    burst = pulses[-1].start_s + td
    return TonePattern(priority, timing.frequency_hz, HARMONICS, tuple(pulses), burst + timing.interburst_s)


PATTERNS: dict[Priority, TonePattern] = {prio: build_pattern(prio, t) for prio, t in TIMING.items()}


@dataclass(frozen=True)
class AudioState:
    """What the speaker does now and what the display says about it."""

    pattern: Priority | None  # None: quiet
    alarm: str  # the alarm the pattern is for ("" when quiet)
    paused: bool  # an audio pause is running and still mutes an active alarm
    paused_remaining_s: float  # 0 when not paused

    @property
    def name(self) -> str:
        return self.pattern.name.lower() if self.pattern is not None else "off"


@dataclass
class _Condition:
    priority: Priority
    since: float
    serial: int  # tells a condition raised again apart from the one that was paused


@dataclass
class AlarmAudio:
    """The speaker's logic: ``update`` with the active alarm conditions, ``silence``, ``state`` to play."""

    pause_s: float = AUDIO_PAUSE_S
    _active: dict[str, _Condition] = field(default_factory=dict)
    _paused_until: float | None = None
    _paused: set[tuple[str, int]] = field(default_factory=set)
    _serial: int = 0
    _now: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.pause_s, bool) or not isinstance(self.pause_s, int | float) \
                or not math.isfinite(self.pause_s) or self.pause_s <= 0:
            raise TherapyError("the audio pause must be a positive number of seconds")

    def _clock(self, now: float) -> float:
        self._now = require_time(now, self._now)
        return self._now

    def update(self, now: float, conditions: Mapping[str, Priority]) -> None:
        """The alarm conditions active now (name -> priority), from every source (monitor and ui)."""
        now = self._clock(now)
        for name in list(self._active):
            if name not in conditions:
                del self._active[name]  # gone: if it comes back it is a new condition and sounds
        for name, priority in conditions.items():
            priority = Priority(priority)
            old = self._active.get(name)
            if old is None or priority > old.priority:
                self._serial += 1
                self._active[name] = _Condition(priority, now, self._serial)
            elif priority < old.priority:
                old.priority = priority  # a lower priority for a paused condition stays paused

    def silence(self, now: float) -> bool:
        """Audio pause for what is active now; False (and nothing changes) if no alarm is active."""
        now = self._clock(now)
        if not self._active:
            return False
        self._paused_until = now + self.pause_s
        self._paused = {(name, c.serial) for name, c in self._active.items()}
        return True

    def _pause_running(self, now: float) -> bool:
        return self._paused_until is not None and now < self._paused_until

    def state(self, now: float) -> AudioState:
        now = self._clock(now)
        running = self._pause_running(now)
        if not running:
            self._paused_until, self._paused = None, set()
        audible = [(c.priority, c.since, name) for name, c in self._active.items()
                   if not (running and (name, c.serial) in self._paused)]
        muted = running and any((name, c.serial) in self._paused for name, c in self._active.items())
        # clamped: (now + pause) - now can exceed pause by a rounding error
        remaining = min(self.pause_s, (self._paused_until or now) - now) if muted else 0.0
        if not audible:
            return AudioState(None, "", muted, remaining)
        priority, _, name = max(audible)  # highest priority; of equals, the most recent
        return AudioState(priority, name, muted, remaining)
