"""The safety_monitor partition: the only owner of the motor and the sensors.

It drives the therapy ``SafetyMonitor`` (its own verified drug library, its own dose accounting):
  * every motor command from pump_control is checked by ``SafetyMonitor.step`` and only the permitted rate
    reaches the motor, as a lease of ``LEASE_PERIODS`` control periods (the motor driver stops by itself
    when a lease is not renewed, so a frozen monitor or a silent controller cannot leave it running);
  * a sensor frame that shows a hazard triggers a step at once (the motor stops within microseconds of
    the frame), and a timer checks every control period for hazards, stale sensors and controller silence;
  * pump_control silent (no valid motor command or pc_heartbeat) for ``HEARTBEATS_MISSED`` control periods
    latches a fault; only ``fault_reset`` from auth (a clinician) clears it;
  * a failed device operation (a motor write, a sensor read error or end-of-file) is a hazard, never a
    success: the monitor tries to stop the motor, latches ``motor-fault`` / ``sensor-link-fault``, raises
    the alarm and audits the operation and its error. The rate it reports is the last one the motor
    driver accepted, and only while that grant lasts;
  * a soft-limit excess runs only with a clinician's approval of that prescription, which auth forwards on
    ``soft_limit_approvals`` (only auth holds that channel's sending end); pump_control's
    ``soft_limit_confirmed`` is a claim that is audited, never acted on;
  * records it could not hand on (event stream or audit channel full) raise ``records-lost`` and are
    counted in its next report;
  * without a verified drug library nothing runs.
"""

from __future__ import annotations

import time
from typing import Any

from septum.errors import InvariantBroken
from septum.runtime.partition import Partition

from .records import Records
from .sim import wire
from .therapy.alarms import ALARM_RULES, AlarmAction, AlarmKind, SensorReading, sensor_conditions
from .therapy.approvals import DEFAULT_TTL_S, Approval, ApprovalBook, ApprovalRefused, Prescription
from .therapy.drug_library import DrugLibrary
from .therapy.errors import TherapyError
from .therapy.monitor import MonitorConfig, MotorDecision, SafetyMonitor
from .therapy.program import Principal, Severity, Verdict, validate_program
from .therapy.state_machine import InfusionState, RateCommand
from .therapy_io import (
    DEFAULT_CARE_AREA,
    HEARTBEATS_MISSED,
    LEASE_PERIODS,
    control_period,
    install_library,
    load_manufacturer_key,
    monitor_period,
    pca_fields,
    program_request,
)

# no sensor frame for this long (real time): sensor fault. The sensor board sends a frame every few
# milliseconds; 100 ms tolerates a busy host's scheduling without leaving a dead board unnoticed for long
# (the motor lease stops the motor within a control period whatever this says).
SENSOR_STALE_REAL_S = 0.100
STATUS_EVERY = 5  # monitor_alarms to the ui every this many periods (and on every change)
RECORDS_LOST_HOLD_S = 300.0  # device seconds the records-lost advisory stays up after the last loss
# Programs pump_control sends carry no principal: auth authorised whoever programmed, the monitor cannot see
# who. This stand-in lets the monitor check the values; it can never confirm a soft-limit excess (only a
# clinician's approval from auth can, with that clinician as the principal).
CONTROLLER_PROGRAM = Principal("program-from-pump_control", "clinician", True)


class MonitorPartition:
    def __init__(self, p: Partition) -> None:
        self.p = p
        scale = p.clock.scale
        self.period = monitor_period(scale)
        self.pc_period = control_period(scale)
        self.silent_after = HEARTBEATS_MISSED * self.pc_period
        self.key = load_manufacturer_key(p.data_dir)
        self.care_area = str(p.config.get("care_area", DEFAULT_CARE_AREA))
        self.library: DrugLibrary | None = None
        self.monitor: SafetyMonitor | None = None
        self.sensors: SensorReading | None = None
        self.sensors_seen = False
        self.pc_seen = False  # pump_control's first heartbeat arrived
        self.waiting_program: Any = None
        self.sensors_at = time.monotonic()
        self.last_pc = p.now()  # last valid motor command or heartbeat (device time)
        self.last_hb = p.now()
        self.motor_seq = 0
        self.sent_rate = -1.0
        self.alarm_key: tuple[str, ...] = ()
        self.turn = 0
        self.latched = False
        self.sent_until = 0.0  # device time at which the last grant the driver accepted runs out
        self.records = Records(p, "audit_safety_monitor")
        self.approvals = ApprovalBook(float(p.config.get("soft_limit_approval_s", DEFAULT_TTL_S)))
        self.soft_waiting: tuple[Any, float] | None = None  # a program waiting for its clinician's approval
        self.early_faults: dict[AlarmKind, str] = {}  # device faults before the SafetyMonitor existed
        self.repeated_failures: dict[str, int] = {}  # failures of a device while its fault was latched

    # ------------------------------------------------------------------ records
    def record(self, event: str, severity: str = "info", **fields: Any) -> None:
        """Into the device's event stream and, over the audit channel, the tamper-evident audit log (what
        does not get through is counted and reported: ``report_losses``)."""
        self.records.record(event, severity, **fields)

    def report_losses(self) -> None:
        if self.records.report() is not None and self.monitor is not None:
            self.monitor.hold_advisory(AlarmKind.RECORDS_LOST, self.p.now(), RECORDS_LOST_HOLD_S)

    # ------------------------------------------------------------------ motor
    def _motor_send(self, rate: float, lease: float) -> None:
        self.motor_seq += 1
        self.p.device("motor").send(wire.encode(wire.MotorSet(seq=self.motor_seq, rate_ml_h=rate, lease_s=lease)))

    def drive(self, rate: float, force: bool = False) -> bool:
        """Grant ``rate`` to the motor; False if the driver did not take it (a latched motor fault)."""
        if rate <= 0 and self.sent_rate == 0.0 and not force:
            return True
        lease = LEASE_PERIODS * self.pc_period if rate > 0 else 0.0
        try:
            self._motor_send(rate, lease)
        except OSError as exc:
            self.device_failed(AlarmKind.MOTOR_FAULT, "motor", "write", exc)
            return False
        self.sent_rate = rate  # applied only now: the driver took it
        self.sent_until = self.p.now() + lease
        return True

    def device_failed(self, kind: AlarmKind, device: str, operation: str, error: BaseException | str) -> None:
        """A failed device operation: stop the motor (best effort), latch, audit what failed and how. The
        caller shows the alarm (``apply``); the latch holds until a clinician restart."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        stop = "not needed"
        if self.sent_rate != 0.0 or device == "motor":
            try:
                self._motor_send(0.0, 0.0)
            except OSError as exc:
                stop = f"failed ({type(exc).__name__}); the driver stops when its grant runs out"
            else:
                stop = "sent"
                self.sent_rate, self.sent_until = 0.0, self.p.now()
        reason = f"{device} {operation} failed: {text}"[:300]
        latched = kind in self.early_faults if self.monitor is None else self.monitor.alarms.is_active(kind)
        if latched:  # already latched and audited: count the repeats (a dead link fails every period)
            self.repeated_failures[device] = self.repeated_failures.get(device, 0) + 1
            return
        self.record("device_failed", "critical", device=device, operation=operation, error=text[:200],
                    motor_stop=stop, repeats_before=self.repeated_failures.pop(device, 0))
        if self.monitor is None:
            self.early_faults[kind] = reason
        else:
            self.monitor.device_fault(kind, self.p.now(), reason)

    def apply(self, d: MotorDecision) -> None:
        if not self.drive(d.rate_ml_h) and self.monitor is not None:
            # the motor did not take the grant: what is reported is the latched fault, not the rate
            d = self.monitor.device_fault(AlarmKind.MOTOR_FAULT, self.p.now(), "motor write failed")
        newly_latched = d.latched_fault and not self.latched
        self.latched = d.latched_fault  # before the status below, which must show the latch it reports
        key = tuple(a.kind.value for a in d.alarms)
        if key != self.alarm_key:
            new = [k for k in key if k not in self.alarm_key]
            self.alarm_key = key
            stop = d.action >= AlarmAction.STOP
            if new:
                self.record("alarm", "alert" if stop else "notice", alarms=",".join(new), action=d.action.name,
                            motor="stopped" if d.stopped else "running", reasons="; ".join(d.reasons)[:300])
            self.status(d)
        if newly_latched:
            self.record("latched_fault", "critical", reasons="; ".join(d.reasons)[:300])

    def status(self, d: MotorDecision | None = None) -> None:
        m = self.monitor
        # the periodic status (no decision at hand) must carry the alarms still active, or the display's
        # alarm would be wiped a few milliseconds after it was drawn
        active = d.alarms if d is not None else (m.alarms.active() if m else ())
        # the alarm that governs the motor comes first (a high-priority advisory such as reservoir-low must not
        # hide a stop alarm from pump_control, which refuses a start on it); then priority, then age
        top = max(active, key=lambda a: (a.rule.action, a.rule.priority), default=None)
        # what the driver accepted, and only while that grant lasts (the driver stops by itself after it)
        running = self.sent_rate > 0 and self.p.now() < self.sent_until
        fields = dict(
            motor_running=running,
            rate_ml_h=min(1200.0, max(0.0, self.sent_rate)) if running else 0.0,
            delivered_ml=min(100000.0, m.delivered_ml) if m else 0.0,
            reservoir_ml=min(5000.0, self.sensors.reservoir_ml) if self.sensors else 0.0,
            alarm=top.kind.value if top else "",
            alarm_priority=top.rule.priority.name.lower() if top else "none",
            latched_fault=self.latched,
        )
        self.p.send("monitor_status", **fields)
        self.p.send("monitor_alarms", **fields)

    # ------------------------------------------------------------------ inputs
    def on_library(self, msg: Any) -> None:
        install_library(self.key, msg, self.library, self.record, self._use_library)

    def _use_library(self, lib: DrugLibrary) -> None:
        self.library = lib
        if self.monitor is not None:
            self.monitor.library = lib  # a running program stays; a new one is checked against the new library
        self.ensure_monitor()

    def ensure_monitor(self) -> None:
        """The SafetyMonitor starts once it has a verified library and pump_control has spoken: the
        controller's silence is measured from its first heartbeat, not from when this partition started."""
        if self.monitor is not None or self.library is None or not self.pc_seen:
            return
        now = self.p.now()
        cfg = MonitorConfig(period_s=LEASE_PERIODS * self.pc_period, heartbeat_timeout_s=self.silent_after,
                            watchdog_timeout_s=max(1.0, 20 * self.period))
        self.monitor = SafetyMonitor(self.library, cfg, now=now)
        self.last_pc = self.last_hb = now
        for kind, reason in self.early_faults.items():  # a device that failed before: still latched
            self.monitor.device_fault(kind, now, reason)
        self.early_faults.clear()
        if self.latched != self.monitor.latched_fault:
            self.apply(self.monitor.step(now, None, self.current_sensors()))
        if self.waiting_program is not None:
            msg, self.waiting_program = self.waiting_program, None
            self.on_program(msg)

    def on_program(self, msg: Any) -> None:
        m, lib = self.monitor, self.library
        if lib is None:
            self.record("program_refused", "warning", reason="no verified drug library")
            return
        if m is None:  # pump_control has not spoken yet: check the program once the monitor is armed
            self.waiting_program = msg
            return
        now = self.p.now()
        if not msg.drug:
            m.clear_program(now)
            self.record("program_cleared")
            return
        self.soft_waiting = None
        care_area = msg.care_area or self.care_area
        # only a clinician's approval from auth, of exactly this prescription, in the care area this monitor
        # is configured for, can confirm a soft-limit excess
        approval = self.approvals.find(_prescription(msg), now) if care_area == self.care_area else None
        try:
            req = program_request(lib, drug=msg.drug, care_area=care_area, concentration=msg.concentration,
                                  dose_rate=msg.dose_rate, vtbi_ml=msg.vtbi_ml, weight_kg=msg.weight_kg,
                                  principal=Principal(approval.principal, "clinician", True) if approval
                                  else CONTROLLER_PROGRAM,
                                  override_reason=approval.reason if approval else "", pca=pca_fields(msg))
        except TherapyError as exc:
            self.record("program_refused", "warning", program_id=msg.program_id, reason=str(exc))
            return
        decision = validate_program(lib, req)
        if decision.verdict is Verdict.NEEDS_CONFIRMATION:
            # pump_control's word (soft_limit_confirmed) is not a clinician's decision: refuse, audit the
            # claim, and keep the program in case the approval is still on its way from auth
            excess = "; ".join(f"{i.field}: {i.message}" for i in decision.issues
                               if i.severity is Severity.SOFT)[:300]
            self.soft_waiting = (msg, now)
            self.record("program_refused", "warning", program_id=msg.program_id,
                        reason=f"soft-limit excess without a clinician's approval from auth: {excess}"[:300],
                        controller_claimed_confirmation=msg.soft_limit_confirmed)
            if msg.soft_limit_confirmed:
                self.record("soft_limit_claim_refused", "alert", program_id=msg.program_id,
                            prescription=_prescription(msg).describe(),
                            reason="pump_control claims a clinician confirmed; auth forwarded no matching approval")
            m.clear_program(now)
            return
        if decision.verdict is not Verdict.ACCEPTED or decision.program is None:
            self.record("program_refused", "warning", program_id=msg.program_id, reason=decision.summary()[:300])
            m.clear_program(now)
            return
        issues = m.accept_program(decision.program, now)
        if issues:
            self.record("program_refused", "warning", program_id=msg.program_id,
                        reason="; ".join(i.message for i in issues)[:300])
            return
        if approval is not None and decision.program.overrides:
            self.approvals.consume(approval)  # one approval, one program
            self.record("soft_limit_override_applied", "notice", program_id=msg.program_id,
                        principal=approval.principal, reason=approval.reason,
                        excess=",".join(i.field for i in decision.program.overrides))
        self.record("program_accepted", program_id=msg.program_id, drug=msg.drug,
                    rate_ml_h=round(decision.program.rate_ml_h, 4), vtbi_ml=msg.vtbi_ml)

    def on_approval(self, msg: Any) -> None:
        """A clinician's soft-limit approval, from auth (the only holder of this channel's sending end)."""
        now = self.p.now()
        rx = _prescription(msg)
        try:
            approval: Approval = self.approvals.add(principal=msg.principal, role=msg.role, reason=msg.reason,
                                                    prescription=rx, now=now)
        except ApprovalRefused as exc:
            self.record("soft_limit_approval_refused", "warning", principal=msg.principal, role=msg.role,
                        prescription=rx.describe(), reason=str(exc))
            return
        self.record("soft_limit_approval", "notice", principal=approval.principal, prescription=rx.describe(),
                    reason=approval.reason, valid_s=self.approvals.ttl_s)
        waiting = self.soft_waiting
        if waiting is not None and now - waiting[1] <= self.approvals.ttl_s and rx.matches(_prescription(waiting[0])):
            self.on_program(waiting[0])  # the program came first: it runs now that the clinician approved it

    def on_clinician_bolus(self, msg: Any) -> None:
        """A clinician's bolus, from auth (the only holder of this channel's sending end)."""
        m = self.monitor
        if m is None or msg.role != "clinician":
            self.record("clinician_bolus_refused", "warning", principal=msg.principal, role=msg.role,
                        reason="no monitor yet" if m is None else f"role {msg.role!r} may not give a clinician bolus")
            return
        out = m.authorise_clinician_bolus(Principal(msg.principal, "clinician", True), msg.bolus_dose, self.p.now())
        self.record("clinician_bolus_authorised" if out.ok else "clinician_bolus_refused",
                    "notice" if out.ok else "warning", principal=msg.principal, dose=msg.bolus_dose,
                    reason=msg.reason[:200], result=out.message)

    def on_motor_cmd(self, msg: Any) -> None:
        m = self.monitor
        if m is None or not self.sensors_seen:  # nothing runs before the library and the first sensor frame
            self.drive(0.0)
            return
        now = self.p.now()
        hb_ok = now - self.last_hb <= self.silent_after
        cmd = None
        if hb_ok:
            state = InfusionState.RUNNING if (msg.rate_ml_h > 0 or msg.bolus) else InfusionState.IDLE
            cmd = RateCommand(msg.seq, now, msg.rate_ml_h, msg.bolus, state, False)
            self.last_pc = now
        self.apply(m.step(now, cmd, self.current_sensors()))

    def on_heartbeat(self, msg: Any) -> None:
        self.last_hb = self.p.now()
        if not self.pc_seen:
            self.pc_seen = True
            self.ensure_monitor()

    def on_sensors(self, data: bytes) -> None:
        if not data:
            # end-of-file: the link failed (the runtime names the read error) or the board went away
            self.sensors = None
            errors = getattr(self.p, "device_errors", {})
            self.device_failed(AlarmKind.SENSOR_LINK_FAULT, "sensors", "read",
                               errors.get("sensors") or "end of file: the sensor link closed")
            if self.monitor is not None:
                self.apply(self.monitor.step(self.p.now(), None, None))
            return
        try:
            frame = wire.decode(data)
        except Exception:
            frame = None
        if not isinstance(frame, wire.SensorFrame):
            self.record("sensor_frame_malformed", "warning")
            return
        self.sensors = SensorReading(frame.line_pressure_mmhg, frame.largest_bubble_ul, frame.air_ul,
                                     frame.reservoir_ml, frame.door_open, frame.motor_volume_ml)
        self.sensors_at = time.monotonic()
        self.sensors_seen = True
        if self.monitor is not None and self.hazard(self.sensors):
            self.apply(self.monitor.step(self.p.now(), None, self.sensors))

    def hazard(self, s: SensorReading) -> bool:
        """A reading that shows a stop hazard the monitor has not raised yet (the step then latches it)."""
        if self.monitor is None:
            raise InvariantBroken("internal invariant broken: self.monitor is not None")
        cfg = self.monitor.alarms.config
        if s.problems():
            kinds = {AlarmKind.SENSOR_FAULT}
        else:
            kinds = sensor_conditions(cfg, s) & _STOP_CONDITIONS
            if s.largest_bubble_ul >= cfg.air_single_bubble_ul:
                kinds.add(AlarmKind.AIR_IN_LINE)
        return any(not self.monitor.alarms.is_active(k) for k in kinds)

    def current_sensors(self) -> SensorReading | None:
        if self.sensors is None or time.monotonic() - self.sensors_at > SENSOR_STALE_REAL_S:
            return None
        return self.sensors

    def on_fault_reset(self, msg: Any) -> None:
        m = self.monitor
        if m is None:
            return
        now = self.p.now()
        who = Principal(msg.principal, "clinician", True)  # auth forwards fault_reset only for clinicians
        m.step(now, None, self.current_sensors())  # see the line as it is now: only gone conditions clear
        outcome = m.clinician_restart(who, now)
        cleared = m.clear_alarms(who, now)
        self.last_pc = self.last_hb = now
        self.latched = m.latched_fault
        self.record("fault_reset", "notice", principal=msg.principal, restart=outcome.message,
                    cleared=",".join(k.value for k in cleared), reason=msg.reason)
        self.status()

    # ------------------------------------------------------------------ the control period
    def tick(self) -> None:
        self.turn += 1
        m = self.monitor
        if m is None or not self.sensors_seen:
            self.drive(0.0)
            return
        now = self.p.now()
        sensors = self.current_sensors()
        silent = now - self.last_pc > self.silent_after or now - self.last_hb > self.silent_after
        overdue = self.sent_rate > 0 and now - self.last_pc > LEASE_PERIODS * self.pc_period
        if silent or overdue or sensors is None or self.hazard(sensors):
            # no command this period: the monitor stops the motor, and latches a fault once the controller
            # has been silent for HEARTBEATS_MISSED periods (its own heartbeat timeout)
            self.apply(m.step(now, None, sensors))
        if self.turn % STATUS_EVERY == 0:
            self.report_losses()
            self.status()


_STOP_CONDITIONS = frozenset(k for k, r in ALARM_RULES.items() if r.action is AlarmAction.STOP)


def _prescription(msg: Any) -> Prescription:
    return Prescription(msg.drug, msg.concentration, msg.dose_rate, msg.vtbi_ml, msg.weight_kg, pca_fields(msg))


def main(p: Partition) -> None:
    mp = MonitorPartition(p)
    p.on("drug_library_sm", mp.on_library)
    p.on("program", mp.on_program)
    p.on("motor_cmd", mp.on_motor_cmd)
    p.on("pc_heartbeat", mp.on_heartbeat)
    p.on("fault_reset", mp.on_fault_reset)
    p.on("soft_limit_approvals", mp.on_approval)
    p.on("clinician_boluses", mp.on_clinician_bolus)
    p.on_device("sensors", mp.on_sensors)
    mp.drive(0.0, force=True)  # whatever the motor did before this monitor started, it stops now
    p.every(mp.period, mp.tick)
