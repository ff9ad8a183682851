"""Titration limit: a cap on how fast a drug's rate may be raised.

A clinician may raise a drug's programmed rate (dose rate, in the drug's dose unit) by at most
``max_increase`` above the lowest rate programmed for that drug during the last ``period_s``. Lowering is
always allowed; a first program has nothing to compare with (its limits are the library's). The rule comes
from the drug library (``titration: {max_increase: .., period_min: ..}`` per drug or per care area); without
one, ``default_rule`` applies: half the drug's hard maximum rate per 60 minutes.

Both the controller and the safety monitor keep their own ``RateHistory`` and apply the same rule: the
monitor checks later than the controller (when the program reaches it), so its window can only have lost
old entries, never gained a lower one, and it never refuses what the controller accepted for this reason.
Stopping and re-programming does not reset the history (only a new patient does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import TherapyError

DEFAULT_PERIOD_S = 3600.0
DEFAULT_FRACTION_OF_HARD_MAX = 0.5


@dataclass(frozen=True)
class TitrationRule:
    max_increase: float  # dose unit (e.g. mg/h) above the lowest rate in the period
    period_s: float

    def __post_init__(self) -> None:
        if not (self.max_increase >= 0 and self.period_s > 0):
            raise TherapyError("a titration limit needs max_increase >= 0 and a period above zero")


def default_rule(rate_hard_max: float) -> TitrationRule:
    return TitrationRule(DEFAULT_FRACTION_OF_HARD_MAX * rate_hard_max, DEFAULT_PERIOD_S)


@dataclass
class RateHistory:
    entries: list[tuple[float, str, float]] = field(default_factory=list)  # (time, drug, dose rate)

    def record(self, now: float, drug_id: str, rate: float) -> None:
        self.entries.append((now, drug_id, rate))
        # keep what a window of a day could still need (the last entry per drug before it is kept too)
        cutoff = now - 24 * 3600.0
        last_old: dict[str, tuple[float, str, float]] = {}
        kept = []
        for e in self.entries:
            if e[0] < cutoff:
                last_old[e[1]] = e
            else:
                kept.append(e)
        self.entries = sorted([*last_old.values(), *kept])

    def lowest(self, drug_id: str, now: float, period_s: float) -> float | None:
        """The lowest rate of ``drug_id`` in effect at any time in [now - period_s, now] (None: never programmed)."""
        start = now - period_s
        before = [r for t, d, r in self.entries if d == drug_id and t <= start]
        during = [r for t, d, r in self.entries if d == drug_id and start < t <= now]
        rates = ([before[-1]] if before else []) + during
        return min(rates) if rates else None


def titration_excess(rule: TitrationRule, history: RateHistory, drug_id: str, rate: float,
                     now: float) -> str | None:
    """Why raising ``drug_id`` to ``rate`` at ``now`` breaks the titration limit, or None."""
    low = history.lowest(drug_id, now, rule.period_s)
    if low is None:
        return None
    cap = low + rule.max_increase
    if rate <= cap * (1 + 1e-9) + 1e-12:
        return None
    return (f"raising the rate to {rate:g} is above the titration limit: at most {rule.max_increase:g} above the "
            f"lowest rate in the last {rule.period_s / 60:g} min ({low:g}), i.e. {cap:g}")
