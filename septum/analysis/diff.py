"""What a model change adds to the attack surface: the review that catches a connection added "just for
debugging".

``diff(old, new)`` compares two models element by element and reports, as ``Change`` records:
- external interfaces added, removed, enabled, exposed, or with weaker authentication/encryption;
- channels added, removed, rerouted, turned into debug channels, or given more rate/queue;
- paths from entry points into safety partitions that are new (reachable at all, and reachable through
  no guard), each with a shortest-path witness;
- widened grants: ``allow.net``, files, system calls, owned interfaces, resources, removed mitigation,
  lowered criticality, debug profile, roles allowed to act, new waivers;
- and the findings ``check`` reports on the new model but not on the old one.

Descriptions and other prose are never compared: a cosmetic change reports nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from septum.model import schema as s

from .context import C, Context, I, P
from .engine import check
from .finding import ElementRef, Finding, PathStep

# Risk of one change; the diff's verdict is the highest. "none" means informational or a reduction.
RISKS = ("none", "low", "medium", "high")


@dataclass(frozen=True)
class Change:
    category: str  # interface | channel | path | grant | partition | action | role | shared | waiver | device
    change: str  # added | removed | enabled | widened | narrowed | rerouted | ...
    element: ElementRef
    message: str
    risk: str = "none"
    path: tuple[PathStep, ...] = ()
    old: str | None = None
    new: str | None = None

    @property
    def adds_surface(self) -> bool:
        return self.risk != "none"


@dataclass
class ModelDiff:
    changes: list[Change] = field(default_factory=list)
    new_findings: list[Finding] = field(default_factory=list)
    resolved_findings: list[Finding] = field(default_factory=list)

    @property
    def additions(self) -> list[Change]:
        return [c for c in self.changes if c.adds_surface]

    @property
    def new_blocking(self) -> list[Finding]:
        """New findings that gate a review: errors and warnings that are not waived."""
        return [f for f in self.new_findings if not f.waived and f.severity in ("error", "warning")]

    @property
    def verdict(self) -> str:
        level = max((RISKS.index(c.risk) for c in self.changes), default=0)
        for f in self.new_blocking:
            level = max(level, RISKS.index("high" if f.severity == "error" else "medium"))
        return RISKS[level]

    @property
    def adds_attack_surface(self) -> bool:
        return self.verdict != "none"

    @property
    def exit_code(self) -> int:
        return 1 if self.adds_attack_surface else 0


def _exposed(i: s.Interface) -> bool:
    """An interface the outside world can send into."""
    return i.external and i.enabled and i.kind in s.INPUT_KINDS


def _no_auth(i: s.Interface) -> bool:
    return i.authentication is None or i.authentication.strip().lower() in s.NO_AUTH


# --------------------------------------------------------------------------- interfaces


def _interfaces(old: s.Model, new: s.Model) -> Iterable[Change]:
    for name, ni in new.interfaces.items():
        oi = old.interfaces.get(name)
        ref = I(name)
        if oi is None:
            if ni.external:
                state = "enabled" if ni.enabled else "disabled"
                risk = ("high" if ni.kind == "debug" else "medium") if _exposed(ni) else (
                    "low" if ni.enabled else "none")
                yield Change("interface", "added", ref, f"new external {ni.kind} interface '{name}' ({state})", risk)
            else:
                yield Change("interface", "added", ref, f"new internal {ni.kind} interface '{name}'")
            continue
        if ni.external and not oi.external:
            yield Change("interface", "exposed", ref, f"interface '{name}' is now external", "medium",
                         old="internal", new="external")
        if ni.external and ni.enabled and not oi.enabled:
            yield Change("interface", "enabled", ref, f"external {ni.kind} interface '{name}' is now enabled",
                         "high" if ni.kind == "debug" else "medium", old="disabled", new="enabled")
        if oi.enabled and not ni.enabled:
            yield Change("interface", "disabled", ref, f"interface '{name}' is now disabled",
                         old="enabled", new="disabled")
        if oi.kind != ni.kind:
            risk = "medium" if ni.kind in s.INPUT_KINDS and oi.kind not in s.INPUT_KINDS and ni.external else "low"
            yield Change("interface", "kind", ref, f"interface '{name}' changed kind {oi.kind} -> {ni.kind}", risk,
                         old=oi.kind, new=ni.kind)
        if ni.external and _no_auth(ni) and not _no_auth(oi):
            yield Change("interface", "authentication", ref,
                         f"interface '{name}' no longer authenticates (was '{oi.authentication}')", "medium",
                         old=oi.authentication, new=ni.authentication)
        elif ni.external and (oi.authentication or "") != (ni.authentication or ""):
            yield Change("interface", "authentication", ref,
                         f"interface '{name}' authentication changed '{oi.authentication}' -> "
                         f"'{ni.authentication}'", "low", old=oi.authentication, new=ni.authentication)
        if ni.external and oi.encryption and not ni.encryption:
            yield Change("interface", "encryption", ref, f"interface '{name}' is no longer encrypted "
                         f"(was '{oi.encryption}')", "medium", old=oi.encryption, new=None)
        elif ni.external and oi.encryption and ni.encryption != oi.encryption:
            yield Change("interface", "encryption", ref,
                         f"interface '{name}' encryption changed '{oi.encryption}' -> '{ni.encryption}'", "low",
                         old=oi.encryption, new=ni.encryption)
        if ni.external and (oi.port, oi.protocol) != (ni.port, ni.protocol):
            yield Change("interface", "endpoint", ref,
                         f"interface '{name}' now listens as {ni.protocol or '-'}:{ni.port or '-'} "
                         f"(was {oi.protocol or '-'}:{oi.port or '-'})", "low",
                         old=f"{oi.protocol}:{oi.port}", new=f"{ni.protocol}:{ni.port}")
        more = sorted(set(ni.carries) - set(oi.carries))
        if more:
            yield Change("interface", "carries", ref, f"interface '{name}' now also carries {', '.join(more)}",
                         "low", new=",".join(more))
    for name, oi in old.interfaces.items():
        if name not in new.interfaces:
            what = "external" if oi.external else "internal"
            yield Change("interface", "removed", I(name), f"{what} {oi.kind} interface '{name}' removed")


# --------------------------------------------------------------------------- channels


def _rate(ch: s.Channel) -> float:
    r = ch.rate_per_s
    return float("inf") if r is None else r


def _channels(old: s.Model, new: s.Model) -> Iterable[Change]:
    olds = {c.name: c for c in old.channels}
    news = {c.name: c for c in new.channels}
    for name, nc in news.items():
        ref = C(name)
        oc = olds.get(name)
        if oc is None:
            into_safety = new.partitions.get(nc.dst, s.Partition()).criticality == "safety"
            risk = "high" if nc.debug else ("medium" if into_safety else "low")
            flag = " [debug]" if nc.debug else ""
            yield Change("channel", "added", ref,
                         f"new channel '{name}'{flag}: {nc.src} -> {nc.dst} carrying {nc.message}", risk,
                         new=f"{nc.src}->{nc.dst}")
            continue
        if (oc.src, oc.dst) != (nc.src, nc.dst):
            yield Change("channel", "rerouted", ref,
                         f"channel '{name}' now goes {nc.src} -> {nc.dst} (was {oc.src} -> {oc.dst})", "medium",
                         old=f"{oc.src}->{oc.dst}", new=f"{nc.src}->{nc.dst}")
        if nc.debug and not oc.debug:
            yield Change("channel", "debug", ref, f"channel '{name}' is now a debug channel", "high",
                         old="false", new="true")
        if oc.message != nc.message:
            yield Change("channel", "message", ref,
                         f"channel '{name}' now carries {nc.message} (was {oc.message})", "low",
                         old=oc.message, new=nc.message)
        if _rate(nc) > _rate(oc):
            yield Change("channel", "widened", ref,
                         f"channel '{name}' rate limit raised {oc.rate} -> {nc.rate or 'unlimited'}", "low",
                         old=oc.rate, new=nc.rate)
        if nc.queue > oc.queue:
            yield Change("channel", "widened", ref, f"channel '{name}' queue raised {oc.queue} -> {nc.queue}",
                         "low", old=str(oc.queue), new=str(nc.queue))
        if oc.purpose != nc.purpose:
            risk = "medium" if nc.purpose in ("override", "reset", "command") else "low"
            yield Change("channel", "purpose", ref,
                         f"channel '{name}' purpose changed {oc.purpose} -> {nc.purpose}", risk,
                         old=oc.purpose, new=nc.purpose)
    for name, oc in olds.items():
        if name not in news:
            yield Change("channel", "removed", C(name), f"channel '{name}' ({oc.src} -> {oc.dst}) removed",
                         old=f"{oc.src}->{oc.dst}")


# --------------------------------------------------------------------------- paths into safety partitions


@dataclass
class _Reach:
    """Per entry interface: the safety partitions it reaches at all, and those it reaches through no guard,
    with a witness for each."""

    any: dict[tuple[str, str], tuple[PathStep, ...]]
    unguarded: dict[tuple[str, str], tuple[PathStep, ...]]


def _reach(model: s.Model) -> _Reach:
    ctx = Context(model)
    g = ctx.graph
    guards = ctx.guard_nodes
    safety = [(n, g.part(n)) for n, p in model.partitions.items() if p.criticality == "safety"]
    out = _Reach({}, {})
    for entry in g.entry_points:
        ename = g.refs[entry].name
        reach_all = g.bfs([entry])
        # a path may end at a guard but not pass through one (the entry's own owner counts as passing)
        reach_free = g.bfs([entry], blocked=lambda n: n in guards)
        for pname, node in safety:
            if node in reach_all:
                out.any[(ename, pname)] = g.path_to(reach_all, node)
            if node in reach_free:
                out.unguarded[(ename, pname)] = g.path_to(reach_free, node)
    return out


def _paths(old: s.Model, new: s.Model) -> Iterable[Change]:
    before, after = _reach(old), _reach(new)
    for key in sorted(after.unguarded.keys() - before.unguarded.keys()):
        entry, part = key
        yield Change("path", "unguarded", P(part),
                     f"new unguarded path from external interface '{entry}' into safety partition '{part}'",
                     "high", path=after.unguarded[key], new=entry)
    for key in sorted(after.any.keys() - before.any.keys() - after.unguarded.keys()):
        entry, part = key
        yield Change("path", "guarded", P(part),
                     f"new path (through a guard) from external interface '{entry}' into safety partition "
                     f"'{part}'", "medium", path=after.any[key], new=entry)
    for key in sorted(before.unguarded.keys() - after.unguarded.keys()):
        entry, part = key
        yield Change("path", "removed-unguarded", P(part),
                     f"interface '{entry}' no longer reaches safety partition '{part}' through no guard",
                     path=before.unguarded[key], old=entry)
    for key in sorted(before.any.keys() - after.any.keys() - before.unguarded.keys()):
        entry, part = key
        yield Change("path", "removed", P(part),
                     f"interface '{entry}' no longer reaches safety partition '{part}'", path=before.any[key],
                     old=entry)


# --------------------------------------------------------------------------- grants


_RESOURCE_NAMES = ("memory_mb", "cpu_percent", "budget_ms", "max_pids", "max_open_files")
_CRIT = s.CRITICALITY_RANK


def _partition(name: str, op: s.Partition | None, np: s.Partition, new: s.Model) -> Iterable[Change]:
    ref = P(name)
    if op is None:
        yield Change("partition", "added", ref, f"new partition '{name}' (criticality {np.criticality})")
        # a new partition is compared against one that may do nothing at all
        op = s.Partition(criticality=np.criticality, resources=np.resources)
    else:
        if _CRIT[np.criticality] < _CRIT[op.criticality]:
            yield Change("grant", "criticality", ref,
                         f"partition '{name}' criticality lowered {op.criticality} -> {np.criticality}",
                         "high" if op.criticality == "safety" else "medium", old=op.criticality, new=np.criticality)
        lost = [m for m in op.mitigation if m not in np.mitigation]
        if lost:
            yield Change("grant", "mitigation", ref,
                         f"guard '{name}' no longer declares mitigation {', '.join(lost)}",
                         "high" if not np.mitigation else "medium", old=",".join(op.mitigation),
                         new=",".join(np.mitigation))
        for res in _RESOURCE_NAMES:
            a, b = getattr(op.resources, res), getattr(np.resources, res)
            if b is not None and a is not None and b > a:
                yield Change("grant", "resources", ref, f"partition '{name}' {res} raised {a} -> {b}", "low",
                             old=str(a), new=str(b))
            elif res == "cpu_percent" and a is not None and b is None:
                yield Change("grant", "resources", ref, f"partition '{name}' cpu_percent cap removed ({a})",
                             "low", old=str(a), new=None)
        if op.service != np.service:
            yield Change("grant", "service", ref,
                         f"partition '{name}' service changed {op.service or '-'} -> {np.service or '-'}", "low",
                         old=op.service, new=np.service)
    if np.allow.net and not op.allow.net:
        risk = "high" if np.criticality == "safety" else "medium"
        yield Change("grant", "allow.net", ref, f"partition '{name}' is now allowed the network", risk,
                     old="false", new="true")
    for path, mode in sorted(np.allow.files.items()):
        was = op.allow.files.get(path)
        if was != mode and not (was == "rw" and mode == "r"):
            yield Change("grant", "allow.files", ref, f"partition '{name}' may now open '{path}' ({mode})",
                         "medium" if mode == "rw" else "low", old=was, new=mode)
    for sc in sorted(set(np.allow.syscalls) - set(op.allow.syscalls)):
        yield Change("grant", "allow.syscalls", ref, f"partition '{name}' may now use system calls '{sc}'", "low",
                     new=sc)
    for iname in sorted(set(np.owns) - set(op.owns)):
        iface = new.interfaces.get(iname)
        risk = "medium" if iface is not None and _exposed(iface) else "low"
        yield Change("grant", "owns", ref, f"partition '{name}' now owns interface '{iname}'", risk, new=iname)


def _grants(old: s.Model, new: s.Model) -> Iterable[Change]:
    for name, np in new.partitions.items():
        yield from _partition(name, old.partitions.get(name), np, new)
    for name in old.partitions:
        if name not in new.partitions:
            yield Change("partition", "removed", P(name), f"partition '{name}' removed")
    if new.device.profile == "debug" and old.device.profile != "debug":
        yield Change("device", "profile", ElementRef("device", new.device.name),
                     "the model is now a debug-profile build", "medium", old=old.device.profile, new="debug")


def _actions_roles(old: s.Model, new: s.Model) -> Iterable[Change]:
    for name, na in new.actions.items():
        ref = ElementRef("action", name)
        oa = old.actions.get(name)
        if oa is None:
            yield Change("action", "added", ref, f"new action '{name}' handled by '{na.handled_by}'",
                         "medium" if na.safety or na.break_glass else "low")
            continue
        more = sorted(set(na.allowed) - set(oa.allowed))
        if more:
            yield Change("action", "allowed", ref, f"action '{name}' now allowed to {', '.join(more)}", "medium",
                         new=",".join(more))
        via = sorted(set(na.via) - set(oa.via))
        if via:
            yield Change("action", "via", ref, f"action '{name}' now accepted via {', '.join(via)}", "medium",
                         new=",".join(via))
        if na.break_glass and not oa.break_glass:
            yield Change("action", "break_glass", ref, f"action '{name}' is now break-glass (no login)", "high")
        if oa.requires_confirmation_by and not na.requires_confirmation_by:
            yield Change("action", "confirmation", ref,
                         f"action '{name}' no longer needs confirmation by '{oa.requires_confirmation_by}'", "medium",
                         old=oa.requires_confirmation_by)
        if oa.handled_by != na.handled_by:
            yield Change("action", "handler", ref,
                         f"action '{name}' now handled by '{na.handled_by}' (was '{oa.handled_by}')", "low",
                         old=oa.handled_by, new=na.handled_by)
    for name, nr in new.roles.items():
        ref = ElementRef("role", name)
        orole = old.roles.get(name)
        if orole is None:
            yield Change("role", "added", ref, f"new {nr.kind} role '{name}'", "low")
            continue
        via = sorted(set(nr.via) - set(orole.via))
        if via:
            yield Change("role", "via", ref, f"role '{name}' now acts via {', '.join(via)}", "low",
                         new=",".join(via))
    for name, ns in new.shared.items():
        os_ = old.shared.get(name)
        ref = ElementRef("shared", name)
        writers = sorted(set(ns.writers) - set(os_.writers if os_ else ()))
        readers = sorted(set(ns.readers) - set(os_.readers if os_ else ()))
        if writers:
            yield Change("shared", "writers", ref, f"shared {ns.kind} '{name}' now writable by {', '.join(writers)}",
                         "medium", new=",".join(writers))
        if readers:
            yield Change("shared", "readers", ref, f"shared {ns.kind} '{name}' now readable by {', '.join(readers)}",
                         "low", new=",".join(readers))
    olds = {(w.rule.upper(), w.element) for w in old.waivers}
    for w in new.waivers:
        if (w.rule.upper(), w.element) not in olds:
            # a waiver adds no interface, but it silences a finding: the reviewer must see it
            yield Change("waiver", "added", ElementRef("waiver", f"{w.rule}@{w.element}"),
                         f"new waiver of {w.rule} for '{w.element}' by {w.by} until {w.expires.isoformat()}: "
                         f"{w.reason}", "low")


# --------------------------------------------------------------------------- findings


def _finding_key(f: Finding) -> tuple[object, ...]:
    return (f.rule, f.severity, f.elements, f.message, f.waived)


def diff(old: s.Model, new: s.Model, *, today: dt.date | None = None) -> ModelDiff:
    """Compare two models; ``today`` fixes waiver expiry for both checks (default: today)."""
    day = today or dt.date.today()
    changes: list[Change] = []
    changes.extend(_interfaces(old, new))
    changes.extend(_channels(old, new))
    changes.extend(_paths(old, new))
    changes.extend(_grants(old, new))
    changes.extend(_actions_roles(old, new))
    old_findings = check(old, today=day).findings
    new_findings = check(new, today=day).findings
    old_keys = {_finding_key(f) for f in old_findings}
    new_keys = {_finding_key(f) for f in new_findings}
    return ModelDiff(
        changes=changes,
        new_findings=[f for f in new_findings if _finding_key(f) not in old_keys],
        resolved_findings=[f for f in old_findings if _finding_key(f) not in new_keys],
    )
