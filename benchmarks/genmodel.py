"""Generate large device models with the reference pump's mix of elements, scaled (deterministic per size).

A model of ``n`` partitions is ``n / 20`` subsystems. Each subsystem is the pump's shape: a network
partition owning an external HTTPS interface, an authenticating guard (``mitigation: [authenticating]``,
``protects`` the safety core), a UI owning a keypad, a patient button and a display, a safety controller with
a heartbeat, a safety monitor that ``monitors`` the controller, gates its commands and alone owns the motor and
sensors, an attested updater, a local audit relay, and 13 ordinary worker partitions. Per subsystem there are
three roles (clinician, patient, hospital server), six actions (one break-glass, one that needs a clinician's
confirmation), one shared-state element, a reset and an override channel into the monitor through the guard,
and three software components. Subsystem 0's audit relay is the model's audit service.

Channels follow the pump (orders in through the guard, commands to the controller, motor commands,
heartbeat and status between controller and monitor, audit from every partition) and the workers talk to
workers of their own and of other subsystems, so the flow searches cross the whole model. About one
subsystem in 100 has a debug-free flaw: its UI writes straight into its controller, around the guard, which
the ISO and MED rules must find with their witness.

The same ``Topology`` feeds pytm (benchmarks/analysis_scale.py): partitions and interfaces become its
elements, channels and interface inputs its dataflows, criticality levels its trust boundaries.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

SUBSYSTEM = 20
WORKERS = SUBSYSTEM - 7
CORE = ("net", "auth", "ui", "ctl", "mon", "upd", "log")
CRITICALITY = {"net": "none", "auth": "high", "ui": "low", "ctl": "safety", "mon": "safety", "upd": "high",
               "log": "high", "w": "low"}


@dataclass(frozen=True)
class Partition:
    name: str
    role: str  # net, auth, ui, ctl, mon, upd, log or w
    subsystem: int
    owns: tuple[str, ...] = ()

    @property
    def criticality(self) -> str:
        return CRITICALITY[self.role]


@dataclass(frozen=True)
class Interface:
    name: str
    kind: str  # network, keypad, button, display, actuator, sensor
    external: bool


@dataclass(frozen=True)
class Channel:
    name: str
    src: str
    dst: str
    message: str
    purpose: str = "data"


@dataclass
class Topology:
    partitions: list[Partition] = field(default_factory=list)
    interfaces: list[Interface] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    subsystems: int = 0
    flawed: list[int] = field(default_factory=list)  # subsystems whose UI writes into the controller

    def counts(self) -> dict[str, int]:
        s = self.subsystems
        return {"partitions": len(self.partitions), "interfaces": len(self.interfaces),
                "channels": len(self.channels), "roles": 3 * s, "actions": 6 * s, "monitors": s,
                "guards": 2 * s, "shared": s, "components": 3 * s}


def _name(u: int, role: str) -> str:
    return f"s{u}_{role}"


def topology(n: int, *, seed: int = 7) -> Topology:
    """``n`` partitions (rounded up to whole subsystems of 20)."""
    rnd = random.Random(seed)
    subs = max(1, -(-n // SUBSYSTEM))
    topo = Topology(subsystems=subs)
    flaw_every = 100
    for u in range(subs):
        p = functools.partial(_name, u)
        ifaces = [Interface(p("https"), "network", True), Interface(p("keypad"), "keypad", True),
                  Interface(p("button"), "button", True), Interface(p("display"), "display", True),
                  Interface(p("motor"), "actuator", False), Interface(p("sensors"), "sensor", False)]
        topo.interfaces += ifaces
        owns = {"net": (p("https"),), "ui": (p("keypad"), p("button"), p("display")),
                "mon": (p("motor"), p("sensors"))}
        for role in CORE:
            topo.partitions.append(Partition(p(role), role, u, owns.get(role, ())))
        for k in range(WORKERS):
            topo.partitions.append(Partition(p(f"w{k}"), "w", u))
        ch = topo.channels
        for src, dst, msg, purpose in (
            ("net", "auth", "Order", "data"), ("auth", "net", "Reply", "data"),
            ("ui", "auth", "Request", "data"), ("auth", "ui", "Reply", "data"),
            ("auth", "ctl", "Command", "command"), ("auth", "mon", "Reset", "reset"),
            ("auth", "mon", "Approval", "override"), ("auth", "upd", "Chunk", "data"),
            ("upd", "ctl", "Library", "data"), ("upd", "mon", "Library", "data"),
            ("ctl", "mon", "Motor", "command"), ("ctl", "mon", "Beat", "heartbeat"),
            ("mon", "ctl", "Status", "status"), ("ctl", "ui", "Status", "status"),
            ("mon", "ui", "Status", "alert"), ("ctl", "net", "Event", "status"),
            ("ui", "w0", "Request", "data"), ("net", "w1", "Event", "data"),
        ):
            ch.append(Channel(f"{p(src)}__{dst}_{purpose}", p(src), p(dst), msg, purpose))
        for role in CORE[:-1]:
            ch.append(Channel(f"{p(role)}__audit", p(role), p("log"), "AuditEvent", "audit"))
        if u:
            ch.append(Channel(f"{p('log')}__audit", p("log"), _name(0, "log"), "AuditEvent", "audit"))
        if u % flaw_every == flaw_every // 2 or (subs < flaw_every and u == subs // 2):
            ch.append(Channel(f"{p('ui')}__ctl_shortcut", p("ui"), p("ctl"), "Command", "command"))
            topo.flawed.append(u)
        seen: set[tuple[int, int]] = set()
        for k in range(WORKERS):
            w = p(f"w{k}")
            ch.append(Channel(f"{w}__audit", w, p("log"), "AuditEvent", "audit"))
            for _ in range(3):
                if rnd.random() < 0.2 and subs > 1:  # a link to a worker of another subsystem
                    v = rnd.randrange(subs)
                    while v == u:
                        v = rnd.randrange(subs)
                    j, dst = -1 - v, _name(v, f"w{rnd.randrange(WORKERS)}")
                else:
                    j = rnd.randrange(WORKERS)
                    dst = p(f"w{j}")
                if dst == w or (k, j) in seen:
                    continue
                seen.add((k, j))
                ch.append(Channel(f"{w}__{dst}", w, dst, "Reading" if k % 2 else "Request"))
    return topo


_MESSAGES = {
    "Order": "{drug: {type: str, max_len: 32}, rate: {type: float, min: 0, max: 1000}}",
    "Reply": "{ok: {type: bool}, reason: {type: str, max_len: 64}}",
    "Request": "{op: {type: enum, values: [program, start, stop]}, arg: {type: int, min: 0, max: 100000}}",
    "Command": "{op: {type: enum, values: [start, stop, set]}, arg: {type: int, min: 0, max: 100000}}",
    "Reset": "{fault: {type: int, min: 0, max: 255}}",
    "Approval": "{limit: {type: float, min: 0, max: 1000}}",
    "Chunk": "{seq: {type: int, min: 0, max: 65535}, data: {type: bytes, max_len: 4096}}",
    "Library": "{version: {type: int, min: 0, max: 100000}}",
    "Motor": "{steps: {type: int, min: 0, max: 10000}}",
    "Beat": "{seq: {type: int, min: 0, max: 4294967295}}",
    "Status": "{state: {type: enum, values: [idle, running, alarm]}, rate: {type: float, min: 0, max: 1000}}",
    "Event": "{kind: {type: str, max_len: 32}, value: {type: float, min: 0, max: 1000}}",
    "AuditEvent": "{what: {type: str, max_len: 128}}",
    "Reading": "{value: {type: float, min: 0, max: 1000}, unit: {type: str, max_len: 16}}",
}
_IFACE = {
    "network": "kind: network, external: true, protocol: https, port: 8443, authentication: mutual-tls, "
               "encryption: tls1.3, carries: [phi, commands]",
    "keypad": "kind: keypad, external: true, authentication: clinician-pin",
    "button": "kind: button, external: true, authentication: physical-presence-only",
    "display": "kind: display, external: true",
    "actuator": "kind: actuator",
    "sensor": "kind: sensor",
}
_RATE = {"audit": "100/s", "heartbeat": "100/s", "command": "20/s", "reset": "1/s", "override": "2/s"}


def _partition_fields(p: Partition) -> list[str]:
    f = [f"criticality: {p.criticality}"]
    if p.owns:
        f.append(f"owns: [{', '.join(p.owns)}]")
    if p.role == "net":
        f.append("allow: {net: true}")
    elif p.role == "auth":
        f.append("mitigation: [authenticating]")
        f.append(f"protects: [{_name(p.subsystem, 'ctl')}, {_name(p.subsystem, 'mon')}]")
    elif p.role == "ctl":
        f.append("heartbeat_ms: 100")
    elif p.role == "mon":
        f.append("mitigation: [monitoring, gating]")
        f.append(f"monitors: [{_name(p.subsystem, 'ctl')}]")
        f.append("heartbeat_ms: 50")
    elif p.role == "upd":
        f.append("mitigation: [attesting]")
    elif p.role == "log" and p.subsystem == 0:
        f.append("service: audit")
    period = {"ctl": 50, "mon": 10}.get(p.role, 100)
    f.append(f"resources: {{memory_mb: 64, period_ms: {period}}}")
    return f


def model_yaml(topo: Topology) -> str:
    out = ["septum: 1", "device: {name: generated benchmark device, version: '1', manufacturer: bench, "
           "profile: production}", "interfaces:"]
    out += [f"  {i.name}: {{{_IFACE[i.kind]}}}" for i in topo.interfaces]
    out.append("partitions:")
    out += [f"  {p.name}: {{{', '.join(_partition_fields(p))}}}" for p in topo.partitions]
    out.append("messages:")
    out += [f"  {name}: {fields}" for name, fields in _MESSAGES.items()]
    out.append("channels:")
    for c in topo.channels:
        purpose = "" if c.purpose == "data" else f", purpose: {c.purpose}"
        out.append(f"  - {{name: {c.name}, from: {c.src}, to: {c.dst}, message: {c.message}{purpose}, "
                   f"rate: {_RATE.get(c.purpose, '10/s')}}}")
    out.append("roles:")
    for u in range(topo.subsystems):
        p = functools.partial(_name, u)
        out.append(f"  {p('clinician')}: {{kind: human, authenticates_with: [pin], via: [{p('keypad')}]}}")
        out.append(f"  {p('patient')}: {{kind: human, via: [{p('button')}]}}")
        out.append(f"  {p('server')}: {{kind: machine, authenticates_with: [mutual-tls], via: [{p('https')}]}}")
    out.append("actions:")
    for u in range(topo.subsystems):
        p = functools.partial(_name, u)
        out.append(f"  {p('program')}: {{handled_by: {p('ctl')}, allowed: [{p('clinician')}], safety: true}}")
        out.append(f"  {p('bolus')}: {{handled_by: {p('ctl')}, allowed: [{p('patient')}], safety: true}}")
        out.append(f"  {p('order')}: {{handled_by: {p('ctl')}, allowed: [{p('server')}], "
                   f"requires_confirmation_by: {p('clinician')}}}")
        out.append(f"  {p('clear_fault')}: {{handled_by: {p('mon')}, allowed: [{p('clinician')}], safety: true}}")
        out.append(f"  {p('install')}: {{handled_by: {p('upd')}, allowed: [{p('server')}]}}")
        out.append(f"  {p('estop')}: {{handled_by: {p('ctl')}, break_glass: true, via: [{p('keypad')}]}}")
    out.append("shared:")
    for u in range(topo.subsystems):
        p = functools.partial(_name, u)
        out.append(f"  {p('readings')}: {{kind: memory, writers: [{p('mon')}], readers: [{p('ctl')}, {p('ui')}]}}")
    out.append("components:")
    for u in range(topo.subsystems):
        for role, lib in (("net", "httpd"), ("ui", "widgets"), ("ctl", "therapy")):
            out.append(f"  {_name(u, role)}:")
            out.append(f"    - {{name: {lib}, version: '1.{u % 50}', purl: 'pkg:pypi/{lib}@1.{u % 50}', "
                       "supplier: bench}")
    return "\n".join(out) + "\n"


def element_count(topo: Topology) -> int:
    """Elements both tools model: partitions, interfaces and channels (pytm: processes, actors and
    external entities, dataflows) plus the interface inputs (dataflows into their owners)."""
    inputs = sum(len(p.owns) for p in topo.partitions)
    return len(topo.partitions) + len(topo.interfaces) + len(topo.channels) + inputs
