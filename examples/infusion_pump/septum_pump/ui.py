"""The ui partition: the front panel (keypad, display, PCA button; all three are its own devices).

It holds no authority: every key that asks for an action becomes a ``UiRequest`` to auth, which answers on
``auth_replies`` and forwards what it authorised. Login gives a session that later requests carry;
``patient_bolus`` (the physical PCA button) and ``emergency_stop`` (break glass) need none. Keys are
debounced; the screen shows the pump's and the safety monitor's state and the highest alarm.

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
from .therapy_io import send_message

DEBOUNCE_REAL_S = 0.05  # the same key again within this time is contact bounce, not a second press
FIELDS = {"user", "pin", "drug", "concentration", "rate", "vtbi", "weight", "order_id", "reason"}
NUMERIC = {"concentration": "concentration", "rate": "dose_rate", "vtbi": "vtbi_ml", "weight": "weight_kg"}
ACTIONS = {
    "login": "login", "logout": "logout", "program": "program_infusion", "start": "start_infusion",
    "confirm": "start_infusion", "pause": "pause_infusion", "stop": "stop_infusion",
    "confirm_order": "confirm_order", "override": "override_soft_limit", "silence": "silence_alarm",
    "clear_fault": "clear_fault", "emergency_stop": "emergency_stop",
    # a biomed opens an install window: auth then accepts the update server's pushes for grant_s seconds
    "install_update": "install_update",
}
NO_SESSION = {"login", "emergency_stop", "patient_bolus"}


class FrontPanel:
    def __init__(self, p: Partition) -> None:
        self.p = p
        self.form: dict[str, str] = {}
        self.session = ""
        self.user = ""
        self.role = ""
        self.request_id = 0
        self.pending: dict[int, str] = {}
        self.last_key: tuple[str, str, float] = ("", "", 0.0)
        self.pump: Any = None
        self.monitor: Any = None
        self.note = "please log in"
        self.debounced = 0
        self.records = Records(p, None)  # events only: losses are reported in the event stream

    def request(self, action: str, **fields: Any) -> None:
        if action not in NO_SESSION and not self.session:
            self.note = f"log in first ({action})"
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
        now = time.monotonic()
        if (key.key, key.value) == self.last_key[:2] and now - self.last_key[2] < DEBOUNCE_REAL_S:
            self.debounced += 1
            return
        self.last_key = (key.key, key.value, now)
        if key.key in FIELDS:
            self.form[key.key] = key.value[:256]
            return
        action = ACTIONS.get(key.key)
        if action is None:
            self.note = f"unknown key {key.key[:20]}"
            self.show()
            return
        f = self.form
        if action == "login":
            self.request("login", user=f.get("user", "")[:64], pin=f.pop("pin", "")[:32])
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
        elif action == "clear_fault":
            self.request(action, reason=f.get("reason", "")[:256])
        else:
            self.request(action)

    def prescription(self) -> dict[str, Any] | None:
        """The prescription in the form (None, with a note on the display, if a number is not one)."""
        nums: dict[str, Any] = {}
        for k, name in NUMERIC.items():
            try:
                nums[name] = float(self.form.get(k, "0") or 0)
            except ValueError:
                self.note = f"{k} is not a number"
                self.show()
                return None
        return {"drug": self.form.get("drug", "")[:64], **nums}

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
            self.user = self.form.get("user", "")
        if not msg.ok and msg.reason and "session" in msg.reason:
            self.session = ""  # expired or revoked: ask for a new login
        self.note = f"{action}: {'ok' if msg.ok else 'denied'} {msg.reason}".strip()[:120]
        self.p.event("auth_reply", request_id=msg.request_id, action=action, ok=msg.ok, reason=msg.reason)
        self.show()

    def on_pump(self, msg: Any) -> None:
        changed = self.pump is None or (msg.state, msg.alarm, msg.message) != (
            self.pump.state, self.pump.alarm, self.pump.message)
        self.pump = msg
        if changed:
            self.show()

    def on_monitor(self, msg: Any) -> None:
        changed = self.monitor is None or (msg.alarm, msg.latched_fault) != (self.monitor.alarm,
                                                                             self.monitor.latched_fault)
        self.monitor = msg
        if changed:
            self.show()

    def show(self) -> None:
        lines = []
        alarm, priority = "", "none"
        if self.pump is not None:
            pm = self.pump
            lines.append(f"{pm.state.upper()} {pm.drug} {pm.rate_ml_h:.2f} mL/h")
            lines.append(f"delivered {pm.delivered_ml:.2f} of {pm.vtbi_ml:.1f} mL")
            if pm.pending_order:
                lines.append(f"order {pm.pending_order} waiting for confirmation")
            if pm.message:
                lines.append(pm.message)
            alarm, priority = pm.alarm, pm.alarm_priority
        if self.monitor is not None and self.monitor.alarm:
            alarm, priority = self.monitor.alarm, self.monitor.alarm_priority
            if self.monitor.latched_fault:
                lines.append("SAFETY FAULT: clinician restart needed")
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
    p.every(p.clock.scale * REPORT_EVERY_REAL_S, fp.records.report)
