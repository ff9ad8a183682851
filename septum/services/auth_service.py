"""The ``service: auth`` partition: authenticates every principal and authorises every action, from the model.

Requests arrive on the channels into this partition (routing rules: ``septum.services.auth_routing``).
Principals:
* humans log in (``action: login`` with ``user`` and ``pin``/``badge``) against the provisioned credential
  store (``credentials.json``; lockout with back-off, persisted in ``lockout.json`` across restarts) and get
  a random session token that expires after ``session_timeout_s`` device-seconds without use;
* break-glass actions need no login: they are allowed where the model says, audited at ``alert`` severity
  and raised as an alert (a critical supervisor event) every time, and forwarded to their handler;
* a role that authenticates with nothing (the patient at the PCA button) acts without a session;
* machines sign their requests (``cert`` + ``signature`` + ``nonce`` + ``sent_at_ms``;
  ``septum.services.signed_requests``) against the provisioned hospital CA and identity pins.
Every decision is decided by ``Authorizer`` against the model, answered, and audited.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import secrets
from dataclasses import dataclass
from typing import Any

import msgspec

from septum.crypto.secrets_at_rest import SECRETS_CONFIG_KEY
from septum.errors import InvariantBroken
from septum.runtime.partition import Partition

from . import credentials as cr
from .auth_routing import RequestChannel, Routes
from .authorize import ActionRequest, Authorizer, Decision, Principal
from .mtls import MachinePins, MtlsError
from .provisioning import CA_FILE, CREDENTIALS_FILE, PINS_FILE
from .service_io import Auditor, build, service_model, wall_now, write_state
from .service_port import ServicePort, load_saved, service_interfaces
from .signed_requests import NonceGuard, RequestRefused, verify_signed

LOCKOUT_FILE = "lockout.json"
REPLAY_FILE = "replay.json"
MAX_SESSIONS = 64
MAX_REASON = 200


@dataclass
class Session:
    principal: str
    role: str
    factor: str
    sender: str  # the partition the login came from: a token is only good on that partition's requests
    last_used: float


@dataclass
class Grant:
    principal: Principal
    until: float


class AuthService:
    def __init__(self, p: Partition) -> None:
        self.p = p
        self.model = service_model(p)
        self.routes = Routes(self.model, p.name, p.config)
        self.authz = Authorizer(self.model)
        self.audit = Auditor(p, self.model)
        cfg = p.config
        self.session_timeout = float(cfg.get("session_timeout_s", 300))
        self.grant_s = float(cfg.get("grant_s", 300))
        policy = cr.LockoutPolicy(free_attempts=int(cfg.get("lockout.free_attempts", 3)),
                                  base_s=float(cfg.get("lockout.base_s", 30)),
                                  max_s=float(cfg.get("lockout.max_s", 3600)))
        self.problems: list[str] = []
        try:
            # sealed at rest under the device key: the supervisor hands the plaintext (secrets_at_rest.py)
            unsealed = p.config.get(SECRETS_CONFIG_KEY, {}).get(CREDENTIALS_FILE)
            self.creds = cr.CredentialStore.load(p.data_dir / CREDENTIALS_FILE, self.model, policy,
                                                 unsealed if isinstance(unsealed, bytes) else None)
        except cr.CredentialError as exc:
            self.problems.append(f"credential store refused: {exc}")
            self.creds = cr.CredentialStore(self.model, None, policy)
        self.lockout_path = p.data_dir / LOCKOUT_FILE
        if self.lockout_path.exists():
            try:
                self.creds.lockout.restore(self.lockout_path.read_bytes(), p.now())
            except (OSError, cr.CredentialError) as exc:
                self.problems.append(f"lockout state unreadable, counters start from zero: {exc}")
        self.pins: MachinePins | None = None
        if (p.data_dir / CA_FILE).exists():
            try:
                pins = json.loads((p.data_dir / PINS_FILE).read_bytes())
                table = {str(k): str(v) for k, v in pins.items()}
                self.pins = MachinePins.load(self.model, p.data_dir / CA_FILE, table)
            except (OSError, ValueError, AttributeError, MtlsError) as exc:
                self.problems.append(f"machine principals unusable: {exc}")
        self.nonces = NonceGuard(p.data_dir / REPLAY_FILE)
        if self.nonces.unreadable:
            self.problems.append("replay state unreadable: signed requests sent before this start are refused")
        self.sessions: dict[str, Session] = {}
        self.grants: dict[str, Grant] = {}
        self.routed_actions = {rc.route for rc in self.routes.requests.values() if rc.route}
        # install windows: a routed action that a person may also perform (install_update: biomed and
        # update_server) is accepted from a machine only while a person opened a window for it at the device
        self.window_actions = {a for a in self.routed_actions
                               if any(self.model.roles[r].kind == "human" and self.model.roles[r].authenticates_with
                                      for r in self.model.actions[a].allowed if r in self.model.roles)}

    # ------------------------------------------------------------------ answering
    def reply(self, rc: RequestChannel, fields: dict[str, Any], ok: bool, reason: str, **extra: Any) -> None:
        if rc.reply is None:
            return
        try:
            msg = build(self.p, rc.reply, fields, ok=ok, accepted=ok, reason=reason[:MAX_REASON], **extra)
        except msgspec.ValidationError as exc:
            self.audit("auth.reply-unbuildable", "error", channel=rc.reply, error=str(exc)[:200])
            return
        if not self.p.send(rc.reply, msg):
            self.audit("auth.reply-dropped", "warning", channel=rc.reply, reason="reply channel full")

    def decided(self, rc: RequestChannel, fields: dict[str, Any], action: str, iface: str | None,
                who: Principal | None, ok: bool, reason: str, *, alert: bool = False, **extra: Any) -> None:
        severity = "alert" if alert else ("notice" if ok else "warning")
        self.audit("auth.allowed" if ok else "auth.denied", severity, action=action, channel=rc.name,
                   requester=rc.sender, interface=iface or "", principal=who.name if who else "",
                   role=who.role if who else "", reason=reason)
        self.reply(rc, fields, ok, reason, **extra)

    # ------------------------------------------------------------------ requests
    def on_request(self, rc: RequestChannel, msg: Any) -> None:
        fields = msgspec.structs.asdict(msg)
        try:
            self._handle(rc, fields)
        except Exception as exc:  # a bug must not take authorisation down: refuse, answer, audit
            self.audit("auth.internal-error", "error", channel=rc.name, error=f"{type(exc).__name__}: {exc}"[:300])
            self.reply(rc, fields, False, "internal error: request refused")

    def _handle(self, rc: RequestChannel, fields: dict[str, Any]) -> None:
        action = fields.get("action") if "action" in fields else rc.route
        if not isinstance(action, str) or not action:
            self.decided(rc, fields, "?", None, None, False, f"channel {rc.name} names no action (no action field, "
                         f"no route.{rc.name})")
            return
        if action == "login":
            self.login(rc, fields)
            return
        if action == "logout":
            s = self.sessions.pop(str(fields.get("session") or ""), None)
            ok = s is not None and s.sender == rc.sender
            if ok and s is not None:  # the windows this person opened close with their session
                for a in [a for a, g in self.grants.items() if g.principal.name == s.principal]:
                    self.close_window(a, "logged out")
            self.decided(rc, fields, action, None, Principal(s.principal, s.role) if s else None, ok,
                         "logged out" if ok else "no such session")
            return
        act = self.model.actions.get(action)
        if act is None:
            self.decided(rc, fields, action, None, None, False, f"unknown action {action!r}")
            return
        try:
            who = self.principal_of(rc, action, fields)
        except RequestRefused as exc:
            self.decided(rc, fields, action, None, None, False, str(exc))
            return
        iface = self.routes.entry_interface(action, rc.sender, who.role if who else None)
        if iface is None:
            self.decided(rc, fields, action, None, who, False,
                         f"{rc.sender} owns no interface from which {action!r} is accepted", alert=act.break_glass)
            return
        decision = self.authz.decide(ActionRequest(action, iface, who))
        if not decision.allow:
            self.decided(rc, fields, action, iface, who, False, decision.reason,
                         alert=decision.must_audit_and_alert)
            return
        if action in self.window_actions and rc.route == action and who is not None:
            window = self.grants.get(action)
            if window is None or window.until < self.p.now():
                self.decided(rc, fields, action, iface, who, False,
                             f"no {action} window open at the device: a person allowed to {action} must open one "
                             f"there first")
                return
        self.allowed(rc, fields, action, iface, who, decision)

    def principal_of(self, rc: RequestChannel, action: str, fields: dict[str, Any]) -> Principal | None:
        """Who is asking (None: nobody authenticated; the Authorizer decides whether that is enough)."""
        if "cert" in fields or "signature" in fields:
            who = verify_signed(fields, self.pins, _dt.datetime.now(_dt.UTC))
            sent = fields.get("sent_at_ms")
            if not isinstance(sent, int):
                raise RequestRefused("signed request carries no sent_at_ms")
            verdict = self.nonces.check(who.identity, str(fields.get("nonce") or ""), sent / 1000, wall_now())
            if not verdict.ok:
                raise RequestRefused(verdict.reason)
            return Principal(who.identity, who.role, "mutual-tls")
        token = fields.get("session")
        if isinstance(token, str) and token:
            s = self.sessions.get(token)
            now = self.p.now()
            if s is None or s.sender != rc.sender:
                raise RequestRefused("no valid session: log in first")
            if now - s.last_used > self.session_timeout:
                del self.sessions[token]
                raise RequestRefused("session expired: log in again")
            s.last_used = now
            return Principal(s.principal, s.role, s.factor)
        if self.model.actions[action].break_glass:
            return None
        anon = self.routes.anonymous_role(action)
        if anon is not None:
            return Principal(anon, anon, None)
        return None  # an open window lends nobody its identity: the machine must sign its own requests

    def allowed(self, rc: RequestChannel, fields: dict[str, Any], action: str, iface: str, who: Principal | None,
                decision: Decision) -> None:
        alert = decision.must_audit_and_alert
        if alert:  # break glass: an alert every time, beside the audit record at alert severity
            self.p.audit(f"breakglass.{action}", severity="critical", action=action, interface=iface,
                         requester=rc.sender, principal=who.name if who else "unauthenticated")
        if action in self.routed_actions and rc.route != action and who is not None:
            # a person authorised the action whose payload arrives on a routed channel (a biomed allows an
            # update whose chunks come from the network): open it for grant_s device-seconds
            self.grants[action] = Grant(who, self.p.now() + self.grant_s)
            self.audit("auth.window-opened", "notice", action=action, principal=who.name, role=who.role,
                       requester=rc.sender, seconds=self.grant_s)
            self.decided(rc, fields, action, iface, who, True, f"{action} authorised for {self.grant_s:g} s",
                         role=who.role)
            return
        channel = self.routes.forward.get(action)
        if channel is None:
            self.decided(rc, fields, action, iface, who, False,
                         f"no channel from {self.p.name} to {decision.handled_by} for {action!r}", alert=alert)
            return
        try:
            out = build(self.p, channel, fields, action=action, principal=who.name if who else "unauthenticated",
                        role=who.role if who else "")
        except msgspec.ValidationError as exc:
            self.decided(rc, fields, action, iface, who, False,
                         f"cannot be forwarded to {decision.handled_by}: {exc}"[:MAX_REASON], alert=alert)
            return
        if not self.p.send(channel, out):
            self.decided(rc, fields, action, iface, who, False, f"{decision.handled_by} is busy; retry",
                         alert=alert)
            return
        self.decided(rc, fields, action, iface, who, True, decision.reason, alert=alert,
                     role=who.role if who else "")

    def login(self, rc: RequestChannel, fields: dict[str, Any]) -> None:
        user = str(fields.get("user") or "")
        factor = "pin" if fields.get("pin") else ("badge" if fields.get("badge") else "pin")
        secret = str(fields.get(factor) or "")
        now = self.p.now()
        # argon2id: seconds of CPU on a loaded host, during which this loop must keep beating
        res = self.p.beating(lambda: self.creds.authenticate(user, factor, secret, now))
        self._save_lockout(now)
        who = Principal(user, res.role or "", factor)
        if not res.ok:
            self.audit("auth.login-failed", "warning", principal=user, requester=rc.sender, why=res.audit,
                       retry_after_s=round(res.retry_after, 1))
            self.reply(rc, fields, False, res.reason)
            return
        if res.role is None:
            raise InvariantBroken("internal invariant broken: res.role is not None")
        iface = self.routes.login_interface(res.role, rc.sender)
        if iface is None:
            self.decided(rc, fields, "login", None, who, False,
                         f"role {res.role!r} does not log in through {rc.sender}")
            return
        if len(self.sessions) >= MAX_SESSIONS:  # forget the least recently used
            oldest = min(self.sessions, key=lambda t: self.sessions[t].last_used)
            del self.sessions[oldest]
        token = secrets.token_urlsafe(24)
        self.sessions[token] = Session(user, res.role, factor, rc.sender, now)
        self.audit("auth.login", "notice", principal=user, role=res.role, interface=iface, requester=rc.sender)
        self.reply(rc, fields, True, "logged in", session=token, role=res.role)

    def _save_lockout(self, now: float) -> None:
        try:
            write_state(self.lockout_path, self.creds.lockout.snapshot(now))
        except OSError as exc:
            self.audit("auth.lockout-not-saved", "error", error=str(exc)[:200])

    # ------------------------------------------------------------------ reports (e.g. update results)
    def on_report(self, channel: str, sender: str, msg: Any) -> None:
        fields = {k: v for k, v in msgspec.structs.asdict(msg).items() if isinstance(v, str | int | float | bool)}
        ok = fields.get("installed", fields.get("ok", True))
        self.audit(f"auth.report.{channel}"[:64], "notice" if ok else "warning", sender=sender, **fields)

    def sweep(self) -> None:
        now = self.p.now()
        for token in [t for t, s in self.sessions.items() if now - s.last_used > self.session_timeout]:
            del self.sessions[token]
        for action in [a for a, g in self.grants.items() if g.until < now]:
            self.close_window(action, "expired")

    def close_window(self, action: str, why: str) -> None:
        g = self.grants.pop(action, None)
        if g is not None:
            self.audit("auth.window-closed", "notice", action=action, principal=g.principal.name, reason=why)


def main(p: Partition) -> None:
    svc = AuthService(p)
    for rc in svc.routes.requests.values():
        fields = svc.model.message_fields(rc.message)
        if rc.route is None and "action" not in fields:
            p.on(rc.name, functools.partial(svc.on_report, rc.name, rc.sender))
        else:
            p.on(rc.name, functools.partial(svc.on_request, rc))
    # the sweep also closes install windows, so it runs often enough to close them near their time
    p.every(max(1.0, min(svc.session_timeout, svc.grant_s) / 10), svc.sweep)
    svc.problems += load_saved(svc, p.data_dir)  # config values a biomed set at the service console
    for name in service_interfaces(svc):  # only where the model enables it (never in production)
        p.on_device(name, ServicePort(svc, name).on_packet)
    for problem in svc.problems:
        svc.audit("auth.provisioning", "error", problem=problem)
    missing = svc.creds.unprovisioned_roles()
    if missing:
        svc.audit("auth.unprovisioned-roles", "warning", roles=",".join(missing))
