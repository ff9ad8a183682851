"""What was delivered, and when: the basis of every sliding dose window.

Delivery is recorded as segments of constant rate between two times. A window sums, for each segment, the
part of it that lies inside the window, so basal, KVO and boluses all count at their actual delivery times,
and a bolus that was cut short counts for exactly what was delivered. Amounts are stored in canonical
units (mg, units or mL) per drug, so switching concentration does not reset or distort a window.

This is the controller's ledger (it books the rates it asked for). The safety monitor keeps its own account in
``monitor_ledger``, written separately and sharing no code with this one, so that a bug here cannot be one the
monitor shares.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TherapyError, require_finite
from .units import SECONDS_PER_HOUR

ONE_HOUR_S = 3600.0
FOUR_HOURS_S = 4 * 3600.0
# Segments older than the longest window (plus a margin) are folded away to keep each step cheap.
_KEEP_S = FOUR_HOURS_S + 60.0


@dataclass(frozen=True)
class Segment:
    drug_id: str
    start: float
    end: float
    rate_ml_h: float
    canonical_per_ml: float
    bolus: bool

    @property
    def volume_ml(self) -> float:
        return self.rate_ml_h * (self.end - self.start) / SECONDS_PER_HOUR

    def volume_between(self, t0: float, t1: float) -> float:
        lo, hi = max(self.start, t0), min(self.end, t1)
        if hi <= lo:
            return 0.0
        return self.rate_ml_h * (hi - lo) / SECONDS_PER_HOUR


class DeliveryLedger:
    def __init__(self) -> None:
        self._segments: list[Segment] = []
        self._last_end: float | None = None

    @property
    def last_end(self) -> float | None:
        return self._last_end

    def record(
        self,
        drug_id: str,
        start: float,
        end: float,
        rate_ml_h: float,
        canonical_per_ml: float,
        *,
        bolus: bool = False,
    ) -> None:
        """Record delivery at ``rate_ml_h`` from ``start`` to ``end`` (seconds)."""
        start = require_finite(start, "segment start")
        end = require_finite(end, "segment end")
        rate = require_finite(rate_ml_h, "segment rate")
        if end < start or rate < 0:
            raise TherapyError("a delivery segment needs start <= end and a rate >= 0")
        if self._last_end is not None and start < self._last_end - 1e-9:
            raise TherapyError("delivery segments must not overlap")
        self._last_end = end
        if end == start or rate == 0:
            return
        new = Segment(drug_id, start, end, rate, canonical_per_ml, bolus)
        last = self._segments[-1] if self._segments else None
        if (
            last is not None
            and last.end == start
            and (last.drug_id, last.rate_ml_h, last.canonical_per_ml, last.bolus)
            == (drug_id, rate, canonical_per_ml, bolus)
        ):
            # Contiguous and identical: extend instead of appending, so steady running stays O(1) segments.
            new = Segment(drug_id, last.start, end, rate, canonical_per_ml, bolus)
            self._segments[-1] = new
        else:
            self._segments.append(new)
        self._prune(end)

    def _prune(self, now: float) -> None:
        cutoff = now - _KEEP_S
        while self._segments and self._segments[0].end < cutoff:
            self._segments.pop(0)

    def volume_between(self, drug_id: str, t0: float, t1: float) -> float:
        return sum(s.volume_between(t0, t1) for s in self._segments if s.drug_id == drug_id)

    def amount_between(self, drug_id: str, t0: float, t1: float) -> float:
        """Canonical amount (mg, units or mL) of ``drug_id`` delivered between ``t0`` and ``t1``."""
        return sum(s.volume_between(t0, t1) * s.canonical_per_ml for s in self._segments if s.drug_id == drug_id)

    def amount_in_window(self, drug_id: str, now: float, window_s: float) -> float:
        return self.amount_between(drug_id, now - window_s, now)

    def segments(self) -> tuple[Segment, ...]:
        return tuple(self._segments)
