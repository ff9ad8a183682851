"""A pump partition's records (event stream + audit channel), and the ones it could not hand on.

``p.event`` never blocks: when the control socket to the supervisor is full the record is dropped and the
runtime counts it in ``p.control_lost``. A full audit channel makes ``p.send`` return False. Neither may
pass unnoticed: ``Records`` counts both and, at most once per ``REPORT_EVERY_REAL_S``, reports what was lost
since the last report (``records_lost`` in the event stream and in the audit log, with the running totals)
once a path works again. It never blocks the partition (the safety monitor must not wait on anyone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

REPORT_EVERY_REAL_S = 0.5
MAX_DETAIL = 1024


@dataclass(frozen=True)
class Loss:
    """Records lost since the previous successful report, and totals since the partition started."""

    events: int
    audit: int
    events_total: int
    audit_total: int


class Records:
    def __init__(self, p: Any, audit_channel: str | None) -> None:
        self.p = p
        self.audit_channel = audit_channel
        self.audit_lost = 0  # audit records the audit channel refused (full)
        self._events_reported = 0  # p.control_lost already reported
        self._audit_reported = 0
        self._last_report = float("-inf")

    @staticmethod
    def event_severity(severity: str) -> str:
        return "warning" if severity in ("warning", "alert") else ("critical" if severity == "critical" else "info")

    def _audit(self, event: str, severity: str, fields: dict[str, Any]) -> bool:
        if self.audit_channel is None:
            return True
        detail = ", ".join(f"{k}={v}" for k, v in fields.items())[:MAX_DETAIL]
        ok = bool(self.p.send(self.audit_channel, event=event[:64], severity=severity, detail=detail,
                              at_ms=int(self.p.now() * 1000)))
        if not ok:
            self.audit_lost += 1
        return ok

    def _event(self, event: str, severity: str, fields: dict[str, Any]) -> bool:
        before = self.p.control_lost
        self.p.event(event, severity=self.event_severity(severity), **fields)
        return self.p.control_lost == before

    def record(self, event: str, severity: str = "info", **fields: Any) -> bool:
        """Into the device's event stream and the tamper-evident audit log; False if either lost it."""
        ok_event = self._event(event, severity, fields)
        ok_audit = self._audit(event, severity, fields)
        return ok_event and ok_audit

    def pending(self) -> Loss:
        return Loss(self.p.control_lost - self._events_reported, self.audit_lost - self._audit_reported,
                    self.p.control_lost, self.audit_lost)

    def report(self) -> Loss | None:
        """If records were lost since the last report, say so (bounded volume); the loss, else None.

        The counts move to "reported" only when both the event and the audit record got through, so a
        report that is itself lost is repeated with the larger count next time."""
        loss = self.pending()
        if not (loss.events or loss.audit):
            return None
        now = time.monotonic()
        if now - self._last_report < REPORT_EVERY_REAL_S:
            return loss
        self._last_report = now
        fields = dict(events_lost=loss.events, audit_lost=loss.audit, events_lost_total=loss.events_total,
                      audit_lost_total=loss.audit_total)
        if self.record("records_lost", "warning", **fields):
            self._events_reported = loss.events_total
            self._audit_reported = loss.audit_total
        return loss
