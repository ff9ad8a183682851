"""Heartbeat watchdog: a partition that stops beating is declared stuck within two periods.

A partition beating every ``period`` is late once 1.5 periods pass without a beat; the event loop asks
``next_deadline()`` when to call ``check`` next, so detection happens at the deadline itself (and, if the
loop is itself late by up to half a period, still within two periods). A heartbeat must carry a larger
sequence number than the last one: a stale or replayed beat does not keep a stuck partition alive.
"""

from __future__ import annotations

from dataclasses import dataclass

from septum.model.schema import Model

LATE_FACTOR = 1.5


@dataclass
class _Watched:
    period: float
    last_beat: float
    last_seq: int = -1
    stuck: bool = False


@dataclass(frozen=True)
class Stuck:
    partition: str
    silent_for: float
    period: float


class Watchdog:
    def __init__(self, *, startup_grace: float = 2.0) -> None:
        self.startup_grace = startup_grace
        self._watched: dict[str, _Watched] = {}

    @classmethod
    def from_model(cls, model: Model, now: float, *, startup_grace: float = 2.0) -> Watchdog:
        wd = cls(startup_grace=startup_grace)
        for name, part in model.partitions.items():
            if part.heartbeat_ms:
                wd.watch(name, part.heartbeat_ms / 1000.0, now)
        return wd

    def watch(self, partition: str, period: float, now: float) -> None:
        """Start (or restart, after the supervisor restarted it) watching; the first beat may take the
        start-up grace on top of the period."""
        if period <= 0:
            raise ValueError("heartbeat period must be positive")
        self._watched[partition] = _Watched(period, now + self.startup_grace)

    def unwatch(self, partition: str) -> None:
        self._watched.pop(partition, None)

    def beat(self, partition: str, seq: int, now: float) -> bool:
        """Record a heartbeat; False (ignored) for an unknown partition or a non-increasing sequence."""
        w = self._watched.get(partition)
        if w is None or seq <= w.last_seq:
            return False
        w.last_seq, w.last_beat, w.stuck = seq, now, False
        return True

    def check(self, now: float) -> list[Stuck]:
        """Partitions newly found stuck (each reported once until it beats again)."""
        out = []
        for name, w in self._watched.items():
            # Same expression as next_deadline(), so waking at the deadline always detects.
            if not w.stuck and now >= w.last_beat + LATE_FACTOR * w.period:
                w.stuck = True
                out.append(Stuck(name, now - w.last_beat, w.period))
        return out

    def next_deadline(self) -> float | None:
        live = [w.last_beat + LATE_FACTOR * w.period for w in self._watched.values() if not w.stuck]
        return min(live) if live else None
