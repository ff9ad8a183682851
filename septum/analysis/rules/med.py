"""MED — mediation and non-bypassability: authentication that cannot be routed around."""

from __future__ import annotations

from collections.abc import Iterator

from septum.model import schema as s
from septum.model.schema import CRITICALITY_RANK

from ..context import C, Context, I, P
from ..finding import ElementRef, Finding, witness_text
from ..graph import Node
from ..registry import rule
from ..simplex import actuator_bypasses, commands_unchecked, reachable_resets


def A(name: str) -> ElementRef:
    return ElementRef("action", name)


@rule(
    "MED001", "External input interface without authentication", "error",
    rationale="""Anything that accepts input from outside the device (a network port, USB, a keypad, a
    serial line) must establish who is speaking before the device acts on it, unless only a person
    physically at the device can use it.""",
    fix="""Set `authentication:` on the interface (e.g. mutual-tls, clinician-pin), or
    `authentication: physical-presence-only` for a control only a person at the bedside can reach.""",
    cwe=(306,), precision="very-high",
)
def med001(ctx: Context) -> Iterator[Finding]:
    for name, iface in ctx.model.interfaces.items():
        if not (iface.external and iface.enabled and iface.kind in s.INPUT_KINDS):
            continue
        auth = (iface.authentication or "").strip().lower()
        if auth in s.NO_AUTH:
            said = "declares no authentication" if not auth else "has authentication: none"
            yield ctx.finding("MED001", f"external {iface.kind} interface '{name}' {said}", I(name))


def _action_entries(model: s.Model, action: s.Action) -> list[str]:
    if action.via:
        return list(action.via)
    seen: dict[str, None] = {}
    for role in action.allowed:
        for v in model.roles[role].via:
            seen[v] = None
    return list(seen)


@rule(
    "MED002", "An action's handler can be reached around the auth service", "error",
    rationale="""Authorisation that can be routed around is not authorisation. If a partition that handles
    an action can receive input from one of the action's entry points by a path that does not pass the
    auth service, an attacker on that entry point can trigger the action unauthenticated.""",
    fix="""Remove the channel that reaches the handler around auth, so every path from the entry point
    to the handler passes the auth service (or a partition with `mitigation: [authenticating]`).""",
    cwe=(288,), precision="high",
)
def med002(ctx: Context) -> Iterator[Finding]:
    g = ctx.graph
    todo: list[tuple[str, s.Action, Node, tuple[str, ...]]] = []
    for aname, action in ctx.model.actions.items():
        if action.break_glass:
            continue
        handler = g.part(action.handled_by)
        if handler in ctx.auth_nodes:
            continue
        entries = tuple(sorted(e for e in _action_entries(ctx.model, action) if e in ctx.model.interfaces))
        todo.append((aname, action, handler, entries))
    if not todo:
        return
    # One pass says which entry points reach each handler around auth; the BFS that gives the witness runs
    # only for an action whose handler one of its entry points does reach.
    entry_names = sorted({e for *_, entries in todo for e in entries})
    entry_bit = {e: 1 << i for i, e in enumerate(entry_names)}
    reached_by = g.reach_bits([g.iface(e) for e in entry_names], blocked=ctx.auth_nodes)
    found: list[tuple[str, s.Action, Node, tuple[str, ...]]] = []
    wanted: dict[tuple[str, ...], set[Node]] = {}
    for aname, action, handler, entries in todo:
        mask = 0
        for e in entries:
            mask |= entry_bit[e]
        if reached_by[handler] & mask:
            found.append((aname, action, handler, entries))
            wanted.setdefault(entries, set()).add(handler)
    cache: dict[tuple[str, ...], dict[Node, tuple[Node, str | None] | None]] = {}
    for aname, action, handler, entries in found:
        if entries not in cache:
            sources = [g.iface(e) for e in entries if g.succ[g.iface(e)]]
            cache[entries] = g.bfs(sources, blocked=lambda n: n in ctx.auth_nodes, stop_at=wanted[entries])
        parent = cache[entries]
        if handler in parent:
            path = g.path_to(parent, handler)
            yield ctx.finding(
                "MED002",
                f"action '{aname}' is handled by '{action.handled_by}', which '{path[0].node.name}' reaches "
                f"without passing auth: {witness_text(path)}",
                A(aname), P(action.handled_by), path=path)


def _protected(ctx: Context, gname: str, guard: s.Partition) -> list[str]:
    if guard.protects:
        return list(guard.protects)
    rank = CRITICALITY_RANK[guard.criticality]
    g = ctx.graph
    out: dict[str, None] = {}
    for e in g.succ[g.part(gname)]:
        name = g.refs[e.dst].name
        if CRITICALITY_RANK[ctx.model.partitions[name].criticality] > rank:
            out[name] = None
    return list(out)


@rule(
    "MED003", "A guard is bypassed", "error",
    rationale="""A guard (filter, monitor, gate, authenticator) protects what is behind it only if nothing
    reaches the protected partition around it. After CASE's "component not bypassed" claim: if an entry
    point reaches the protected partition both through the guard and by a path that passes no guard, the
    guard is decoration.""",
    fix="""Remove the channel that goes around the guard, or route it through the guard. A guard protects
    the partitions named in `protects`, or by default its direct successors of higher criticality.""",
    cwe=(424,), precision="high",
)
def med003(ctx: Context) -> Iterator[Finding]:
    g = ctx.graph
    reach = g.bfs(g.entry_points)
    around = g.bfs(g.entry_points, blocked=lambda n: n in ctx.guard_nodes)
    for gname, guard in ctx.model.partitions.items():
        if not guard.mitigation or g.part(gname) not in reach:
            continue
        for tname in _protected(ctx, gname, guard):
            t = g.part(tname)
            if t in around and t not in ctx.guard_nodes:
                path = g.path_to(around, t)
                yield ctx.finding(
                    "MED003",
                    f"guard '{gname}' protects '{tname}', but '{path[0].node.name}' reaches '{tname}' "
                    f"around it: {witness_text(path)}",
                    P(gname), P(tname), path=path)


@rule(
    "MED004", "Break-glass action is not observable", "error",
    rationale="""Emergency access without login is necessary in a clinical device, and acceptable only if
    every use is seen: audited, and alerted on the display or to the hospital.""",
    fix="""Give the handler of the break-glass action a channel path to the audit service and to a
    partition that owns a display or network interface.""",
    cwe=(778,), precision="high",
)
def med004(ctx: Context) -> Iterator[Finding]:
    g = ctx.graph
    model = ctx.model
    audit = ctx.service_partitions.get("audit")
    alert_kinds = ("display", *s.NETWORK_KINDS)
    alert_owners = {
        pname for pname, part in model.partitions.items()
        if any(model.interfaces[i].kind in alert_kinds for i in part.owns)
    }
    if not any(a.break_glass for a in model.actions.values()):
        return
    # the partitions that reach the audit service, and those that reach an alert owner: two searches
    # backwards for all break-glass actions, not one search forwards per action
    to_audit = g.reaching([g.part(audit)]) if audit is not None else set()
    to_alert = g.reaching(g.part(o) for o in alert_owners)
    for aname, action in model.actions.items():
        if not action.break_glass:
            continue
        h = action.handled_by
        if audit is None:
            yield ctx.finding("MED004", f"break-glass action '{aname}' cannot be audited: the model has no "
                              "audit service", A(aname), P(h))
        elif g.part(h) not in to_audit:
            yield ctx.finding("MED004", f"break-glass action '{aname}': its handler '{h}' has no channel path "
                              f"to the audit service '{audit}'", A(aname), P(h), P(audit))
        if g.part(h) not in to_alert:
            yield ctx.finding("MED004", f"break-glass action '{aname}': its handler '{h}' has no path to a "
                              "partition owning a display or network interface, so its use raises no alert",
                              A(aname), P(h))


@rule(
    "MED005", "A monitor's reset or override is reachable from what it monitors", "error",
    rationale="""A monitor that the monitored partition can reset or override does not monitor it: a
    faulty or compromised controller would silence its own watchdog.""",
    fix="""Feed the monitor's reset/override channel only from a partition the monitored one cannot reach
    (e.g. the authenticated clinician path through auth), or remove it.""",
    cwe=(653, 284), precision="high",
)
def med005(ctx: Context) -> Iterator[Finding]:
    for mname, mon in ctx.model.partitions.items():
        for watched in mon.monitors:
            for ch, path in reachable_resets(ctx, mname, watched):
                yield ctx.finding(
                    "MED005",
                    f"monitor '{mname}' watches '{watched}', but its {ch.purpose} channel '{ch.name}' is "
                    f"reachable from '{watched}': {witness_text(path)}",
                    P(mname), P(watched), C(ch.name), path=path)


@rule(
    "MED006", "A monitor does not stand between what it monitors and the actuators", "error",
    rationale="""In the Simplex pattern a complex controller is checked by a simple safety monitor that
    alone drives the actuators. The monitor protects the patient only if every command passes its check:
    if the controller also reaches an actuator (owns it, writes a shared device, or has a channel path to
    another partition that owns one) or the monitor forwards commands without gating them, a faulty or
    compromised controller drives the actuator unchecked.""",
    fix="""Give the actuators only to the monitor and remove the controller's other paths to them; declare
    `gating` on the monitor only if it checks every command against its own limits before acting.""",
    cwe=(424, 653), precision="high",
)
def med006(ctx: Context) -> Iterator[Finding]:
    model = ctx.model
    for mname, mon in model.partitions.items():
        if not mon.mitigation:
            continue
        for watched in mon.monitors:
            for ch in commands_unchecked(ctx, mname, watched):
                yield ctx.finding(
                    "MED006",
                    f"monitor '{mname}' receives {ch.purpose} channel '{ch.name}' from '{watched}' but declares "
                    "no gating: it forwards what it is sent unchecked",
                    P(mname), P(watched), C(ch.name))
            for b in actuator_bypasses(ctx, mname, watched):
                if b.how == "owns":
                    how = f"'{watched}' owns actuator '{b.actuator}' itself"
                elif b.how == "shared":
                    how = f"'{watched}' writes shared device '{b.actuator}'"
                else:
                    how = (f"'{watched}' reaches actuator '{b.actuator}' (owned by '{b.owner}') around the "
                           f"monitor: {witness_text(b.path)}")
                yield ctx.finding(
                    "MED006", f"monitor '{mname}' watches '{watched}', but {how}",
                    P(mname), P(watched), ElementRef("interface" if b.how != "shared" else "shared", b.actuator),
                    path=b.path)
