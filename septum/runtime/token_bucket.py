"""The token bucket every rate bound in Septum uses.

One bucket admits at most ``rate`` events per second on average, with bursts of up to ``capacity`` events
(by default one second's worth, never under one). It has no clock of its own: the caller passes the time
of each event, in whatever seconds it counts in. A channel's receiving end passes device time (so rate
limits follow the runtime's time scale), the supervisor's control guard real time, the pump's hospital
link the clock its receiver uses.

The arithmetic is deliberately plain so that the event loop's fast path can inline it
(``septum.runtime.partition``); ``tests/runtime/test_token_bucket.py`` drives the loop and this class with
the same random arrival times and requires the same admit/deny decisions, so the copy cannot drift.

Time that runs backwards (a batch timestamp older than the last refill) adds nothing and is not
remembered: a bucket never refills twice for the same interval.
"""

from __future__ import annotations

import math


def default_capacity(rate: float) -> float:
    """The burst a receiver allows: one second's worth of messages, at least one."""
    return rate if rate > 1.0 else 1.0


class TokenBucket:
    """Admits events at ``rate`` per second with a burst of ``capacity``; starts full at time ``now``."""

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, now: float, *, capacity: float | None = None) -> None:
        # zero is a rate the model can declare ("0/s"): the bucket's one token, then nothing ever again
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate < 0:
            raise ValueError(f"a rate must be a finite number of events per second, not {rate!r}")
        cap = default_capacity(float(rate)) if capacity is None else float(capacity)
        if not math.isfinite(cap) or cap < 1.0:
            raise ValueError(f"a bucket must hold at least one token, not {capacity!r}")
        self.rate = float(rate)
        self.capacity = cap
        self.tokens = cap
        self.last = float(now)

    def admit(self, now: float) -> bool:
        """Refill for the time since the last event, then take one token; False (nothing taken) if none."""
        tokens = self.tokens
        if now > self.last:
            tokens += (now - self.last) * self.rate
            if tokens > self.capacity:
                tokens = self.capacity
            self.last = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False

    def wait(self) -> float:
        """Seconds from the last event until a token is free (0 if one is free now)."""
        missing = 1.0 - self.tokens
        if missing <= 0:
            return 0.0
        return missing / self.rate if self.rate > 0 else math.inf

    def refund(self) -> None:
        """Give back one token (an admitted event that turned out to cost nothing)."""
        tokens = self.tokens + 1.0
        self.tokens = tokens if tokens < self.capacity else self.capacity
