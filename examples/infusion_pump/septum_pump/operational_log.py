"""Operational records for a reviewer: what the pump was doing, for whom, at a known time.

A reviewer reconstructing an incident needs the pump's state between the events: pump_control writes an
``operational`` audit record every ``period_s`` of device time (config ``operational_record_s``, default
300 s) and at every change of mode (idle, programmed, running, paused, alarm, complete, fault), with the
UTC wall-clock time, the patient id, the prescription, the mode and the motor rate. Every new alarm from
the safety monitor gets an ``alarm_raised`` record with the remaining volume (to be infused and in the
reservoir), so the record says how much therapy was left when it stopped.

The patient id is that of the last hospital order a clinician confirmed (the keypad has no patient field);
empty when none was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_PERIOD_S = 300.0

Record = Callable[..., Any]  # Records.record-like: (event, severity, **fields)


@dataclass(frozen=True)
class Snapshot:
    mode: str
    patient_id: str
    drug: str
    concentration: str  # as the library writes it, e.g. "1 mg/mL"
    dose_rate: float
    dose_unit: str
    vtbi_ml: float
    rate_ml_h: float  # what pump_control asks of the motor now
    delivered_ml: float


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class OperationalLog:
    def __init__(self, record: Record, period_s: float = DEFAULT_PERIOD_S,
                 clock: Callable[[], str] = utc_now) -> None:
        if not period_s > 0:
            raise ValueError(f"operational_record_s must be greater than zero, not {period_s!r}")
        self.record = record
        self.period_s = period_s
        self.clock = clock
        self.last_at: float | None = None
        self.last_mode = ""
        self.last_alarm = ""

    def tick(self, now: float, snap: Snapshot) -> bool:
        """Write the record if the mode changed or the period is up; True if one was written."""
        if snap.mode != self.last_mode:
            why = "mode-change"
        elif self.last_at is None or now - self.last_at >= self.period_s:
            why = "periodic"
        else:
            return False
        self.last_at, self.last_mode = now, snap.mode
        self.record("operational", "info", utc=self.clock(), device_s=round(now, 3), why=why,
                    **_rounded(asdict(snap)))
        return True

    def alarm(self, alarm: str, priority: str, snap: Snapshot, reservoir_ml: float) -> bool:
        """An ``alarm_raised`` record for an alarm that was not active before; True if written."""
        if alarm == self.last_alarm:
            return False
        self.last_alarm = alarm
        if not alarm:
            return False
        remaining = max(0.0, snap.vtbi_ml - snap.delivered_ml) if snap.vtbi_ml else 0.0
        self.record("alarm_raised", "alert" if priority == "high" else "warning", alarm=alarm, priority=priority,
                    utc=self.clock(), remaining_vtbi_ml=round(remaining, 3), reservoir_ml=round(reservoir_ml, 3),
                    **_rounded(asdict(snap)))
        return True


def _rounded(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in fields.items()}
