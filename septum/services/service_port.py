"""The service console: a biomed logs in at the board's service port (a UART, ``kind: debug``) to read the
device's status and configuration and to change a small set of configuration values.

It is served by the auth partition (the one that checks credentials) on the interface it owns, and exists
only where the model enables that interface: the reference pump ships it ``enabled: false`` (the runtime
then gives auth no such device, so nothing listens), and a model that enables it in the production profile
fails ISO002, so only a bench build run with ``--allow-debug`` (recorded as a critical ``debug_override``)
has one. It is never on the network.

Protocol: one packet per command, UTF-8 text; one packet per answer, starting ``ok`` or ``error``::

    login USER PIN          log in (argon2id, lockout with back-off, as at the keypad)
    status                  JSON: sessions, open install windows, locked principals, provisioning problems
    get                     JSON: the configuration values below
    set KEY VALUE           change one value (bounded); audited with old and new value and who
    logout

Every command after ``login`` is authorised against the model (``service_read`` / ``service_write``:
role, interface, factor), like every other action; every decision is audited (``service.*``), reads at
info, writes at notice. Values written are kept in auth's data folder (``service_config.json``) and applied
at once and at every start.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .authorize import ActionRequest, Principal
from .service_io import write_state

if TYPE_CHECKING:
    from .auth_service import AuthService

CONFIG_FILE = "service_config.json"
MAX_COMMAND = 512
READ, WRITE = "service_read", "service_write"


@dataclass(frozen=True)
class Setting:
    lo: float
    hi: float
    integer: bool
    apply: Callable[[AuthService, float], None]
    what: str


def _set_grant(svc: AuthService, v: float) -> None:
    svc.grant_s = v


def _set_session(svc: AuthService, v: float) -> None:
    svc.session_timeout = v


def _set_free(svc: AuthService, v: float) -> None:
    svc.creds.lockout.policy = type(svc.creds.lockout.policy)(
        free_attempts=int(v), base_s=svc.creds.lockout.policy.base_s, max_s=svc.creds.lockout.policy.max_s)


SETTINGS: dict[str, Setting] = {
    "grant_s": Setting(60, 3600, False, _set_grant, "install window length (device seconds)"),
    "session_timeout_s": Setting(30, 3600, False, _set_session, "login session timeout (device seconds)"),
    "lockout.free_attempts": Setting(1, 10, True, _set_free, "failed logins before the lockout starts"),
}


def load_saved(svc: AuthService, data_dir: Path) -> list[str]:
    """Apply the values a biomed set earlier; returns problems (a bad file changes nothing)."""
    path = data_dir / CONFIG_FILE
    if not path.exists():
        return []
    try:
        saved = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        return [f"{CONFIG_FILE} unreadable, defaults kept: {exc}"]
    problems = []
    for key, value in (saved.items() if isinstance(saved, dict) else []):
        s = SETTINGS.get(key)
        if s is None or isinstance(value, bool) or not isinstance(value, int | float) or not s.lo <= value <= s.hi:
            problems.append(f"{CONFIG_FILE}: {key}={value!r} ignored")
            continue
        s.apply(svc, float(value))
    return problems


class ServicePort:
    def __init__(self, svc: AuthService, interface: str) -> None:
        self.svc, self.interface = svc, interface
        self.p = svc.p
        self.who: Principal | None = None
        self.last_used = 0.0
        self.saved: dict[str, float] = {}
        path = self.p.data_dir / CONFIG_FILE
        if path.exists():
            try:
                raw = json.loads(path.read_bytes())
                self.saved = {k: v for k, v in raw.items() if k in SETTINGS} if isinstance(raw, dict) else {}
            except (OSError, ValueError):
                self.saved = {}

    def answer(self, text: str) -> None:
        try:
            self.p.device(self.interface).send(text.encode()[:4096])
        except OSError as exc:
            self.svc.audit("service.answer-lost", "warning", interface=self.interface, error=str(exc)[:200])

    def on_packet(self, data: bytes) -> None:
        if not data:
            return  # nothing attached (or the console went away)
        try:
            line = data.decode("utf-8").strip()
            if len(data) > MAX_COMMAND or not line.isprintable():
                raise ValueError
        except (UnicodeDecodeError, ValueError):
            self.svc.audit("service.malformed", "warning", interface=self.interface, size=len(data))
            self.answer("error malformed command (printable UTF-8, at most 512 bytes)")
            return
        words = line.split()
        if not words:
            return
        try:
            self.command(words)
        except Exception as exc:  # a bug must not take auth down: refuse, answer, audit
            self.svc.audit("service.internal-error", "error", error=f"{type(exc).__name__}: {exc}"[:300])
            self.answer("error internal error: command refused")

    def command(self, words: list[str]) -> None:
        verb = words[0].lower()
        if verb == "login":
            self.login(words)
            return
        if verb == "logout":
            if self.who is not None:
                self.svc.audit("service.logout", "notice", principal=self.who.name, interface=self.interface)
            self.who = None
            self.answer("ok logged out")
            return
        if verb in ("status", "get"):
            who = self.authorised(READ, verb)
            if who is not None:
                self.svc.audit("service.read", "info", principal=who.name, what=verb, interface=self.interface)
                self.answer("ok " + json.dumps(self.status() if verb == "status" else self.config(), sort_keys=True))
            return
        if verb == "set":
            who = self.authorised(WRITE, " ".join(words[:2]))
            if who is not None:
                self.write(who, words)
            return
        self.svc.audit("service.unknown-command", "warning", command=verb[:32], interface=self.interface)
        self.answer(f"error unknown command {verb[:32]!r} (login, status, get, set, logout)")

    def login(self, words: list[str]) -> None:
        if len(words) != 3:
            self.answer("error usage: login USER PIN")
            return
        now = self.p.now()
        res = self.svc.creds.authenticate(words[1], "pin", words[2], now)
        self.svc._save_lockout(now)
        if not res.ok or res.role is None:
            self.svc.audit("auth.login-failed", "warning", principal=words[1][:64], requester=self.interface,
                           why=res.audit, retry_after_s=round(res.retry_after, 1))
            self.answer(f"error {res.reason}")
            return
        self.who, self.last_used = Principal(words[1], res.role, "pin"), now
        self.svc.audit("auth.login", "notice", principal=words[1], role=res.role, interface=self.interface,
                       requester=self.interface)
        self.answer(f"ok logged in as {words[1]} ({res.role})")

    def authorised(self, action: str, what: str) -> Principal | None:
        now = self.p.now()
        if self.who is not None and now - self.last_used > self.svc.session_timeout:
            self.svc.audit("service.session-expired", "notice", principal=self.who.name)
            self.who = None
        decision = self.svc.authz.decide(ActionRequest(action, self.interface, self.who))
        self.svc.audit("auth.allowed" if decision.allow else "auth.denied", "info" if decision.allow else "warning",
                       action=action, interface=self.interface, principal=self.who.name if self.who else "",
                       role=self.who.role if self.who else "", reason=decision.reason, what=what[:64])
        if not decision.allow:
            self.answer(f"error {decision.reason}")
            return None
        self.last_used = now
        return self.who

    def write(self, who: Principal, words: list[str]) -> None:
        if len(words) != 3 or words[1] not in SETTINGS:
            self.answer(f"error usage: set KEY VALUE, KEY one of {', '.join(SETTINGS)}")
            return
        key, s = words[1], SETTINGS[words[1]]
        try:
            value = float(words[2])
        except ValueError:
            value = math.nan
        if not s.lo <= value <= s.hi or (s.integer and not value.is_integer()):
            self.svc.audit("service.write-refused", "warning", principal=who.name, key=key, value=words[2][:32],
                           reason=f"outside {s.lo:g}..{s.hi:g}")
            self.answer(f"error {key} must be {'an integer ' if s.integer else ''}in {s.lo:g}..{s.hi:g}")
            return
        old = self.config()[key]
        new = int(value) if s.integer else value
        self.saved[key] = new
        try:
            write_state(self.p.data_dir / CONFIG_FILE, json.dumps(self.saved, sort_keys=True).encode())
        except OSError as exc:
            self.svc.audit("service.write-failed", "error", principal=who.name, key=key, error=str(exc)[:200])
            self.answer(f"error not saved: {exc.strerror or exc}")
            return
        s.apply(self.svc, float(new))
        self.svc.audit("service.config-written", "notice", principal=who.name, role=who.role, key=key, old=old,
                       new=new, interface=self.interface)
        self.answer(f"ok {key}={new:g} (was {old:g})")

    def config(self) -> dict[str, float]:
        lock = self.svc.creds.lockout.policy
        return {"grant_s": self.svc.grant_s, "session_timeout_s": self.svc.session_timeout,
                "lockout.free_attempts": lock.free_attempts}

    def status(self) -> dict[str, Any]:
        now = self.p.now()
        return {"device": self.svc.model.device.name, "partition": self.p.name,
                "sessions": len(self.svc.sessions),
                "install_windows": {a: round(g.until - now, 1) for a, g in self.svc.grants.items() if g.until >= now},
                "provisioning_problems": list(self.svc.problems),
                "unprovisioned_roles": self.svc.creds.unprovisioned_roles(),
                "config": self.config()}


def service_interfaces(svc: AuthService) -> list[str]:
    """The debug (service console) interfaces auth owns and the runtime gave it (enabled in the model)."""
    return [name for name in svc.p.devices
            if (iface := svc.model.interfaces.get(name)) is not None and iface.kind == "debug"]
