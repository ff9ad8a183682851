"""The pump_control partition: the infusion state machine (therapy ``Controller``) under the runtime.

Every control period it asks the controller for the wanted rate and sends it to safety_monitor as a
``MotorCommand`` together with a ``pc_heartbeat``; the monitor decides what the motor really does.
Commands come only from auth (already authenticated and authorised), with the principal and role auth
established. Remote (hospital) orders are only pre-filled: a clinician's ``confirm_order`` at the pump
programs them, and an unconfirmed order expires after ``order_ttl_s`` of device time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from septum.errors import InvariantBroken
from septum.runtime.partition import Partition

from .operational_log import OperationalLog, Snapshot
from .order_check import OrderCheck, check_remote_order
from .records import Records
from .therapy.alarms import ALARM_RULES, AlarmAction, AlarmKind
from .therapy.drug_library import DrugLibrary
from .therapy.errors import TherapyError
from .therapy.gates import start_refusal
from .therapy.pca import BolusSource
from .therapy.program import Principal, Verdict
from .therapy.state_machine import Controller, ControllerConfig, InfusionState
from .therapy_io import (
    DEFAULT_CARE_AREA,
    PCA_FIELDS,
    control_period,
    install_library,
    load_manufacturer_key,
    pca_fields,
    program_request,
    send_message,
)

ORDER_TTL_S = 600.0  # an unconfirmed remote order expires after 10 minutes of device time
PAUSED_TOO_LONG_S = 120.0  # device seconds paused before the "paused too long" notice (config paused_too_long_s)


@dataclass
class Entry:
    """A programming request as entered (kept for a soft-limit confirmation or a remote order)."""

    drug: str
    concentration: float
    dose_rate: float
    vtbi_ml: float
    weight_kg: float
    expires: float = 0.0
    order_id: str = ""
    pca: tuple[float, ...] = ()  # the per-patient PCA prescription as entered (therapy_io.PCA_FIELDS)
    needs_override: bool = False  # a remote order with soft-limit excesses (checked when it arrived)
    patient_id: str = ""


class PumpControl:
    def __init__(self, p: Partition) -> None:
        self.p = p
        self.period = control_period(p.clock.scale)
        self.key = load_manufacturer_key(p.data_dir)
        self.care_area = str(p.config.get("care_area", DEFAULT_CARE_AREA))
        self.order_ttl = float(p.config.get("order_ttl_s", ORDER_TTL_S))
        self.library: DrugLibrary | None = None
        self.ctl: Controller | None = None
        self.program_id = 0
        self.soft_pending: Entry | None = None
        self.orders: dict[str, Entry] = {}
        self.monitor_alarm = ""
        self.monitor_priority = "none"
        self.monitor_latched = False
        self.monitor_reservoir: float | None = None  # the monitor's last reading (none yet: no bolus)
        self.paused_too_long_s = float(p.config.get("paused_too_long_s", PAUSED_TOO_LONG_S))
        self.message = "waiting for a verified drug library"
        self.silenced = False
        self.last_status: tuple[Any, ...] = ()
        self.turn = 0
        self._edit: tuple[Entry, bool] | None = None  # an accepted change of a running infusion, to confirm
        self.records = Records(p, "audit_pump_control")
        # periodic and mode-change records for a reviewer, and alarms with the remaining volume
        self.patient_id = ""  # of the last hospital order a clinician confirmed
        self.oplog = OperationalLog(self.record, float(p.config.get("operational_record_s", 300.0)))

    # ------------------------------------------------------------------ records
    def record(self, event: str, severity: str = "info", **fields: Any) -> None:
        """Event stream and audit log; what does not get through is counted and reported (``Records``)."""
        self.records.record(event, severity, **fields)

    def say(self, text: str) -> None:
        self.message = text[:128]

    # ------------------------------------------------------------------ inputs
    def on_library(self, msg: Any) -> None:
        install_library(self.key, msg, self.library, self.record, self._use_library)

    def _use_library(self, lib: DrugLibrary) -> None:
        self.library = lib
        if self.ctl is None:
            self.ctl = Controller(lib, ControllerConfig(period_s=self.period, paused_too_long_s=self.paused_too_long_s),
                                  now=self.p.now())
            self.say("ready")
        else:
            self.ctl.library = lib

    def on_monitor(self, msg: Any) -> None:
        self.monitor_alarm, self.monitor_priority = msg.alarm, msg.alarm_priority
        self.monitor_latched = msg.latched_fault
        self.monitor_reservoir = msg.reservoir_ml
        ctl = self.ctl
        self.oplog.alarm(msg.alarm, msg.alarm_priority, self.snapshot(), msg.reservoir_ml)
        if ctl is None or not msg.alarm:
            return
        try:
            action = ALARM_RULES[AlarmKind(msg.alarm)].action
        except ValueError:
            return
        if msg.latched_fault:
            action = max(action, AlarmAction.LATCHED_FAULT)
        if action >= AlarmAction.STOP and ctl.state in (InfusionState.RUNNING, InfusionState.PAUSED,
                                                        InfusionState.COMPLETE):
            ctl.on_alarm(action, self.p.now())
            self.record("infusion_stopped_by_alarm", "alert", alarm=msg.alarm)
            self.say(f"ALARM: {msg.alarm}")

    def on_command(self, msg: Any) -> None:
        ctl = self.ctl
        now = self.p.now()
        who = Principal(msg.principal, msg.role, True)
        if ctl is None:
            self.record("command_refused", "warning", action=msg.action, reason="no verified drug library")
            if msg.action == "accept_remote_order":
                self.order_verdict(msg, check_remote_order(None, self.care_area, msg))
            return
        handler = getattr(self, f"do_{msg.action}", None)
        if handler is None:
            self.record("command_refused", "warning", action=msg.action, reason="not handled here")
            return
        ok, text = handler(ctl, msg, who, now)
        self.say(text)
        # who, what and why: the clinician's reason (soft-limit override, fault clear) goes in the record
        why = {"reason": msg.reason[:200]} if msg.reason else {}
        self.record("command", "notice" if ok else "warning", action=msg.action, principal=msg.principal,
                    role=msg.role, ok=ok, result=text[:200], **why)

    # ------------------------------------------------------------------ actions
    def _program(self, ctl: Controller, entry: Entry, who: Principal, now: float, reason: str = "") -> tuple[bool, str]:
        if self.library is None:
            raise InvariantBroken("internal invariant broken: self.library is not None")
        try:
            req = program_request(self.library, drug=entry.drug, care_area=self.care_area,
                                  concentration=entry.concentration, dose_rate=entry.dose_rate,
                                  vtbi_ml=entry.vtbi_ml, weight_kg=entry.weight_kg, principal=who,
                                  override_reason=reason, pca=entry.pca)
        except TherapyError as exc:
            return False, f"rejected: {exc}"
        decision = ctl.program_infusion(req, now)
        if decision.verdict is Verdict.NEEDS_CONFIRMATION:
            self.soft_pending = entry
            return False, "soft limit: confirm with a reason (" + decision.summary()[:90] + ")"
        if not decision.accepted or decision.program is None:
            return False, decision.summary()[:120]
        self.soft_pending = None
        if ctl.pending_edit is None:  # installed (not a pending edit of a running infusion)
            self.send_program(entry, soft=bool(reason))
            return True, f"programmed {entry.drug} {decision.program.rate_ml_h:.3g} mL/h; press start"
        self._edit = (entry, bool(reason))
        return True, "change pending: press start to confirm"

    def send_program(self, entry: Entry, soft: bool) -> None:
        # ``soft`` says a clinician confirmed a soft-limit excess here; the monitor audits it but acts only
        # on the clinician's approval that auth forwards to it
        self.program_id += 1
        send_message(self.p, "program", program_id=self.program_id, drug=entry.drug, care_area=self.care_area,
                     concentration=entry.concentration, dose_rate=entry.dose_rate, vtbi_ml=entry.vtbi_ml,
                     weight_kg=entry.weight_kg, soft_limit_confirmed=soft,
                     **dict(zip(PCA_FIELDS, _message_pca(entry.pca), strict=True)))

    def do_program_infusion(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        return self._program(ctl, Entry(msg.drug, msg.concentration, msg.dose_rate, msg.vtbi_ml, msg.weight_kg,
                                        pca=pca_fields(msg)), who, now)

    def do_override_soft_limit(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        if self.soft_pending is None:
            return False, "no soft-limit excess is waiting for confirmation"
        if not msg.reason.strip():
            return False, "a soft-limit override needs a reason"
        return self._program(ctl, self.soft_pending, who, now, reason=msg.reason.strip())

    def do_start_infusion(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        if ctl.pending_edit is not None:
            out = ctl.confirm_edit(who, now)
            if out.ok and self._edit is not None:
                self.send_program(*self._edit)
            return out.ok, out.message
        # a start (or resume) is never armed or confirmed while the monitor holds the motor (door open...)
        refusal = start_refusal(self.monitor_alarm, self.monitor_priority, self.monitor_latched)
        if refusal is not None:
            return False, refusal
        if ctl.state is InfusionState.ALARM:
            ctl.clear_alarm(who, now)
        if ctl.start_pending:
            out = ctl.confirm_start(who, now)
        else:
            out = ctl.request_start(who, now)
        return out.ok, out.message

    def do_pause_infusion(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        out = ctl.pause(who, now)
        return out.ok, out.message

    def do_stop_infusion(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        out = ctl.stop(who, now)
        if out.ok:
            send_message(self.p, "program", program_id=self.program_id + 1, drug="")  # the monitor forgets it too
            self.program_id += 1
        return out.ok, out.message

    def do_accept_remote_order(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        if msg.role != "hospital_server" or not msg.order_id:
            return False, "remote orders come only from the hospital server"
        # checked now against this partition's verified library (order_check), so the hospital is told
        # at once; the verdict is pump_control's, the network partition only relays it
        check = check_remote_order(self.library, self.care_area, msg)
        self.order_verdict(msg, check)
        if check.refused:
            return False, f"order {msg.order_id} refused: {check.reason}"
        self.orders = {k: v for k, v in self.orders.items() if v.expires > now}
        self.orders[msg.order_id] = Entry(msg.drug, check.concentration, msg.dose_rate, msg.vtbi_ml, msg.weight_kg,
                                          expires=now + self.order_ttl, order_id=msg.order_id,
                                          needs_override=check.verdict.value == "needs_override",
                                          patient_id=msg.patient_id)
        send_message(self.p, "pump_events", kind="order_result", order_id=msg.order_id,
                     text=f"pre-filled; waiting for clinician confirmation at the pump; {check.reason}"[:512],
                     at_ms=int(now * 1000))
        if check.verdict.value == "needs_override":
            return True, f"order {msg.order_id[:36]} SOFT LIMIT: override needed at confirmation"
        return True, f"order {msg.order_id} waiting for confirmation"

    def order_verdict(self, msg: Any, check: OrderCheck) -> None:
        """Tell the network partition (for the hospital) and the audit log what became of a remote order."""
        send_message(self.p, "order_verdicts", order_id=msg.order_id, verdict=check.verdict.value,
                     reason=check.reason)
        if check.refused:
            self.record("order_refused", "warning", order_id=msg.order_id, principal=msg.principal,
                        patient_id=msg.patient_id, drug=msg.drug, dose_rate=msg.dose_rate, dose_unit=msg.dose_unit,
                        care_area=msg.care_area, reason=check.reason)
            send_message(self.p, "pump_events", kind="order_result", order_id=msg.order_id,
                         text=f"refused: {check.reason}"[:512], at_ms=int(self.p.now() * 1000))
        else:
            self.record("order_prefilled", "notice", order_id=msg.order_id, principal=msg.principal,
                        patient_id=msg.patient_id, drug=msg.drug, verdict=check.verdict.value, reason=check.reason)

    def do_confirm_order(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        entry = self.orders.get(msg.order_id)
        if entry is None or entry.expires <= now:
            self.orders.pop(msg.order_id, None)
            return False, f"no pending order {msg.order_id!r} (unknown or expired)"
        ok, text = self._program(ctl, entry, who, now)
        if ok:
            del self.orders[msg.order_id]
            self.patient_id = entry.patient_id
        return ok, text

    def do_patient_bolus(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        if msg.role != "patient":
            return False, "only the patient's PCA button can request a bolus"
        d = ctl.request_bolus(BolusSource.PCA_BUTTON, now, reservoir_ml=self.monitor_reservoir)
        self.record("bolus_granted" if d.granted else "bolus_denied", "notice", reason=d.message)
        return d.granted, d.message

    def do_clinician_bolus(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        # distinct from the patient's bolus: a logged-in clinician at the keypad, within the library's bolus
        # limits; the monitor gives it only with the clinician's authorisation that auth forwards to it
        if msg.role != "clinician":
            return False, "only a clinician may give a clinician bolus"
        out = ctl.request_clinician_bolus(msg.bolus_dose, who, now, reservoir_ml=self.monitor_reservoir)
        self.record("clinician_bolus" if out.ok else "clinician_bolus_refused", "notice" if out.ok else "warning",
                    principal=msg.principal, dose=msg.bolus_dose, reason=msg.reason[:200], result=out.message)
        return out.ok, out.message

    def do_silence_alarm(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        self.silenced = True
        return True, "alarm silenced"

    def do_emergency_stop(self, ctl: Controller, msg: Any, who: Principal, now: float) -> tuple[bool, str]:
        out = ctl.emergency_stop(now)
        self.record("break_glass_emergency_stop", "critical", principal=msg.principal or "anyone")
        send_message(self.p, "pump_events", kind="alarm", text="emergency stop at the pump", at_ms=int(now * 1000))
        return out.ok, out.message

    # ------------------------------------------------------------------ the control period
    def tick(self) -> None:
        self.turn += 1
        now = self.p.now()
        ctl = self.ctl
        if ctl is None:
            cmd_seq, rate, bolus = self.turn, 0.0, False
        else:
            cmd = ctl.tick(now)
            cmd_seq, rate, bolus = cmd.seq, min(1200.0, cmd.rate_ml_h), cmd.bolus
        self.p.send("motor_cmd", seq=cmd_seq, rate_ml_h=rate, bolus=bolus)
        self.p.send("pc_heartbeat", seq=self.turn)
        self.status(rate)
        self.oplog.tick(now, self.snapshot(rate))
        if self.turn % 10 == 0:
            self.records.report()

    def expire_orders(self, now: float) -> None:
        """An unconfirmed order past its time leaves the display (and the hospital is told)."""
        for order_id in [k for k, v in self.orders.items() if v.expires <= now]:
            del self.orders[order_id]
            if order_id in self.message:  # the screen must not keep saying it is waiting for confirmation
                self.say(f"order {order_id} expired: not confirmed in time")
            self.record("order_expired", "notice", order_id=order_id, ttl_s=self.order_ttl)
            send_message(self.p, "pump_events", kind="order_result", order_id=order_id,
                         text="expired: not confirmed at the pump in time", at_ms=int(now * 1000))

    def snapshot(self, rate: float | None = None) -> Snapshot:
        ctl = self.ctl
        program = ctl.program if ctl else None
        mode = "fault" if self.monitor_latched else (ctl.state.value if ctl else "idle")
        return Snapshot(mode=mode, patient_id=self.patient_id, drug=program.drug_id if program else "",
                        concentration=program.concentration.describe() if program else "",
                        dose_rate=program.rate if program else 0.0,
                        dose_unit=program.dose_unit.value if program else "",
                        vtbi_ml=program.vtbi_ml if program else 0.0,
                        rate_ml_h=rate if rate is not None else (self.last_rate),
                        delivered_ml=ctl.delivered_ml if ctl else 0.0)

    @property
    def last_rate(self) -> float:
        return float(self.last_status[2]) if len(self.last_status) > 2 else 0.0

    def status(self, rate: float) -> None:
        ctl = self.ctl
        now = self.p.now()
        self.expire_orders(now)
        state = "fault" if self.monitor_latched else (ctl.state.value if ctl else "idle")
        program = ctl.program if ctl else None
        pending = min(self.orders.items(), key=lambda kv: kv[1].expires)[0] if self.orders else ""
        if pending and self.orders[pending].needs_override:  # the order display says it at once
            pending = f"{pending[:36]} (SOFT LIMIT: override needed)"
        fields = dict(state=state, drug=program.drug_id if program else "", rate_ml_h=rate,
                      delivered_ml=min(100000.0, ctl.delivered_ml) if ctl else 0.0,
                      vtbi_ml=program.vtbi_ml if program else 0.0, alarm=self.monitor_alarm,
                      alarm_priority=self.monitor_priority, message=self.message, pending_order=pending)
        # the confirmation screen shows what is about to run (rate_ml_h is the motor's, 0 before the start)
        shown = (ctl.pending_edit or program) if ctl else None
        fields.update(program_rate_ml_h=min(1200.0, shown.rate_ml_h) if shown else 0.0,
                      dose=f"{shown.rate:g} {shown.dose_unit}"[:32] if shown else "",
                      concentration=shown.concentration.describe()[:64] if shown else "",
                      confirm_pending=bool(ctl and (ctl.start_pending or ctl.pending_edit is not None)))
        if not self.monitor_alarm and ctl is not None and ctl.paused_too_long(now):
            # MotorCommand carries no infusion state, so this notice is pump_control's own
            fields.update(alarm=AlarmKind.PAUSED_TOO_LONG.value, alarm_priority="medium")
        key = (state, fields["drug"], round(rate, 6), fields["alarm"], self.message, pending,
               fields["confirm_pending"])
        if key != self.last_status or self.turn % 10 == 0:
            self.p.send("pump_status", **fields)
            if key[:4] != self.last_status[:4]:
                self.p.event("pump_state", **{k: v for k, v in fields.items() if k != "message"})
                send_message(self.p, "pump_events", kind="status", text=f"{state} {fields['drug']}"[:512],
                             value=min(100000.0, rate), unit="mL/h", at_ms=int(self.p.now() * 1000))
            self.last_status = key


def _message_pca(pca: tuple[float, ...]) -> tuple[float | int, ...]:
    """The PCA fields for a message (the counts are whole numbers there)."""
    values = pca or (0.0,) * len(PCA_FIELDS)
    return tuple(int(v) if name in ("pca_max_per_hour", "pca_bolus_count") else v
                 for name, v in zip(PCA_FIELDS, values, strict=True))


def main(p: Partition) -> None:
    pc = PumpControl(p)
    p.on("drug_library_pc", pc.on_library)
    p.on("commands", pc.on_command)
    p.on("monitor_status", pc.on_monitor)
    p.every(pc.period, pc.tick)
