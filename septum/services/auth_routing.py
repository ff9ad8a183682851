"""Where the auth service's requests come from and where decisions go, derived from the model alone.

Rules (docs/services.md, "Auth routing"):
* every channel into auth is a request channel; its action is the message's ``action`` field, or the
  auth partition's config ``route.<channel>: <action>`` when the message has none;
* an allowed action goes to its ``handled_by`` partition on the channel from auth to it (config
  ``forward.<action>: <channel>`` picks one when there are several);
* the answer goes back on the channel from auth to the requesting partition (config ``reply.<channel>``
  when there are several), and only when the reply message can name the request (it shares a field such as
  ``request_id``, ``order_id`` or ``bundle_id`` with it);
* the entry interface is the action's ``via`` (else the role's ``via``) that the requesting partition
  owns: a partition can only speak for the interfaces it owns.
"""

from __future__ import annotations

from dataclasses import dataclass

from septum.errors import SeptumError
from septum.model.schema import Model

AUTH_KEYWORDS = ("login", "logout")
REQUEST_KEYS = ("request_id", "order_id", "bundle_id")


class RoutingError(SeptumError, ValueError):
    """The model and the auth config do not say where something goes (reported at start)."""


@dataclass(frozen=True)
class RequestChannel:
    name: str
    sender: str
    message: str
    route: str | None  # the action when the message carries no action field
    reply: str | None  # channel back to the sender, if any


class Routes:
    def __init__(self, model: Model, auth: str, config: dict[str, object]) -> None:
        self.model = model
        self.auth = auth
        self.outputs = [ch for ch in model.channels if ch.src == auth]
        self.requests: dict[str, RequestChannel] = {}
        problems: list[str] = []
        for ch in model.channels:
            if ch.dst != auth:
                continue
            fields = model.message_fields(ch.message)
            route = config.get(f"route.{ch.name}")
            if route is not None and route not in model.actions:
                problems.append(f"route.{ch.name}: {route!r} is not an action of the model")
            back = [o for o in self.outputs if o.dst == ch.src]
            reply = config.get(f"reply.{ch.name}")
            if reply is None and len(back) == 1:
                reply = back[0].name
            if reply is not None and reply not in {o.name for o in back}:
                problems.append(f"reply.{ch.name}: {reply!r} is not a channel from {auth} to {ch.src}")
                reply = None
            if reply is not None:  # the reply must be able to name the request it answers
                rfields = model.message_fields(model.channel(str(reply)).message)
                if not any(k in rfields and k in fields for k in REQUEST_KEYS):
                    reply = None
            self.requests[ch.name] = RequestChannel(ch.name, ch.src, ch.message,
                                                    str(route) if route is not None else None,
                                                    str(reply) if reply is not None else None)
        self.forward: dict[str, str] = {}
        for aname, action in model.actions.items():
            cands = [o.name for o in self.outputs if o.dst == action.handled_by]
            chosen = config.get(f"forward.{aname}")
            if chosen is not None:
                if chosen not in cands:
                    problems.append(f"forward.{aname}: {chosen!r} is not a channel from {auth} to "
                                    f"{action.handled_by}")
                    continue
                self.forward[aname] = str(chosen)
            elif len(cands) == 1:
                self.forward[aname] = cands[0]
            elif len(cands) > 1:
                problems.append(f"action {aname!r}: several channels from {auth} to {action.handled_by} "
                                f"({', '.join(cands)}); choose one with forward.{aname}")
        if problems:
            raise RoutingError("; ".join(problems))

    def entry_interface(self, action: str, sender: str, role: str | None) -> str | None:
        """The interface the request entered by: one the sender owns among those the action (or, without
        its own ``via``, the role) is accepted from."""
        act = self.model.actions.get(action)
        if act is None:
            return None
        if act.via:
            cands = list(act.via)
        elif role is not None and role in self.model.roles:
            cands = list(self.model.roles[role].via)
        else:
            cands = [v for r in act.allowed for v in self.model.roles[r].via if r in self.model.roles]
        owned = set(self.model.partitions[sender].owns) if sender in self.model.partitions else set()
        for iface in cands:
            if iface in owned:
                return iface
        return None

    def login_interface(self, role: str, sender: str) -> str | None:
        r = self.model.roles.get(role)
        owned = set(self.model.partitions[sender].owns) if sender in self.model.partitions else set()
        if r is None:
            return None
        for iface in r.via or tuple(owned):
            if iface in owned and self.model.interfaces.get(iface) is not None and self.model.interfaces[iface].enabled:
                return iface
        return None

    def anonymous_role(self, action: str) -> str | None:
        """A role allowed to perform ``action`` that authenticates with nothing (the patient at the PCA
        button: physical presence is the credential, and the interface's owner vouches for it)."""
        act = self.model.actions.get(action)
        if act is None:
            return None
        for r in act.allowed:
            role = self.model.roles.get(r)
            if role is not None and role.kind == "human" and not role.authenticates_with:
                return r
        return None
