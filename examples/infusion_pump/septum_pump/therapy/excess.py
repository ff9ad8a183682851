"""Over-infusion detection that integrates the excess: volume the motor pushed above what the monitor allowed.

The cumulative check (``measured - allowed > tolerance + fraction x allowed``) earns credit while the pump
runs accurately: after hours at the right rate, a small sustained excess (+8 %) took tens of minutes to
show. This detector keeps a running sum instead (a one-sided CUSUM with a bounded credit)::

    S <- clamp(S + d_measured - (1 + b) * d_allowed,  -C,  +inf)        every monitor step
    over-infusion when S > a + J * r / 3600

``b`` is the pump's accuracy allowance (``AlarmConfig.over_infusion_fraction``, 5 %), ``a`` the encoder
noise floor (``floor_ml``), ``r`` the highest rate granted in the last two leases and ``J`` the time by
which the motor may follow a grant late (``jitter_s``, one lease): a rate change reaches the driver a
little after the monitor booked it, so each change may look like ``r x J / 3600`` mL of excess or credit.
The credit ``C = J x r / 3600`` absorbs exactly that and no more, so accurate running can never bank the
allowance for later.

Bound (derived in docs/pump-therapy.md): a motor that delivers ``(1 + f)`` times a steady granted rate
``r`` mL/h with ``f > b`` raises the alarm within ``(3600 a / r + 2 J) / (f - b)`` seconds.

After the alarm the motor is stopped; the condition stays *present* (so the alarm cannot be cleared) only
while the motor keeps pushing beyond what was allowed since the alarm by more than the same limit, i.e.
while the mechanism is still running away with nothing granted. The accumulated excess itself is history:
it was delivered and is audited, and it must not keep the alarm up forever (the restart-after-runaway
defect).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .units import SECONDS_PER_HOUR


@dataclass(frozen=True)
class ExcessConfig:
    fraction: float = 0.05  # b: accuracy allowance
    floor_ml: float = 0.01  # a: encoder resolution / noise floor
    jitter_s: float = 1.0  # J: how late the driver may follow a grant (the monitor passes one lease)


@dataclass
class _Mark:
    measured_ml: float
    allowed_ml: float
    limit_ml: float


class ExcessDetector:
    def __init__(self, config: ExcessConfig) -> None:
        self.config = config
        self.excess_ml = 0.0  # S
        self._last: tuple[float, float] | None = None  # (measured, allowed) at the previous update
        self._grants: deque[tuple[float, float]] = deque()  # (time granted, rate mL/h)
        self._mark: _Mark | None = None  # where measured/allowed stood when the alarm was raised

    def reset(self) -> None:
        """Start again from the next reading (after a clinician cleared the alarm or the counter was re-based)."""
        self.excess_ml = 0.0
        self._last = None
        self._mark = None

    def granted(self, now: float, rate_ml_h: float, lease_s: float) -> None:
        """The monitor granted ``rate_ml_h`` at ``now`` (for ``lease_s``)."""
        self._grants.append((now, max(0.0, rate_ml_h)))
        horizon = now - 2 * max(lease_s, self.config.jitter_s)
        while len(self._grants) > 1 and self._grants[0][0] < horizon:
            self._grants.popleft()

    def peak_rate_ml_h(self) -> float:
        return max((r for _, r in self._grants), default=0.0)

    def limit_ml(self) -> float:
        return self.config.floor_ml + self.config.jitter_s * self.peak_rate_ml_h() / SECONDS_PER_HOUR

    def update(self, measured_ml: float, allowed_ml: float, alarm_active: bool, gross: bool = False) -> bool:
        """One reading of the motor counter (``measured_ml``) against what was allowed; True if the
        over-infusion condition is present. ``gross`` is the caller's cumulative check, which raises the
        alarm too but, like this one, no longer holds it once the motor has stopped running away."""
        cfg = self.config
        limit = self.limit_ml()
        if self._last is not None:
            dm = measured_ml - self._last[0]
            da = allowed_ml - self._last[1]
            credit = cfg.jitter_s * self.peak_rate_ml_h() / SECONDS_PER_HOUR
            self.excess_ml = max(-credit, self.excess_ml + dm - (1 + cfg.fraction) * da)
        self._last = (measured_ml, allowed_ml)
        if alarm_active and self._mark is not None:
            m = self._mark
            since = (measured_ml - m.measured_ml) - (1 + cfg.fraction) * (allowed_ml - m.allowed_ml)
            return since > m.limit_ml
        present = self.excess_ml > limit or gross
        if present and self._mark is None:
            self._mark = _Mark(measured_ml, allowed_ml, limit)
        elif not alarm_active and not present:
            self._mark = None
        return present
