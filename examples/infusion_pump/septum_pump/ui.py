"""The ui partition: the front panel (keypad, display, PCA button, speaker; all four are its own devices).

It holds no authority: every key that asks for an action becomes a ``UiRequest`` to auth, which answers on
``auth_replies`` and forwards what it authorised. Login gives a session that later requests carry;
``patient_bolus`` (the physical PCA button) and ``emergency_stop`` (break glass) need none.

The keypad is a pump's (``therapy/keypad.py``): numbers are typed with the digit keys, decimal, clear and
enter, field by field; keys are debounced on the keypad's own press time stamps (``key_debounce_s``, default
50 ms; ignored repeats are counted and reported as ``keys_debounced``). Before the final start the display
shows what is about to run: drug, concentration, dose rate, pump rate and VTBI, from pump_control's program.

The speaker plays the IEC 60601-1-8 pattern of the highest-priority alarm the safety monitor and pump_control
report (``therapy/audible.py``). An authorised ``silence_alarm`` pauses it for ``audio_pause_s`` (default
120 s, device time); a still-active alarm then sounds again, and a new or higher alarm sounds at once.

A soft-limit override is two requests from one key: ``approve_soft_limit`` with the prescription in the
form (what the clinician entered) and the reason, which auth forwards to the safety monitor, then
``override_soft_limit`` for pump_control. The monitor runs the excess only with the first.
"""

from __future__ import annotations

import time
from typing import Any

from septum.runtime.partition import Partition

from .records import REPORT_EVERY_REAL_S, Records
from .sim import wire
from .therapy.alarms import Priority
from .therapy.audible import AUDIO_PAUSE_S, AlarmAudio, AudioState
from .therapy.keypad import DEBOUNCE_S, ENTRY_KEYS, Debouncer, KeypadEntry
from .therapy_io import send_message

NUMERIC = {"concentration": "concentration", "rate": "dose_rate", "vtbi": "vtbi_ml", "weight": "weight_kg",
           # the per-patient PCA prescription (all left empty: the drug library's standard protocol)
           "demand": "pca_demand_dose", "lockout": "pca_lockout_min", "per_hour": "pca_max_per_hour",
           "limit_1h": "pca_limit_1h", "limit_4h": "pca_limit_4h", "bolus_count": "pca_bolus_count"}
WHOLE = ("pca_max_per_hour", "pca_bolus_count")  # counts: whole numbers in the messages
ACTIONS = {
    "login": "login", "logout": "logout", "program": "program_infusion", "start": "start_infusion",
    "confirm": "start_infusion", "pause": "pause_infusion", "stop": "stop_infusion",
    "confirm_order": "confirm_order", "override": "override_soft_limit", "silence": "silence_alarm",
    "clear_fault": "clear_fault", "emergency_stop": "emergency_stop",
    # a clinician's bolus (logged in; the dose in the bolus_dose field): distinct from the patient's PCA button
    "clinician_bolus": "clinician_bolus",
    # a biomed opens an install window: auth then accepts the update server's pushes for grant_s seconds
    "install_update": "install_update",
}
KEYS = frozenset(ACTIONS) | ENTRY_KEYS  # every key on the keypad that is not a field
NO_SESSION = {"login", "emergency_stop", "patient_bolus"}
PRIORITIES = {"low": Priority.LOW, "medium": Priority.MEDIUM, "high": Priority.HIGH}
AUDIO_EVERY_REAL_S = 0.2  # the speaker and the pause countdown are brought up to date this often
SOUND_REFRESH_S = 1.0  # device seconds: the speaker is told its state again at least this often
# the ui's own alarm: the safety monitor reports at least every 5 of its periods (>= 50 ms real); silent this
# long (real time) means the alarm system has lost it, and the speaker must say so rather than stay quiet
MONITOR_SILENT_REAL_S = 2.0
MONITOR_SILENT = "monitor-status-lost"


class FrontPanel:
    def __init__(self, p: Partition) -> None:
        self.p = p
        self.entry = KeypadEntry()
        self.debounce = Debouncer(float(p.config.get("key_debounce_s", DEBOUNCE_S)))
        self.audio = AlarmAudio(pause_s=float(p.config.get("audio_pause_s", AUDIO_PAUSE_S)))
        self.sound: AudioState | None = None
        self.sound_sent: tuple[Any, ...] = ()
        self.sound_sent_at = -1e18
        self.debounced_reported = 0
        self.session = ""
        self.user = ""
        self.role = ""
        self.request_id = 0
        self.pending: dict[int, str] = {}
        self.pump: Any = None
        self.monitor: Any = None
        self.monitor_seen: float | None = None  # time.monotonic() of the last monitor status
        self.monitor_silent = False
        self.note = "please log in"
        self.records = Records(p, None)  # events only: losses are reported in the event stream
        # refused keypad actions are also for a reviewer: into the audit log (audit_ui) with who and why
        self.refusals = Records(p, "audit_ui")

    @property
    def debounced(self) -> int:
        return self.debounce.ignored

    def request(self, action: str, **fields: Any) -> None:
        if action not in NO_SESSION and not self.session:
            self.note = f"log in first ({action})"
            self.refusals.record("keypad_refused", "warning", action=action, principal="unauthenticated",
                                 reason="not logged in: the action needs a clinician's login")
            self.show()
            return
        self.request_id += 1
        self.pending[self.request_id] = action
        if action not in NO_SESSION:
            fields["session"] = self.session
        if not send_message(self.p, "ui_requests", request_id=self.request_id, action=action, **fields):
            self.note = "busy: try again"
        self.p.event("ui_request", request_id=self.request_id, action=action)

    def on_key(self, data: bytes) -> None:
        if not data:
            return  # keypad unplugged
        try:
            key = wire.decode(data)
        except Exception:
            key = None
        if not isinstance(key, wire.Key):
            self.p.event("keypad_malformed", severity="warning")
            return
        # the keypad's own time stamp of the press when it gives one: a late read is not a bounce
        at = key.at_ms / 1000.0 if key.at_ms > 0 else time.monotonic()
        if not self.debounce.accept(key.key, key.value, at):
            return
        out = self.entry.press(key.key, key.value)
        if out.kind != "function":
            if out.kind == "refused":
                self.note = out.note[:120]
            self.show()
            return
        action = ACTIONS.get(key.key)
        if action is None:
            self.note = f"unknown key {key.key[:20]}"
            # e.g. a "bolus" key: a patient bolus comes only from the PCA button, never from the keypad
            why = ("no such key: a patient bolus is given only from the PCA button (a clinician's bolus is the "
                   "clinician_bolus key, after login)" if "bolus" in key.key.lower() else "no such key")
            self.refusals.record("keypad_refused", "warning", key=key.key[:20],
                                 principal=self.user or "unauthenticated", reason=why)
            self.show()
            return
        f = self.entry.values
        if action == "login":
            self.request("login", user=f.get("user", "")[:64], pin=self.entry.take("pin")[:32])
            self.show()  # the PIN is gone from the form
        elif action == "logout":
            self.request("logout")
            self.session = self.user = self.role = ""
        elif action == "program_infusion":
            rx = self.prescription()
            if rx is not None:
                self.request(action, **rx)
        elif action in ("confirm_order",):
            self.request(action, order_id=f.get("order_id", "")[:64])
        elif action == "override_soft_limit":
            # the safety monitor's copy of the decision first, bound to the prescription as entered
            rx = self.prescription()
            if rx is not None:
                reason = f.get("reason", "")[:256]
                self.request("approve_soft_limit", reason=reason, **rx)
                self.request(action, reason=reason)
        elif action == "clinician_bolus":
            try:
                dose = self.entry.number("bolus_dose")
            except ValueError:
                self.note = "bolus_dose is not a number"
                self.show()
                return
            reason = f.get("reason", "")[:256]
            # the safety monitor's copy of the decision first (through auth), then pump_control's
            self.request("authorise_clinician_bolus", drug=f.get("drug", "")[:64], bolus_dose=dose, reason=reason)
            self.request(action, bolus_dose=dose, reason=reason)
        elif action == "clear_fault":
            self.request(action, reason=f.get("reason", "")[:256])
        else:
            self.request(action)

    def prescription(self) -> dict[str, Any] | None:
        """The prescription in the form (None, with a note on the display, if a number is not one)."""
        nums: dict[str, Any] = {}
        for k, name in NUMERIC.items():
            try:
                nums[name] = self.entry.number(k)
            except ValueError:
                self.note = f"{k} is not a number"
                self.show()
                return None
        for name in WHOLE:
            if nums[name] != int(nums[name]):
                self.note = f"{name} must be a whole number"
                self.show()
                return None
            nums[name] = int(nums[name])
        return {"drug": self.entry.values.get("drug", "")[:64], **nums}

    def on_button(self, data: bytes) -> None:
        if not data:
            return
        try:
            press = wire.decode(data)
        except Exception:
            press = None
        if isinstance(press, wire.ButtonPress):
            self.request("patient_bolus")

    def on_reply(self, msg: Any) -> None:
        action = self.pending.pop(msg.request_id, "?")
        if action == "login" and msg.ok:
            self.session, self.role = msg.session, msg.role
            self.user = self.entry.values.get("user", "")
        if not msg.ok and msg.reason and "session" in msg.reason:
            self.session = ""  # expired or revoked: ask for a new login
        self.note = f"{action}: {'ok' if msg.ok else 'denied'} {msg.reason}".strip()[:120]
        if action == "silence_alarm" and msg.ok:
            # audio pause only once auth authorised it (a clinician's key), and only the sound
            if self.audio.silence(self.p.now()):
                self.p.event("audio_paused", pause_s=self.audio.pause_s, alarm=self.sound.alarm if self.sound else "")
            else:
                self.note = "silence_alarm: no alarm to silence"
            self.update_sound()
        self.p.event("auth_reply", request_id=msg.request_id, action=action, ok=msg.ok, reason=msg.reason)
        self.show()

    def on_pump(self, msg: Any) -> None:
        changed = self.pump is None or (msg.state, msg.alarm, msg.message, msg.confirm_pending) != (
            self.pump.state, self.pump.alarm, self.pump.message, self.pump.confirm_pending)
        self.pump = msg
        self.update_sound()
        if changed:
            self.show()

    def on_monitor(self, msg: Any) -> None:
        changed = self.monitor is None or (msg.alarm, msg.latched_fault) != (self.monitor.alarm,
                                                                             self.monitor.latched_fault)
        self.monitor = msg
        self.monitor_seen = time.monotonic()
        if self.monitor_silent:
            self.monitor_silent = False
            changed = True
        self.update_sound()
        if changed:
            self.show()

    # ------------------------------------------------------------------ the speaker
    def alarm_conditions(self) -> dict[str, Priority]:
        """The alarms the monitor and pump_control report now, by name (either may report one the other
        does not; the same name from both is one condition)."""
        out: dict[str, Priority] = {}
        for msg in (self.monitor, self.pump):
            if msg is not None and msg.alarm and msg.alarm_priority in PRIORITIES:
                prio = PRIORITIES[msg.alarm_priority]
                out[msg.alarm] = max(prio, out.get(msg.alarm, prio))
        if self.monitor_silent:
            out[MONITOR_SILENT] = Priority.HIGH
        return out

    def update_sound(self) -> None:
        now = self.p.now()
        self.audio.update(now, self.alarm_conditions())
        state = self.audio.state(now)
        countdown = int(state.paused_remaining_s + 0.999)
        redraw = self.sound is not None and (
            (self.sound.name, self.sound.paused, int(self.sound.paused_remaining_s + 0.999))
            != (state.name, state.paused, countdown))
        self.sound = state
        key = (state.name, state.alarm, state.paused)
        if key != self.sound_sent or now - self.sound_sent_at >= SOUND_REFRESH_S * max(1.0, self.p.clock.scale):
            packet = wire.Sound(pattern=state.name, alarm=state.alarm[:64], paused=state.paused,
                                paused_remaining_s=round(state.paused_remaining_s, 3))
            try:
                self.p.device("speaker").send(wire.encode(packet))
                if key != self.sound_sent:
                    self.p.event("sound", pattern=state.name, alarm=state.alarm, paused=state.paused)
                self.sound_sent, self.sound_sent_at = key, now
            except OSError:
                pass  # speaker unplugged: the display and the light still show the alarm
        if redraw:
            self.show()

    def tick(self) -> None:
        silent = self.monitor_seen is not None and time.monotonic() - self.monitor_seen > MONITOR_SILENT_REAL_S
        if silent != self.monitor_silent:
            self.monitor_silent = silent
            self.p.event("monitor_status_lost" if silent else "monitor_status_back",
                         severity="critical" if silent else "notice")
            self.show()
        self.update_sound()
        if self.debounce.ignored != self.debounced_reported:
            self.debounced_reported = self.debounce.ignored
            self.p.event("keys_debounced", total=self.debounce.ignored)

    # ------------------------------------------------------------------ the display
    def status_lines(self, pm: Any) -> list[str]:
        if pm.confirm_pending and pm.drug:
            # what is about to run, from pump_control's program (not the motor, which has not moved yet)
            return [f"CONFIRM {pm.drug} {pm.concentration}"[:80],
                    f"rate {pm.dose} = {pm.program_rate_ml_h:.2f} mL/h  VTBI {pm.vtbi_ml:.1f} mL"[:80],
                    "press confirm to start"]
        if pm.state in ("running", "complete"):
            head = f"{pm.state.upper()} {pm.drug} {pm.rate_ml_h:.2f} mL/h"
        elif pm.drug:
            head = f"{pm.state.upper()} {pm.drug} set {pm.program_rate_ml_h:.2f} mL/h (motor {pm.rate_ml_h:.2f})"
        else:
            head = pm.state.upper()
        return [head, f"delivered {pm.delivered_ml:.2f} of {pm.vtbi_ml:.1f} mL"]

    def show(self) -> None:
        lines = []
        alarm, priority = "", "none"
        if self.pump is not None:
            pm = self.pump
            lines += self.status_lines(pm)
            if pm.pending_order:
                lines.append(f"order {pm.pending_order} waiting for confirmation")
            if pm.message:
                lines.append(pm.message)
            alarm, priority = pm.alarm, pm.alarm_priority
        if self.monitor is not None and self.monitor.alarm:
            alarm, priority = self.monitor.alarm, self.monitor.alarm_priority
            if self.monitor.latched_fault:
                lines.append("SAFETY FAULT: clinician restart needed")
        if self.monitor_silent:
            alarm, priority = MONITOR_SILENT, "high"
            lines.append("ALARM: no status from the safety monitor")
        snd = self.sound
        if snd is not None and snd.paused:
            left = int(snd.paused_remaining_s + 0.999)
            lines.append(f"AUDIO PAUSED {left // 60}:{left % 60:02d}")
        lines.append(self.entry.form_line())
        typing = self.entry.entry_line()
        if typing:
            lines.append(typing)
        lines.append(self.note)
        screen = wire.Screen(lines=[line[:80] for line in lines], alarm=alarm, priority=priority, user=self.user)
        try:
            self.p.device("display").send(wire.encode(screen))
        except OSError:
            pass  # display unplugged: nothing to show it on


def main(p: Partition) -> None:
    fp = FrontPanel(p)
    p.on_device("keypad", fp.on_key)
    p.on_device("pca_button", fp.on_button)
    p.on("auth_replies", fp.on_reply)
    p.on("pump_status", fp.on_pump)
    p.on("monitor_alarms", fp.on_monitor)
    p.after(0.0, fp.show)
    p.every(p.clock.scale * AUDIO_EVERY_REAL_S, fp.tick)
    p.every(p.clock.scale * REPORT_EVERY_REAL_S, fp.records.report)
