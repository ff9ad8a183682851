"""What every attack scenario shares: its result, the before/after checks, and the verdict.

A scenario's ``run(rig)`` performs the attack and returns a ``ScenarioResult``. ``Check`` snapshots the device
before the attack and afterwards decides the three things every scenario must end with (PUMP.md): therapy
within limits, the audit log verifying, and the event recorded in it. ``ok`` is true only when every attempt
was stopped AND all three hold, so a scenario whose attack got through can never report success.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .device import BASELINE, AttackRig

RATE_TOLERANCE = 1.05  # the motor driver's rate may read back a little above the command (float rounding)
VOLUME_SLACK_ML = 0.2  # one control period of lease at most, plus rounding


@dataclass
class ScenarioResult:
    id: str
    title: str
    tried: list[str] = field(default_factory=list)
    stopped_by: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # attempts that got through (the attack succeeded)
    therapy_ok: bool = False
    therapy: str = ""
    audit_ok: bool = False
    audit: str = ""
    recorded: bool = False
    records: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return (not self.failures and not self.error and bool(self.tried) and self.therapy_ok and self.audit_ok
                and self.recorded)

    def line(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        why = self.error or ("; ".join(self.failures[:2]) if self.failures else "")
        if not why and not self.ok:
            why = ", ".join(k for k, v in (("therapy", self.therapy_ok), ("audit", self.audit_ok),
                                            ("recorded", self.recorded)) if not v) + " not ok"
        stopped = "; ".join(dict.fromkeys(self.stopped_by))
        text = f"{verdict}  {self.id:<24} {len(self.tried)} tried, stopped by: {stopped[:150]}"
        return text + (f"  [{why[:200]}]" if why else "")

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "ok": self.ok, "tried": self.tried,
                "stopped_by": self.stopped_by, "failures": self.failures, "therapy_ok": self.therapy_ok,
                "therapy": self.therapy, "audit_ok": self.audit_ok, "audit": self.audit, "recorded": self.recorded,
                "records": self.records, "error": self.error}


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    tries: str  # what the attacker does
    stops: str  # what is expected to stop it
    run: Callable[[AttackRig], ScenarioResult]


class Check:
    """Before/after: motor, delivered volume, safe state, audit log. Create it just before the attack."""

    def __init__(self, rig: AttackRig, res: ScenarioResult) -> None:
        self.rig = rig
        self.res = res
        if not rig.motor_running():
            # an earlier scenario ended in a fail-safe stop: a clinician restarts the baseline, so every
            # scenario starts from a running infusion (and stays independent of the one before)
            rig.restore_baseline()
        self.ev_seq = rig.seq()
        self.audit_seq = rig.audit_last_seq() + 1
        # records caused by the attack were made after this instant (ms floor: some records carry ms)
        self.t_wall = math.floor(time.time() * 1000) / 1000
        self.motor_index = len(rig.sim.motor_log)
        self.delivered = rig.delivered_ml()
        self.t0 = rig.device_time()
        self.was_running = rig.motor_running()

    # -------------------------------------------------------------- attempts
    def stopped(self, tried: str, by: str) -> None:
        self.res.tried.append(tried)
        self.res.stopped_by.append(by)

    def got_through(self, tried: str, how: str) -> None:
        self.res.tried.append(tried)
        self.res.failures.append(f"{tried}: {how}")

    def expect(self, tried: str, stopped: bool, by: str, how: str = "") -> None:
        if stopped:
            self.stopped(tried, by)
        else:
            self.got_through(tried, how or "not stopped")

    # -------------------------------------------------------------- evidence
    def mark(self) -> tuple[int, float, int]:
        """Where the device's records stand now: (audit seq, wall time, event seq) for ``since``."""
        return (self.rig.audit_last_seq() + 1, math.floor(time.time() * 1000) / 1000, self.rig.seq())

    def since(self, mark: tuple[int, float, int], pred: Callable[[dict[str, Any]], bool],
              timeout: float = 5.0) -> dict[str, Any] | None:
        """The first audit record matching ``pred`` that was made after ``mark`` (bounded wait)."""
        return self.rig.wait_audit(after_mark(mark, pred), mark[0], timeout=timeout)

    # -------------------------------------------------------------- the verdict
    def finish(self, *records: Callable[[dict[str, Any]], bool], names: tuple[str, ...] = (),
               refusals: Iterable[tuple[str, str]] = ()) -> ScenarioResult:
        """Decide therapy, audit and recording.

        ``records``: predicates each matched by some audit record made after this check's snapshot (never an
        older one: a record every run has cannot count); ``names`` describes them for the report.
        ``refusals``: (attempt, detail) pairs of refusals the attack itself received from the kernel, for the
        defences that refuse without a record (seccomp, Landlock): they count as the evidence only when every
        one names an errno, and the report says that no audit record exists for them."""
        rig, res = self.rig, self.res
        problems: list[str] = []
        limit = BASELINE["rate"] * RATE_TOLERANCE
        for ch in rig.sim.motor_log[self.motor_index:]:
            if ch.running and ch.rate_ml_h > limit:
                problems.append(f"motor ran at {ch.rate_ml_h:g} mL/h (programmed {BASELINE['rate']:g})")
        elapsed_h = max(0.0, rig.device_time() - self.t0) / 3600.0
        delivered = rig.delivered_ml() - self.delivered
        allowed = BASELINE["rate"] * elapsed_h * RATE_TOLERANCE + VOLUME_SLACK_ML
        if delivered > allowed:
            problems.append(f"delivered {delivered:.3f} mL, limit {allowed:.3f} mL")
        failsafe = ""
        if self.was_running and not rig.motor_running():
            # a stop is within limits only when the safety monitor made it (fail-safe latch), never silently
            latched = [e for e in rig.events("alarm", "safety_monitor") if e.seq > self.ev_seq]
            if latched:
                failsafe = f"; fail-safe stop by the safety monitor ({latched[-1].fields.get('alarms')})"
            else:
                problems.append(f"the running infusion stopped (state {rig.pump_state()})")
        safe = [e for e in rig.events("safe_state") if e.seq > self.ev_seq]
        if safe:
            problems.append("the supervisor went to its safe state")
        res.therapy_ok = not problems
        res.therapy = "; ".join(problems) or (f"{delivered:.3f} mL in {elapsed_h * 3600:.0f} s device time at "
                                              f"<= {BASELINE['rate']:g} mL/h; motor "
                                              f"{'running' if rig.motor_running() else 'stopped'}{failsafe}")
        found: list[str] = []
        missing: list[str] = []
        mark = (self.audit_seq, self.t_wall, self.ev_seq)
        for i, pred in enumerate(records):
            name = names[i] if i < len(names) else f"record {i}"
            rec = rig.wait_audit(after_mark(mark, pred), self.audit_seq, timeout=5.0)
            if rec is None:
                missing.append(name)
            else:
                found.append(f"#{rec['seq']} {rec['partition']}:{rec['event']}")
        received = list(refusals)
        for attempt, detail in received:
            if ERRNO.search(detail):
                found.append(f"refusal received: {attempt}: {detail}"[:160])
            else:
                missing.append(f"a kernel refusal for {attempt!r} (got {detail!r})"[:160])
        if received:
            found.append("no audit record: the kernel refuses these silently")
        res.records = found
        res.recorded = bool(records or received) and not missing
        if missing:
            res.records.append("MISSING: " + ", ".join(missing))
        res.audit_ok, res.audit = rig.verify_audit()
        return res


ERRNO = re.compile(r"\b(EPERM|EACCES|ENOSYS|EINVAL|ENOSPC|EDQUOT|EFBIG|EAFNOSUPPORT|EPROTONOSUPPORT)\b")


RecordPred = Callable[[dict[str, Any]], bool]


def after_mark(mark: tuple[int, float, int], pred: RecordPred) -> RecordPred:
    """``pred``, restricted to records made after ``mark``: later in the log, later in time and, for the
    supervisor's records (they carry its event number), caused by an event after the mark."""
    audit_seq, t_wall, ev_seq = mark

    def check(rec: dict[str, Any]) -> bool:
        if int(rec.get("seq", -1)) < audit_seq or float(rec.get("time", 0.0)) < t_wall:
            return False
        detail = rec.get("detail")
        sup_seq = detail.get("sup_seq") if isinstance(detail, dict) else None
        if isinstance(sup_seq, int) and sup_seq <= ev_seq:
            return False
        return pred(rec)

    return check


def event_is(*names: str, partition: str | None = None, contains: str = "") -> Callable[[dict[str, Any]], bool]:
    """An audit record whose event starts with one of ``names`` (and, optionally, mentions ``contains``)."""

    def pred(rec: dict[str, Any]) -> bool:
        if partition is not None and rec.get("partition") != partition:
            return False
        if not any(str(rec.get("event", "")).startswith(n) for n in names):
            return False
        return not contains or contains in (str(rec.get("message", "")) + str(rec.get("detail", "")))

    return pred
