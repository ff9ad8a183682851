"""TEST DOUBLE of the auth service (see package docstring)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from septum.runtime.partition import Partition

CLINICIAN_ACTIONS = {"program_infusion", "start_infusion", "pause_infusion", "stop_infusion", "confirm_order",
                     "override_soft_limit", "approve_soft_limit", "silence_alarm", "clear_fault",
                     "clinician_bolus", "authorise_clinician_bolus"}
COPY = ("drug", "concentration", "dose_rate", "vtbi_ml", "weight_kg", "order_id", "reason", "pca_demand_dose",
        "pca_lockout_min", "pca_max_per_hour", "pca_limit_1h", "pca_limit_4h", "pca_bolus_count")
# keypad commands carry no remote order context (the real auth leaves these empty too)
KEYPAD_ORDER_CONTEXT = {"patient_id": "", "care_area": "", "dose_unit": "", "concentration_unit": ""}


def main(p: Partition) -> None:
    users: dict[str, Any] = json.loads((p.data_dir / "users.json").read_text())
    sessions: dict[str, tuple[str, str]] = {}

    def audit(event: str, severity: str, detail: str) -> None:
        p.send("audit_auth", event=event, severity=severity, detail=detail[:1024], at_ms=int(p.now() * 1000))

    def reply(rid: int, ok: bool, reason: str, session: str = "", role: str = "") -> None:
        p.send("auth_replies", request_id=rid, ok=ok, reason=reason, session=session, role=role)

    @p.handler("ui_requests")
    def on_request(msg: Any) -> None:
        if msg.action == "login":
            u = users.get(msg.user)
            if u is None or not secrets.compare_digest(u["pin"], msg.pin):
                audit("login_failed", "warning", f"user={msg.user}")
                reply(msg.request_id, False, "wrong user or PIN")
                return
            token = secrets.token_hex(16)
            sessions[token] = (msg.user, u["role"])
            audit("login", "notice", f"user={msg.user}")
            reply(msg.request_id, True, "logged in", token, u["role"])
            return
        if msg.action == "patient_bolus":
            principal, role = "patient", "patient"
        elif msg.action == "emergency_stop":
            principal, role = "anyone", "anyone"
            audit("break_glass", "critical", "emergency stop at the pump")
        else:
            who = sessions.get(msg.session)
            if who is None:
                audit("denied", "warning", f"action={msg.action} no session")
                reply(msg.request_id, False, "no valid session")
                return
            principal, role = who
            if msg.action == "logout":
                sessions.pop(msg.session, None)
                reply(msg.request_id, True, "logged out")
                return
            if msg.action not in CLINICIAN_ACTIONS or role != "clinician":
                audit("denied", "warning", f"action={msg.action} role={role}")
                reply(msg.request_id, False, f"role {role} may not {msg.action}")
                return
        if msg.action == "clear_fault":
            p.send("fault_reset", principal=principal, reason=msg.reason or "clinician restart")
        elif msg.action == "authorise_clinician_bolus":
            p.send("clinician_boluses", principal=principal, role=role, drug=msg.drug, bolus_dose=msg.bolus_dose,
                   reason=msg.reason)
        elif msg.action == "approve_soft_limit":
            p.send("soft_limit_approvals", principal=principal, role=role, reason=msg.reason,
                   **{k: getattr(msg, k) for k in COPY if k not in ("order_id", "reason")})
        else:
            p.send("commands", request_id=msg.request_id, action=msg.action, principal=principal, role=role,
                   bolus_dose=msg.bolus_dose, **KEYPAD_ORDER_CONTEXT, **{k: getattr(msg, k) for k in COPY})
        audit("authorised", "info", f"action={msg.action} principal={principal}")
        reply(msg.request_id, True, "authorised")

    @p.handler("orders_in")
    def on_order(msg: Any) -> None:
        p.send("commands", request_id=0, action="accept_remote_order", principal=msg.principal,
               role="hospital_server", drug=msg.drug, concentration=msg.concentration, dose_rate=msg.dose_rate,
               vtbi_ml=msg.vtbi_ml, weight_kg=msg.weight_kg, order_id=msg.order_id, reason="",
               patient_id=msg.patient_id, care_area=msg.care_area, dose_unit=msg.dose_unit,
               concentration_unit=msg.concentration_unit)
        p.send("order_replies", order_id=msg.order_id, accepted=True, reason="pre-filled")
