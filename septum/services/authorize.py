"""Authorisation of action requests against the model: who, via which interface, handled where.

Every request is decided from the model alone (roles, actions, interfaces); there is no other source of
permissions to drift from what the analysis checked. A denial carries a reason for the requester and the
audit log. Break-glass actions are allowed without a principal but only from where the model permits,
and the decision says ``must_audit_and_alert`` so the auth partition cannot forget to do both.
"""

from __future__ import annotations

from dataclasses import dataclass

from septum.model.schema import NETWORK_KINDS, Model


@dataclass(frozen=True)
class Principal:
    """An authenticated principal: ``via_factor`` is how (pin, badge, mutual-tls, ...)."""

    name: str
    role: str
    via_factor: str | None = None


@dataclass(frozen=True)
class ActionRequest:
    action: str
    interface: str
    principal: Principal | None = None


@dataclass(frozen=True)
class Decision:
    allow: bool
    reason: str
    action: str
    handled_by: str | None = None
    must_audit_and_alert: bool = False
    requires_confirmation_by: str | None = None
    safety: bool = False


class Authorizer:
    def __init__(self, model: Model) -> None:
        self.model = model

    def decide(self, req: ActionRequest) -> Decision:
        m = self.model
        action = m.actions.get(req.action)

        def deny(reason: str) -> Decision:
            return Decision(False, reason, req.action, action.handled_by if action else None,
                            must_audit_and_alert=bool(action and action.break_glass))

        if action is None:
            return deny(f"unknown action {req.action!r}")
        iface = m.interfaces.get(req.interface)
        if iface is None:
            return deny(f"unknown interface {req.interface!r}")
        if not iface.enabled:
            return deny(f"interface {req.interface!r} is disabled")
        if action.via and req.interface not in action.via:
            return deny(f"action {req.action!r} is not accepted via {req.interface!r}")

        if action.break_glass:
            # No login, by design; but only from a place the model names, or from a local control:
            # "anyone on the network can do this without logging in" is never what break glass means.
            if not action.via and iface.kind in NETWORK_KINDS:
                return deny(f"break-glass action {req.action!r} is not accepted from network interface "
                            f"{req.interface!r} unless the model lists it in the action's 'via'")
            who = req.principal.name if req.principal else "unauthenticated"
            return Decision(True, f"break glass by {who}", req.action, action.handled_by,
                            must_audit_and_alert=True, safety=action.safety)

        p = req.principal
        if p is None:
            return deny(f"action {req.action!r} needs an authenticated principal")
        role = m.roles.get(p.role)
        if role is None:
            return deny(f"role {p.role!r} is not in the model")
        if p.role not in action.allowed:
            return deny(f"role {p.role!r} may not perform {req.action!r}")
        if role.via and req.interface not in role.via:
            return deny(f"role {p.role!r} does not act via {req.interface!r}")
        if role.authenticates_with and p.via_factor not in role.authenticates_with:
            return deny(f"role {p.role!r} must authenticate with one of {', '.join(role.authenticates_with)}; "
                        f"got {p.via_factor or 'nothing'}")
        return Decision(True, f"{p.name} ({p.role}) may {req.action}", req.action, action.handled_by,
                        requires_confirmation_by=action.requires_confirmation_by, safety=action.safety)
