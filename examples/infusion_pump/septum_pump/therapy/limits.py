"""Soft and hard limit ranges, and "the most restrictive applicable limit wins".

A *hard* limit can never be exceeded, by anyone. A *soft* limit can be exceeded only after an
authenticated clinician at the pump confirms it with a reason (see program.py). Any bound may be absent.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import StrEnum

from .errors import TherapyError

# Comparisons tolerate float rounding of conversions (e.g. 0.1 + 0.2), never a clinical difference.
_EPS = 1e-9


class LimitOutcome(StrEnum):
    WITHIN = "within"
    SOFT_LOW = "below-soft-min"
    SOFT_HIGH = "above-soft-max"
    HARD_LOW = "below-hard-min"
    HARD_HIGH = "above-hard-max"

    @property
    def is_hard(self) -> bool:
        return self in (LimitOutcome.HARD_LOW, LimitOutcome.HARD_HIGH)

    @property
    def is_soft(self) -> bool:
        return self in (LimitOutcome.SOFT_LOW, LimitOutcome.SOFT_HIGH)


def _tol(bound: float) -> float:
    return _EPS * max(1.0, abs(bound))


@dataclass(frozen=True)
class Limits:
    hard_min: float | None = None
    soft_min: float | None = None
    soft_max: float | None = None
    hard_max: float | None = None

    def ordered(self) -> bool:
        """True if the bounds that are present satisfy hard_min <= soft_min <= soft_max <= hard_max."""
        present = [b for b in (self.hard_min, self.soft_min, self.soft_max, self.hard_max) if b is not None]
        return all(a <= b for a, b in itertools.pairwise(present))

    def check(self, value: float) -> LimitOutcome:
        """Classify ``value``; hard outcomes take precedence over soft ones."""
        if self.hard_min is not None and value < self.hard_min - _tol(self.hard_min):
            return LimitOutcome.HARD_LOW
        if self.hard_max is not None and value > self.hard_max + _tol(self.hard_max):
            return LimitOutcome.HARD_HIGH
        if self.soft_min is not None and value < self.soft_min - _tol(self.soft_min):
            return LimitOutcome.SOFT_LOW
        if self.soft_max is not None and value > self.soft_max + _tol(self.soft_max):
            return LimitOutcome.SOFT_HIGH
        return LimitOutcome.WITHIN

    def bound_for(self, outcome: LimitOutcome) -> float | None:
        return {
            LimitOutcome.HARD_LOW: self.hard_min,
            LimitOutcome.HARD_HIGH: self.hard_max,
            LimitOutcome.SOFT_LOW: self.soft_min,
            LimitOutcome.SOFT_HIGH: self.soft_max,
        }.get(outcome)

    def most_restrictive(self, other: Limits) -> Limits:
        """Combine two sets of limits that both apply: the larger minimum and the smaller maximum win.

        Soft bounds are then pulled inside the hard range, so that a soft maximum from a broad rule can
        never sit above a hard maximum from a narrower one.
        """
        hard_min = _pick(max, self.hard_min, other.hard_min)
        hard_max = _pick(min, self.hard_max, other.hard_max)
        soft_min = _pick(max, self.soft_min, other.soft_min)
        soft_max = _pick(min, self.soft_max, other.soft_max)
        if soft_min is not None and hard_min is not None:
            soft_min = max(soft_min, hard_min)
        if soft_min is not None and hard_max is not None:
            soft_min = min(soft_min, hard_max)
        if soft_max is not None and hard_max is not None:
            soft_max = min(soft_max, hard_max)
        if soft_max is not None and hard_min is not None:
            soft_max = max(soft_max, hard_min)
        return Limits(hard_min, soft_min, soft_max, hard_max)

    def scaled(self, factor: float) -> Limits:
        """The same limits expressed in another unit (``factor`` converts one unit into the other)."""
        if not factor > 0:
            raise TherapyError("a limit conversion factor must be greater than zero")
        return Limits(*(None if b is None else b * factor for b in self.as_tuple()))

    def as_tuple(self) -> tuple[float | None, float | None, float | None, float | None]:
        return (self.hard_min, self.soft_min, self.soft_max, self.hard_max)


def _pick(choose: object, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return choose(a, b)  # type: ignore[operator]


def within(value: float, ceiling: float) -> bool:
    """``value <= ceiling`` allowing for float rounding only."""
    return value <= ceiling + _tol(ceiling)
