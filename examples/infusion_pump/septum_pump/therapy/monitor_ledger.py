"""The safety monitor's own account of what it let the motor deliver, kept apart from the controller's.

The controller books the rates it *asked* for (``ledger.DeliveryLedger``, driven by ``state_machine``); the
monitor books the rates it *granted*, on its own clock, with the code in this module alone: it imports
nothing of ``ledger`` or ``state_machine`` (tests/pump/test_monitor_ledger.py checks the imports). Shared
accounting would share its bugs: a controller ledger that under-counts a dose window would then sit beside a
monitor that under-counts it the same way, and the monitor's limit would give way with the controller's.
Kept apart, a fault in the controller's accounting shows as a disagreement: the monitor limits the command
to what its own account leaves, and the two accounts drift further apart than the stated tolerance.

Rules (the C safety core, sel4/core/monitor_core.c, follows them operation for operation, and the
differential test requires bit-identical volumes, so the arithmetic below is part of the contract):

* a grant runs from the monitor step that made it for one lease; at every later event the part of it up to
  that event's time (never past the lease end) is booked;
* no instant is booked twice: after a clock fault the whole last grant is booked (it may all have run), and
  a later grant that starts inside that span books only the rest of itself;
* nothing is booked while no program is accepted (a grant is made for a program at its concentration);
* a window sums, stretch by stretch in booking order, ``rate x overlap / 3600 x amount per mL``; adjoining
  stretches at the same rate, drug, concentration and bolus flag are joined, and stretches that ended more
  than 4 h + 1 min before the newest booking are forgotten (no window looks back that far).
"""

from __future__ import annotations

from dataclasses import dataclass

from septum.errors import InvariantBroken

from .units import SECONDS_PER_HOUR

# The longest dose window is 4 h; a minute more keeps a stretch until no window can reach it.
_FORGET_AFTER_S = 4 * 3600.0 + 60.0
_OVERLAP_SLACK_S = 1e-9  # rounding in the booked-until time, never a real overlap


@dataclass(frozen=True)
class AllowedStretch:
    """Delivery the monitor allowed at one rate, for one drug, from ``start`` to ``end`` (seconds)."""

    drug_id: str
    start: float
    end: float
    rate_ml_h: float
    canonical_per_ml: float
    bolus: bool

    @property
    def volume_ml(self) -> float:
        return self.rate_ml_h * (self.end - self.start) / SECONDS_PER_HOUR

    def amount_in(self, t0: float, t1: float) -> float:
        """Canonical amount of this stretch that lies between ``t0`` and ``t1``."""
        lo = t0 if t0 > self.start else self.start
        hi = t1 if t1 < self.end else self.end
        if hi <= lo:
            return 0.0
        return self.rate_ml_h * (hi - lo) / SECONDS_PER_HOUR * self.canonical_per_ml


@dataclass
class Grant:
    """A rate the monitor granted: booked up to ``booked_to`` (at first, when it was granted), it runs out at
    ``end``."""

    booked_to: float
    end: float
    rate_ml_h: float
    bolus: bool


class MonitorLedger:
    """What the monitor allowed: the grant in force, the stretches booked from earlier grants, and the totals.

    ``delivered_ml`` counts under the accepted program (reset when a new one is accepted), ``allowed_total_ml``
    everything since the monitor started (what the motor counter is compared with)."""

    def __init__(self) -> None:
        self._stretches: list[AllowedStretch] = []
        self._booked_until: float | None = None  # end of the latest booking, whatever its rate
        self._grant: Grant | None = None
        self._program: tuple[str, float] | None = None  # (drug, canonical amount per mL) the grants are for
        self.delivered_ml = 0.0
        self.allowed_total_ml = 0.0

    # --------------------------------------------------------------------------------------- grants

    def accept_program(self, drug_id: str, canonical_per_ml: float) -> None:
        """A new program runs from now: its volume counts from zero and no earlier grant carries over.
        Book what ran under the old one first (``book``)."""
        self._program = (drug_id, canonical_per_ml)
        self.delivered_ml = 0.0
        self._grant = None

    def clear_program(self) -> None:
        self._program = None
        self._grant = None

    def grant(self, now: float, rate_ml_h: float, bolus: bool, lease_s: float) -> None:
        """The monitor granted ``rate_ml_h`` from ``now`` for ``lease_s`` (a rate of 0 is a grant too)."""
        self._grant = Grant(now, now + lease_s, rate_ml_h, bolus)

    def withdraw(self) -> None:
        """No grant is in force from now (what the old one ran up to now must have been booked)."""
        self._grant = None

    def book(self, now: float) -> float | None:
        """Book the grant in force up to ``now`` (at most to its end). Returns the volume booked as a bolus,
        0.0 included, or None when nothing of a bolus was booked (the PCA tracker counts the former)."""
        grant, program = self._grant, self._program
        if grant is None or program is None:
            return None
        until = now if now < grant.end else grant.end
        since = grant.booked_to
        if self._booked_until is not None and since < self._booked_until:
            since = self._booked_until  # the clock-fault path booked this span already
        booked: float | None = None
        if until > since:
            volume = grant.rate_ml_h * (until - since) / SECONDS_PER_HOUR
            self._store(program, since, until, grant)
            self.delivered_ml += volume
            self.allowed_total_ml += volume
            booked = volume if grant.bolus else None
        if until > grant.booked_to:
            grant.booked_to = until
        return booked

    def book_whole_grant(self) -> float | None:
        """The clock cannot be trusted: book the grant in force to its end (it may all have run) and end it."""
        booked = self.book(self._grant.end) if self._grant is not None else None
        self._grant = None
        return booked

    def _store(self, program: tuple[str, float], start: float, end: float, grant: Grant) -> None:
        drug_id, per_ml = program
        rate = grant.rate_ml_h
        if not (rate >= 0 and end >= start):  # NaN fails both: the monitor only grants finite rates >= 0
            raise InvariantBroken(f"internal invariant broken: booking {rate!r} mL/h from {start!r} to {end!r}")
        if self._booked_until is not None and start < self._booked_until - _OVERLAP_SLACK_S:
            raise InvariantBroken("internal invariant broken: a booking overlaps an earlier one")
        self._booked_until = end
        if rate == 0:
            return
        last = self._stretches[-1] if self._stretches else None
        if (last is not None and last.end == start and last.drug_id == drug_id and last.rate_ml_h == rate
                and last.canonical_per_ml == per_ml and last.bolus == grant.bolus):
            # steady running stays one stretch, however long
            self._stretches[-1] = AllowedStretch(drug_id, last.start, end, rate, per_ml, grant.bolus)
        else:
            self._stretches.append(AllowedStretch(drug_id, start, end, rate, per_ml, grant.bolus))
        horizon = end - _FORGET_AFTER_S
        keep = 0
        while keep < len(self._stretches) and self._stretches[keep].end < horizon:
            keep += 1
        if keep:
            del self._stretches[:keep]

    # --------------------------------------------------------------------------------------- windows

    def amount_between(self, drug_id: str, t0: float, t1: float) -> float:
        """Canonical amount (mg, units or mL) of ``drug_id`` the monitor allowed between ``t0`` and ``t1``."""
        total = 0.0
        for stretch in self._stretches:
            if stretch.drug_id == drug_id:
                total += stretch.amount_in(t0, t1)
        return total

    def amount_in_window(self, drug_id: str, now: float, window_s: float) -> float:
        return self.amount_between(drug_id, now - window_s, now)

    def segments(self) -> tuple[AllowedStretch, ...]:
        return tuple(self._stretches)
