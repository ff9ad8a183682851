"""STRIDE threat model derived from the device model.

Each threat rule (``threat_rules``) applies to one class of element. For every element of that class
whose attributes match the rule, we create one threat and decide its status:

1. ``not-applicable`` when the rule's ``not_applicable_when`` matches, or a user decision says so;
2. ``mitigated`` when every evidence check in ``mitigated_by`` holds; the checks return the model
   elements that provide the mitigation, which is what the report shows as "mitigated by";
3. ``accepted`` when a user decision accepts it, or one of its controls is decided ``accepted-risk``;
4. ``open`` otherwise: it needs a design change or a decision.

Evidence checks are code (they inspect the flow graph), rules are data: users add rules without Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from septum.analysis.finding import ElementRef
from septum.analysis.graph import FlowGraph
from septum.model import schema as s

from .registrar import registrar
from .threat_rules import STRIDE_NAMES, ThreatDecision, ThreatFile, ThreatRule, rule_set

Refs = list[ElementRef] | None

WEAK_CRYPTO = frozenset({"", "none", "ssl2", "ssl3", "tls1", "tls1.0", "tls1.1", "des", "3des", "rc4", "wep"})


@dataclass
class Element:
    ref: ElementRef
    attrs: dict[str, Any]


@dataclass
class Threat:
    id: str  # RULE@element
    rule: ThreatRule
    element: ElementRef
    title: str
    status: str  # mitigated | accepted | not-applicable | open
    mitigated_by: list[ElementRef] = field(default_factory=list)
    reason: str = ""
    controls: list[tuple[str, str]] = field(default_factory=list)  # (control id, decision status)

    @property
    def stride(self) -> str:
        return self.rule.stride

    @property
    def stride_name(self) -> str:
        return STRIDE_NAMES[self.rule.stride]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "rule": self.rule.id, "stride": self.rule.stride, "element": str(self.element),
            "title": self.title, "status": self.status,
            "mitigated_by": [str(r) for r in self.mitigated_by], "reason": self.reason,
            "controls": [{"id": c, "decision": d} for c, d in self.controls],
            "categories": list(self.rule.categories), "verified_by": list(self.rule.verified_by),
        }


class Facts:
    """Indexes over one model that the evidence checks share."""

    def __init__(self, model: s.Model) -> None:
        self.model = model
        self.graph = FlowGraph(model)
        self.out: dict[str, list[s.Channel]] = defaultdict(list)
        self.into: dict[str, list[s.Channel]] = defaultdict(list)
        for ch in model.channels:
            self.out[ch.src].append(ch)
            self.into[ch.dst].append(ch)
        self.owner: dict[str, str] = {i: p for p, part in model.partitions.items() for i in part.owns}
        self.auth = [n for n, p in model.partitions.items() if p.service == "auth" or "authenticating" in p.mitigation]
        self.audit = {n for n, p in model.partitions.items() if p.service == "audit"}
        self.guards = frozenset(self.graph.part(n) for n, p in model.partitions.items() if p.mitigation)
        self._guarded: dict[str, Refs] = {}

    @cached_property
    def reachable(self) -> set[str]:
        parent = self.graph.bfs(self.graph.entry_points)
        return {self.graph.refs[n].name for n in parent if self.graph.refs[n].kind == "partition"}

    def crit(self, partition: str) -> int:
        p = self.model.partitions.get(partition)
        return s.CRITICALITY_RANK[p.criticality] if p else 0

    def guarded_from(self, partition: str) -> Refs:
        """Guards that stand between ``partition`` and every safety partition it can reach (cached)."""
        if partition not in self._guarded:
            g = self.graph
            start = g.part(partition)
            parent = g.bfs([start], blocked=lambda n: n in self.guards and n != start)
            bad = [n for n in parent if (p := g.partition_of(n)) is not None and p.criticality == "safety"
                   and n not in self.guards and not (n == start and p.mitigation)]
            if bad:
                self._guarded[partition] = None
            else:
                guards = sorted(g.refs[n].name for n in parent if n in self.guards and n != start)
                self._guarded[partition] = [ElementRef("partition", n) for n in guards] or [
                    ElementRef("partition", partition)]
        return self._guarded[partition]


# ----------------------------------------------------------------------------- elements


def _iface_auth_ok(i: s.Interface) -> bool:
    return (i.authentication or "").lower() not in s.NO_AUTH and i.authentication != s.PHYSICAL_PRESENCE


def elements(f: Facts, kind: str) -> Iterable[Element]:
    m = f.model
    if kind == "role":
        for n, r in m.roles.items():
            vias = [m.interfaces[v] for v in r.via if v in m.interfaces]
            physical = not r.authenticates_with and bool(vias) and all(
                v.authentication == s.PHYSICAL_PRESENCE for v in vias)
            yield Element(ElementRef("role", n), {"name": n, "kind": r.kind, "physical": physical,
                                                   "authenticates": bool(r.authenticates_with)})
    elif kind == "entry":
        for n, i in m.interfaces.items():
            if not i.external or i.kind not in s.INPUT_KINDS:
                continue
            yield Element(ElementRef("interface", n), {
                "name": n, "kind": i.kind, "network": i.kind in s.NETWORK_KINDS, "enabled": i.enabled,
                "carries_phi": "phi" in i.carries, "carries_commands": "commands" in i.carries,
                "protocol": i.protocol or "", "owner": f.owner.get(n, "")})
    elif kind == "partition":
        for n, p in m.partitions.items():
            yield Element(ElementRef("partition", n), {
                "name": n, "criticality": p.criticality, "service": p.service or "", "guard": bool(p.mitigation),
                "reachable": n in f.reachable})
    elif kind == "channel":
        for ch in m.channels:
            audit = ch.purpose == "audit" or ch.dst in f.audit
            yield Element(ElementRef("channel", ch.name), {
                "name": ch.name, "src": ch.src, "dst": ch.dst, "message": ch.message, "purpose": ch.purpose,
                "upward": f.crit(ch.dst) > f.crit(ch.src), "crosses": f.crit(ch.dst) != f.crit(ch.src),
                "audit": audit})
    elif kind == "action":
        for n, a in m.actions.items():
            remote = any(
                m.roles[r].kind == "machine"
                or any(v in m.interfaces and m.interfaces[v].kind in s.NETWORK_KINDS for v in m.roles[r].via)
                for r in a.allowed if r in m.roles)
            handler = m.partitions.get(a.handled_by)
            yield Element(ElementRef("action", n), {
                "name": n, "break_glass": a.break_glass, "safety": a.safety, "remote": remote,
                "handler": a.handled_by,
                "safety_relevant": a.safety or (handler is not None and handler.criticality == "safety")})
    elif kind == "audit_store":
        for n in sorted(f.audit):
            yield Element(ElementRef("partition", n), {"name": n})
    elif kind == "device":
        has_update = any(p.service == "update" for p in m.partitions.values())
        yield Element(ElementRef("device", m.device.name), {"name": m.device.name, "has_update_service": has_update})


# ----------------------------------------------------------------------------- evidence checks


def _p(n: str) -> ElementRef:
    return ElementRef("partition", n)


Evidence = Callable[[Facts, Element], Refs]

# ``mitigated_by:`` names in threat files -> the check; filled by @evidence so that a function's name can
# change without breaking the link (tests/compliance/test_registries.py checks both ways).
EVIDENCE: dict[str, Evidence] = {}


evidence = registrar(EVIDENCE, "evidence check")
"""``@evidence(name)``: register the decorated function as the check threat rules cite in ``mitigated_by``."""


@evidence("role_authenticates")
def ev_role_authenticates(f: Facts, el: Element) -> Refs:
    r = f.model.roles[el.ref.name]
    vias = [v for v in r.via if v in f.model.interfaces]
    if not r.authenticates_with or not f.auth or not all(_iface_auth_ok(f.model.interfaces[v]) for v in vias):
        return None
    return [el.ref, *(ElementRef("interface", v) for v in vias), *map(_p, f.auth)]


def _handlers_of_role(f: Facts, role: str) -> set[str]:
    return {a.handled_by for a in f.model.actions.values() if role in a.allowed}


@evidence("safety_gate")
def ev_safety_gate(f: Facts, el: Element) -> Refs:
    handlers = _handlers_of_role(f, el.ref.name)
    if not handlers:
        return None
    gates: list[str] = []
    for h in handlers:
        found = [n for n, p in f.model.partitions.items()
                 if "gating" in p.mitigation and (n == h or h in p.monitors)]
        if not found:
            return None
        gates.extend(g for g in found if g not in gates)
    return [_p(g) for g in gates]


def _audit_channels(f: Facts, partition: str) -> list[s.Channel]:
    return [ch for ch in f.out.get(partition, []) if ch.dst in f.audit]


@evidence("actions_audited")
def ev_actions_audited(f: Facts, el: Element) -> Refs:
    handlers = _handlers_of_role(f, el.ref.name)
    if not f.audit or not handlers:
        return None
    chans: list[ElementRef] = []
    for h in sorted(handlers):
        if h in f.audit:
            continue
        cs = _audit_channels(f, h)
        if not cs:
            return None
        chans.extend(ElementRef("channel", c.name) for c in cs)
    return [*map(_p, sorted(f.audit)), *chans]


@evidence("encrypted_interface")
def ev_encrypted_interface(f: Facts, el: Element) -> Refs:
    i = f.model.interfaces[el.ref.name]
    return [el.ref] if i.encryption and i.encryption.lower() not in WEAK_CRYPTO else None


@evidence("authenticated_interface")
def ev_authenticated_interface(f: Facts, el: Element) -> Refs:
    return [el.ref] if _iface_auth_ok(f.model.interfaces[el.ref.name]) else None


@evidence("interface_disabled")
def ev_interface_disabled(f: Facts, el: Element) -> Refs:
    return [el.ref] if not f.model.interfaces[el.ref.name].enabled else None


@evidence("owner_not_safety")
def ev_owner_not_safety(f: Facts, el: Element) -> Refs:
    owner = f.owner.get(el.ref.name)
    if owner is None:
        return [el.ref]  # owned by nobody: input goes nowhere
    return [_p(owner)] if f.model.partitions[owner].criticality != "safety" else None


@evidence("owner_outputs_rate_limited")
def ev_owner_outputs_rate_limited(f: Facts, el: Element) -> Refs:
    owner = f.owner.get(el.ref.name)
    if owner is None:
        return [el.ref]
    outs = f.out.get(owner, [])
    if any(ch.rate is None for ch in outs):
        return None
    return [ElementRef("channel", ch.name) for ch in outs] or [_p(owner)]


@evidence("guarded_paths")
def ev_guarded_paths(f: Facts, el: Element) -> Refs:
    owner = f.owner.get(el.ref.name)
    if owner is None:
        return [el.ref]
    return f.guarded_from(owner)


@evidence("bounded_message")
def ev_bounded_message(f: Facts, el: Element) -> Refs:
    ch = f.model.channel(el.ref.name)
    try:
        fields = f.model.message_fields(ch.message)
    except KeyError:
        return None
    for fd in fields.values():
        if fd.type in ("str", "bytes") and fd.max_len is None:
            return None
        if fd.type in ("int", "float") and (fd.min is None or fd.max is None):
            return None
        if fd.type == "list" and fd.max_items is None:
            return None
        if fd.type == "enum" and not fd.values:
            return None
    return [ElementRef("message", ch.message)]


@evidence("rate_limited_channel")
def ev_rate_limited_channel(f: Facts, el: Element) -> Refs:
    return [el.ref] if f.model.channel(el.ref.name).rate else None


@evidence("fail_safe_watchdog")
def ev_fail_safe_watchdog(f: Facts, el: Element) -> Refs:
    p = f.model.partitions[el.ref.name]
    if p.restart_policy != "fail-safe" or p.heartbeat_ms is None:
        return None
    monitors = [n for n, q in f.model.partitions.items() if el.ref.name in q.monitors]
    return [el.ref, *map(_p, monitors)]


@evidence("supervisor_guard")
def ev_supervisor_guard(f: Facts, el: Element) -> Refs:
    """The runtime checks and budgets every control message of every partition (septum.runtime.control_guard)."""
    return [el.ref]


@evidence("syscall_allow_list")
def ev_syscall_allow_list(f: Facts, el: Element) -> Refs:
    """Every partition runs under a seccomp allow-list derived from what the model declares it does."""
    return [el.ref]


@evidence("resource_bounds")
def ev_resource_bounds(f: Facts, el: Element) -> Refs:
    """Every partition has memory, pids, CPU and disk bounds (the model's or the defaults), enforced."""
    return [el.ref] if f.model.partitions[el.ref.name].resources is not None else None


@evidence("fail_safe_supervisor")
def ev_fail_safe_supervisor(f: Facts, el: Element) -> Refs:
    """On a supervisor fault the runtime kills the therapy path: only fail-safe safety partitions (whose
    actuator stops when they stop) make that a safe state."""
    safe = [n for n, p in f.model.partitions.items() if p.criticality == "safety" and p.restart_policy == "fail-safe"]
    return [_p(n) for n in sorted(safe)] or None


@evidence("update_attested")
def ev_update_attested(f: Facts, el: Element) -> Refs:
    return [el.ref] if "attesting" in f.model.partitions[el.ref.name].mitigation else None


@evidence("update_mediated")
def ev_update_mediated(f: Facts, el: Element) -> Refs:
    srcs = sorted({ch.src for ch in f.into.get(el.ref.name, [])})
    parts = f.model.partitions
    if any(not parts[src].mitigation and parts[src].service != "auth" for src in srcs if src in parts):
        return None
    return [_p(x) for x in srcs] or [el.ref]


@evidence("audit_service")
def ev_audit_service(f: Facts, el: Element) -> Refs:
    return [el.ref] if f.model.partitions[el.ref.name].service == "audit" else None


@evidence("audit_inputs_rate_limited")
def ev_audit_inputs_rate_limited(f: Facts, el: Element) -> Refs:
    ins = f.into.get(el.ref.name, [])
    if any(ch.rate is None for ch in ins):
        return None
    return [ElementRef("channel", ch.name) for ch in ins] or [el.ref]


@evidence("audited_and_alerted")
def ev_audited_and_alerted(f: Facts, el: Element) -> Refs:
    a = f.model.actions[el.ref.name]
    audit = _audit_channels(f, a.handled_by)
    if not audit or a.handled_by not in f.model.partitions:
        return None
    g = f.graph
    reached = g.bfs([g.part(a.handled_by)])
    alert = sorted({
        g.refs[n].name for n in reached if g.refs[n].kind == "partition" and any(
            f.model.interfaces[i].kind in ("display", "network", "wireless")
            for i in f.model.partitions[g.refs[n].name].owns if i in f.model.interfaces)})
    if not alert:
        return None
    return [*(ElementRef("channel", c.name) for c in audit), *map(_p, alert)]


@evidence("local_confirmation")
def ev_local_confirmation(f: Facts, el: Element) -> Refs:
    a = f.model.actions[el.ref.name]
    who = a.requires_confirmation_by
    if not who or who not in f.model.roles:
        return None
    r = f.model.roles[who]
    if r.kind == "machine" or any(
            v in f.model.interfaces and f.model.interfaces[v].kind in s.NETWORK_KINDS for v in r.via):
        return None  # a confirmation from the network is no defence against a network attacker
    return [ElementRef("role", who), *(ElementRef("interface", v) for v in r.via)]


@evidence("never")
def ev_never(f: Facts, el: Element) -> Refs:
    return None


# ----------------------------------------------------------------------------- evaluation


def _matches(attrs: dict[str, Any], when: dict[str, Any]) -> bool:
    for k, want in when.items():
        have = attrs.get(k)
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


class _Fmt(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def threat_model(model: s.Model, *extra: ThreatFile) -> list[Threat]:
    """Every threat the rules generate for ``model``, each with its status and evidence."""
    rules, decisions = rule_set(*extra)
    f = Facts(model)
    control_status: dict[str, tuple[str, str]] = {}
    if model.controls is not None:
        control_status = {cid: (d.status, d.reason) for cid, d in model.controls.decisions.items()}
    cache: dict[str, list[Element]] = {}
    out: list[Threat] = []
    for rule in rules:
        els = cache.setdefault(rule.applies_to, list(elements(f, rule.applies_to)))
        for el in els:
            if not _matches(el.attrs, rule.when):
                continue
            tid = f"{rule.id}@{el.ref.name}"
            t = Threat(tid, rule, el.ref, rule.title.format_map(_Fmt(el.attrs)), "open")
            t.controls = [(c, control_status.get(c, ("no decision", ""))[0]) for c in rule.controls]
            _decide(t, rule, el, f, decisions.get(tid), control_status)
            out.append(t)
    return out


def _decide(t: Threat, rule: ThreatRule, el: Element, f: Facts, decision: ThreatDecision | None,
            controls: dict[str, tuple[str, str]]) -> None:
    na = rule.not_applicable_when
    if na is not None and _matches(el.attrs, na.when):
        t.status, t.reason = "not-applicable", na.reason
        return
    if decision is not None and decision.status == "not-applicable":
        t.status, t.reason = "not-applicable", decision.reason + (f" ({decision.by})" if decision.by else "")
        return
    evidence: dict[ElementRef, None] = {}  # insertion-ordered set: first mention first, no repeats
    for name in rule.mitigated_by:
        refs = EVIDENCE[name](f, el)
        if refs is None:
            break
        evidence.update(dict.fromkeys(refs))
    else:
        t.status, t.mitigated_by = "mitigated", list(evidence)
        return
    if decision is not None:
        t.status, t.reason = "accepted", decision.reason + (f" ({decision.by})" if decision.by else "")
        return
    for cid in rule.controls:
        status, reason = controls.get(cid, ("", ""))
        if status == "accepted-risk":
            t.status, t.reason = "accepted", f"control {cid} is accepted-risk: {reason}"
            return
    t.status, t.reason = "open", "no evidence of mitigation in the model: " + ", ".join(rule.mitigated_by)


def summary(threats: list[Threat]) -> dict[str, int]:
    out = {"mitigated": 0, "accepted": 0, "not-applicable": 0, "open": 0}
    for t in threats:
        out[t.status] += 1
    return out
