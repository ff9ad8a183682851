"""FDA security architecture views as SVG diagrams, with the per-path details the guidance asks for.

Views (FDA premarket cybersecurity guidance): Global System, Multi-Patient Harm, Updatability/Patchability,
and one Security Use Case view per safety-relevant or break-glass action. Each is a set of nodes (roles,
interfaces, partitions) and directed paths; every path gets protocol, port, direction, data/command type,
authentication and its strength, cryptography and behaviour on error, derived from the model and from
the runtime's documented behaviour (typed decoding and rate limits at every receiving partition).

The SVG is produced here, with a deterministic layered layout (a column per layer, rows sorted by name),
so there is no graphviz dependency and the same model always gives the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from septum.analysis.graph import FlowGraph
from septum.model import schema as s

WEAK = {"", "none", "ssl2", "ssl3", "tls1", "tls1.0", "tls1.1"}


@dataclass(frozen=True)
class VNode:
    id: str  # "role:x", "interface:x", "partition:x"
    label: str
    kind: str  # role | interface | partition
    layer: int
    style: str  # criticality for partitions, "external"/"internal" for interfaces, role kind


@dataclass(frozen=True)
class PathDetail:
    src: str
    dst: str
    via: str  # channel or interface name
    protocol: str
    port: str
    direction: str
    data: str
    authentication: str
    strength: str
    crypto: str
    on_error: str


@dataclass
class View:
    key: str
    title: str
    purpose: str
    nodes: list[VNode] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (src id, dst id, label)
    details: list[PathDetail] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- path details


def auth_strength(methods: list[str]) -> str:
    """A plain-words strength for a set of authentication mechanisms."""
    ms = [m.lower() for m in methods if m and m.lower() not in ("none",)]
    if not ms:
        return "none"
    if any("presence" in m for m in ms):
        return "physical presence only (no identity)"
    crypto = [m for m in ms if "tls" in m or "cert" in m or "signature" in m or "key" in m]
    if any("mutual" in m for m in crypto):
        return "strong: mutual certificate-based"
    if crypto:
        return "cryptographic, one-sided"
    if len(set(ms)) >= 2:
        return "two factors"
    return "single factor (" + ("knowledge" if any(k in ms[0] for k in ("pin", "password")) else "possession") + ")"


def _iface_detail(m: s.Model, iname: str, owner: str, inbound: bool) -> PathDetail:
    i = m.interfaces[iname]
    auth = i.authentication or "none"
    enc = i.encryption or "none"
    crypto = enc if enc.lower() not in WEAK else f"{enc} (weak or none)"
    if not i.enabled:
        err = "interface disabled in this build: nothing is accepted"
    elif i.kind in s.NETWORK_KINDS:
        err = (f"handshake/authentication failure: connection refused and audited by '{owner}'; malformed or "
               "over-rate messages dropped and audited")
    elif i.kind in s.INPUT_KINDS:
        err = "invalid or unauthenticated input rejected by the auth service and audited"
    else:
        err = "device-internal; faults raise an alarm"
    return PathDetail(
        src=iname if inbound else owner, dst=owner if inbound else iname, via=iname,
        protocol=i.protocol or i.kind, port=str(i.port) if i.port else "-",
        direction="in" if inbound else "out", data=", ".join(i.carries) or i.kind,
        authentication=auth, strength=auth_strength([auth]), crypto=crypto, on_error=err)


def _channel_detail(m: s.Model, ch: s.Channel) -> PathDetail:
    dst = m.partitions.get(ch.dst)
    rate = f"above {ch.rate} dropped and audited; " if ch.rate else "no rate limit declared; "
    err = rate + "messages failing typed validation dropped and audited by the receiver"
    if ch.purpose == "heartbeat" and dst is not None:
        err = f"missed heartbeats: '{ch.dst}' declares the sender failed ({dst.restart_policy})"
    return PathDetail(
        src=ch.src, dst=ch.dst, via=ch.name, protocol="septum channel (kernel-enforced, one-way)", port="-",
        direction=f"{ch.src} -> {ch.dst}", data=f"{ch.message} ({ch.purpose})",
        authentication="capability: only the declared sender holds the channel end",
        strength="strong: enforced by the separation layer",
        crypto="none needed: the channel never leaves the device", on_error=err)


# ----------------------------------------------------------------------------- views


def _crit_layer(p: s.Partition) -> int:
    return 2 + s.CRITICALITY_RANK[p.criticality]


def global_view(m: s.Model) -> View:
    v = View("global", "Global System view",
             "The device, every external and internal interface, every partition (grouped into security "
             "domains by criticality) and every channel, with the principals outside the device.")
    owner = {i: p for p, part in m.partitions.items() for i in part.owns}
    for rn, r in sorted(m.roles.items()):
        v.nodes.append(VNode(f"role:{rn}", rn, "role", 0, r.kind))
    for iname, i in sorted(m.interfaces.items()):
        layer = 1 if i.external else 6
        v.nodes.append(VNode(f"interface:{iname}", iname, "interface", layer,
                             ("external" if i.external else "internal") + ("" if i.enabled else " disabled")))
    for pn, p in sorted(m.partitions.items()):
        v.nodes.append(VNode(f"partition:{pn}", pn, "partition", _crit_layer(p), p.criticality))
    for rn, r in sorted(m.roles.items()):
        for via in r.via:
            if via in m.interfaces:
                v.edges.append((f"role:{rn}", f"interface:{via}", ""))
    for iname, i in sorted(m.interfaces.items()):
        o = owner.get(iname)
        if o is None:
            continue
        inbound = i.kind in s.INPUT_KINDS or i.kind == "sensor"
        a, b = (f"interface:{iname}", f"partition:{o}") if inbound else (f"partition:{o}", f"interface:{iname}")
        v.edges.append((a, b, ""))
        v.details.append(_iface_detail(m, iname, o, inbound))
    for ch in m.channels:
        v.edges.append((f"partition:{ch.src}", f"partition:{ch.dst}", ch.name))
        v.details.append(_channel_detail(m, ch))
    return v


def _subview(m: s.Model, v: View, nodes: set[str], channels: list[s.Channel], ifaces: list[tuple[str, str, bool]],
             roles: dict[str, list[str]]) -> View:
    """Fill ``v`` with the given partitions/channels/interfaces, laid out by BFS depth from the roles."""
    depth: dict[str, int] = {}
    for rn in roles:
        depth[f"role:{rn}"] = 0
    for iname, _o, inbound in ifaces:
        depth[f"interface:{iname}"] = 1 if inbound else 99
    frontier = [o for _i, o, inbound in ifaces if inbound]
    for o in frontier:
        depth.setdefault(f"partition:{o}", 2)
    # BFS over the chosen channels for partition depth
    changed = True
    while changed:
        changed = False
        for ch in channels:
            a, b = f"partition:{ch.src}", f"partition:{ch.dst}"
            if a in depth and depth[a] < 90 and b not in depth:
                depth[b] = depth[a] + 1
                changed = True
    for pn in sorted(nodes):
        depth.setdefault(f"partition:{pn}", 2)
    last = max([d for d in depth.values() if d < 90], default=2) + 1
    for rn, vias in sorted(roles.items()):
        v.nodes.append(VNode(f"role:{rn}", rn, "role", 0, m.roles[rn].kind))
        for via in vias:
            v.edges.append((f"role:{rn}", f"interface:{via}", ""))
    for iname, o, inbound in ifaces:
        i = m.interfaces[iname]
        layer = 1 if inbound else last
        v.nodes.append(VNode(f"interface:{iname}", iname, "interface", layer,
                             ("external" if i.external else "internal") + ("" if i.enabled else " disabled")))
        a, b = (f"interface:{iname}", f"partition:{o}") if inbound else (f"partition:{o}", f"interface:{iname}")
        v.edges.append((a, b, ""))
        v.details.append(_iface_detail(m, iname, o, inbound))
    for pn in sorted(nodes):
        v.nodes.append(VNode(f"partition:{pn}", pn, "partition", depth[f"partition:{pn}"],
                             m.partitions[pn].criticality))
    for ch in channels:
        v.edges.append((f"partition:{ch.src}", f"partition:{ch.dst}", ch.name))
        v.details.append(_channel_detail(m, ch))
    return v


def _remote_roles(m: s.Model) -> dict[str, list[str]]:
    out = {}
    for rn, r in m.roles.items():
        vias = [x for x in r.via if x in m.interfaces and m.interfaces[x].kind in s.NETWORK_KINDS]
        if vias:
            out[rn] = vias
    return out


def multi_patient_view(m: s.Model) -> View:
    v = View("multi-patient", "Multi-Patient Harm view",
             "How an attacker who controls the hospital network or a hospital server (and so can reach many "
             "devices at once) is kept from changing therapy: every path from the network interfaces, the "
             "guards on it, and the remote actions that need a person at the device.")
    g = FlowGraph(m)
    roles = _remote_roles(m)
    net = sorted({x for vs in roles.values() for x in vs}
                 | {n for n, i in m.interfaces.items() if i.kind in s.NETWORK_KINDS and i.external and i.enabled})
    owner = {i: p for p, part in m.partitions.items() for i in part.owns}
    starts = [g.iface(n) for n in net if n in owner]
    reached = g.bfs(starts)
    parts = {g.refs[n].name for n in reached if g.refs[n].kind == "partition"}
    chans = [ch for ch in m.channels if ch.src in parts and ch.dst in parts and ch.purpose != "audit"]
    ifaces = [(n, owner[n], True) for n in net if n in owner]
    _subview(m, v, parts, chans, ifaces, roles)
    for an, a in sorted(m.actions.items()):
        remote = [r for r in a.allowed if r in roles]
        if not remote:
            continue
        if a.requires_confirmation_by:
            v.notes.append(f"remote action '{an}' (by {', '.join(remote)}) only takes effect after "
                           f"'{a.requires_confirmation_by}' confirms it at the device")
        else:
            v.notes.append(f"remote action '{an}' (by {', '.join(remote)}) needs no confirmation at the device; "
                           f"handled by '{a.handled_by}'")
    guards = sorted(p for p in parts if m.partitions[p].mitigation)
    v.notes.append("guards on the network paths: " + (", ".join(guards) or "none"))
    return v


def update_view(m: s.Model) -> View:
    v = View("update", "Updatability/Patchability view",
             "The end-to-end path of a software or drug-library update: from the update principal through the "
             "network interface, authentication and verification, to the partitions that receive it.")
    upd = [n for n, p in m.partitions.items() if p.service == "update"]
    if not upd:
        v.notes.append("the model has no update service partition: the device cannot be patched in the field")
        return v
    g = FlowGraph(m)
    owner = {i: p for p, part in m.partitions.items() for i in part.owns}
    roles = {rn: [x for x in r.via if x in owner] for rn, r in m.roles.items()
             if any(a.handled_by in upd and rn in a.allowed for a in m.actions.values())}
    vias = sorted({x for vs in roles.values() for x in vs})
    parent = g.bfs([g.iface(x) for x in vias if m.interfaces[x].enabled])
    chan_names: set[str] = set()
    parts: set[str] = set(upd)
    for u in upd:
        if g.part(u) in parent:
            for step in g.path_to(parent, g.part(u)):
                if step.node.kind == "partition":
                    parts.add(step.node.name)
                if step.channel:
                    chan_names.add(step.channel)
    for ch in m.channels:
        if ch.src in upd and ch.purpose != "audit":
            chan_names.add(ch.name)
            parts.add(ch.dst)
    chans = [ch for ch in m.channels if ch.name in chan_names]
    _subview(m, v, parts, chans, [(x, owner[x], True) for x in vias], roles)
    for u in upd:
        p = m.partitions[u]
        v.notes.append(f"'{u}' " + ("verifies signatures before anything is installed (attesting)"
                                    if "attesting" in p.mitigation else "declares no attesting mitigation"))
    return v


def use_case_views(m: s.Model) -> list[View]:
    out = []
    g = FlowGraph(m)
    owner = {i: p for p, part in m.partitions.items() for i in part.owns}
    for an, a in sorted(m.actions.items()):
        if not (a.safety or a.break_glass):
            continue
        v = View(f"use-case-{an}", f"Security Use Case view: {an}",
                 (a.description or f"The '{an}' action") + " — who can start it, by which interface, through "
                 "which partitions it reaches its handler, and where it is audited.")
        roles: dict[str, list[str]] = {}
        for rn in a.allowed:
            if rn in m.roles:
                roles[rn] = [x for x in (a.via or m.roles[rn].via) if x in owner]
        vias = sorted({x for vs in roles.values() for x in vs} | {x for x in a.via if x in owner})
        parent = g.bfs([g.iface(x) for x in vias if m.interfaces[x].enabled])
        parts: set[str] = {a.handled_by} if a.handled_by in m.partitions else set()
        chan_names: set[str] = set()
        if a.handled_by in m.partitions and g.part(a.handled_by) in parent:
            for step in g.path_to(parent, g.part(a.handled_by)):
                if step.node.kind == "partition":
                    parts.add(step.node.name)
                if step.channel:
                    chan_names.add(step.channel)
        for ch in m.channels:
            if ch.src == a.handled_by and (ch.purpose in ("audit", "command", "alert")
                                           or m.partitions[ch.dst].criticality == "safety"):
                chan_names.add(ch.name)
                parts.add(ch.dst)
        chans = [ch for ch in m.channels if ch.name in chan_names]
        _subview(m, v, parts, chans, [(x, owner[x], True) for x in vias], roles)
        if a.break_glass:
            v.notes.append("break glass: available without login; every use is audited and alerted")
        if a.requires_confirmation_by:
            v.notes.append(f"takes effect only after '{a.requires_confirmation_by}' confirms it at the device")
        out.append(v)
    return out


def all_views(m: s.Model) -> list[View]:
    return [global_view(m), multi_patient_view(m), update_view(m), *use_case_views(m)]


# ----------------------------------------------------------------------------- SVG

FILL = {"safety": "#f8d7da", "high": "#fff3cd", "low": "#d1ecf1", "none": "#e2e3e5",
        "external": "#ffffff", "internal": "#f4f4f4", "human": "#e8f5e9", "machine": "#ede7f6"}
STROKE = {"safety": "#a71d2a", "high": "#b38600", "low": "#0c5460", "none": "#555"}
COL_W, ROW_H, BOX_W, BOX_H, PAD = 190, 56, 150, 34, 30


def layout(v: View) -> dict[str, tuple[float, float]]:
    """Deterministic layered layout: x from the layer, y from the rank within the layer (sorted by id)."""
    layers = sorted({n.layer for n in v.nodes})
    col = {layer: i for i, layer in enumerate(layers)}
    rows: dict[int, int] = {}
    pos: dict[str, tuple[float, float]] = {}
    for n in sorted(v.nodes, key=lambda n: (n.layer, n.kind, n.id)):
        r = rows.get(n.layer, 0)
        rows[n.layer] = r + 1
        pos[n.id] = (PAD + col[n.layer] * COL_W, PAD + 24 + r * ROW_H)
    return pos


def svg(v: View, *, label_edges: bool | None = None) -> str:
    """The view as a self-contained SVG document (no external references)."""
    pos = layout(v)
    if not pos:
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="420" height="60" role="img">'
                f'<text x="10" y="35" font-family="sans-serif" font-size="13">{escape(v.title)}: nothing to show'
                "</text></svg>")
    width = max(x for x, _ in pos.values()) + BOX_W + PAD
    height = max(y for _, y in pos.values()) + BOX_H + PAD
    if label_edges is None:
        label_edges = len(v.edges) <= 80
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
           f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="{escape(v.title)}" '
           'font-family="sans-serif" font-size="11">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>',
           f'<title>{escape(v.title)}</title>']
    # the device boundary: around every partition and internal interface
    inside = [pos[n.id] for n in v.nodes if n.kind == "partition" or (n.kind == "interface" and "internal" in n.style)]
    if inside:
        x0 = min(x for x, _ in inside) - 12
        y0 = min(y for _, y in inside) - 22
        x1 = max(x for x, _ in inside) + BOX_W + 12
        y1 = max(y for _, y in inside) + BOX_H + 12
        out.append(f'<rect x="{x0:.0f}" y="{y0:.0f}" width="{x1 - x0:.0f}" height="{y1 - y0:.0f}" fill="none" '
                   'stroke="#333" stroke-dasharray="6 4" rx="8"/>')
        out.append(f'<text x="{x0 + 6:.0f}" y="{y0 + 14:.0f}" font-weight="bold">device boundary</text>')
    for a, b, label in v.edges:
        if a not in pos or b not in pos:
            continue
        (ax, ay), (bx, by) = pos[a], pos[b]
        sx, sy = ax + BOX_W, ay + BOX_H / 2
        ex, ey = bx, by + BOX_H / 2
        if bx <= ax:  # backward or same-column edge: loop below the boxes
            sx, ex = ax + BOX_W / 2, bx + BOX_W / 2
            sy, ey = ay + BOX_H, by + BOX_H
            d = f"M{sx:.0f},{sy:.0f} C{sx:.0f},{sy + 40:.0f} {ex:.0f},{ey + 40:.0f} {ex:.0f},{ey:.0f}"
        else:
            mx = (sx + ex) / 2
            d = f"M{sx:.0f},{sy:.0f} C{mx:.0f},{sy:.0f} {mx:.0f},{ey:.0f} {ex:.0f},{ey:.0f}"
        out.append(f'<path d="{d}" fill="none" stroke="#444" stroke-width="1.1" marker-end="url(#arrow)">'
                   f'<title>{escape(a)} -&gt; {escape(b)} {escape(label)}</title></path>')
        if label and label_edges:
            out.append(f'<text x="{(sx + ex) / 2:.0f}" y="{(sy + ey) / 2 - 3:.0f}" text-anchor="middle" '
                       f'fill="#333" font-size="9">{escape(label)}</text>')
    for n in v.nodes:
        x, y = pos[n.id]
        style = n.style.split()[0]
        fill = FILL.get(style, "#fff")
        stroke = STROKE.get(style, "#333")
        dash = ' stroke-dasharray="3 3"' if "disabled" in n.style else ""
        rx = 17 if n.kind == "role" else 4
        label = n.label if len(n.label) <= 22 else n.label[:21] + "…"
        sub = {"partition": n.style, "interface": n.style, "role": n.style}[n.kind]
        out.append(f'<g><rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="{rx}" fill="{fill}" '
                   f'stroke="{stroke}"{dash}/><text x="{x + BOX_W / 2:.0f}" y="{y + 14:.0f}" text-anchor="middle" '
                   f'font-weight="bold">{escape(label)}</text><text x="{x + BOX_W / 2:.0f}" y="{y + 27:.0f}" '
                   f'text-anchor="middle" fill="#555" font-size="9">{escape(n.kind)} · {escape(sub)}</text>'
                   f'<title>{escape(n.id)}</title></g>')
    out.append("</svg>")
    return "\n".join(out)


def mermaid(v: View) -> str:
    """The view as a Mermaid flowchart (for Markdown reports rendered by code hosts)."""
    def nid(x: str) -> str:
        return x.replace(":", "__").replace("-", "_")

    lines = ["flowchart LR"]
    inside = [n for n in v.nodes if n.kind == "partition" or (n.kind == "interface" and "internal" in n.style)]
    for n in v.nodes:
        if n in inside:
            continue
        shape = f'(["{n.label}"])' if n.kind == "role" else f'["{n.label}"]'
        lines.append(f"  {nid(n.id)}{shape}")
    if inside:
        lines.append('  subgraph device["device boundary"]')
        for n in inside:
            lines.append(f'    {nid(n.id)}["{n.label}<br/><small>{n.style}</small>"]')
        lines.append("  end")
    for a, b, label in v.edges:
        lines.append(f"  {nid(a)} -->|{label}| {nid(b)}" if label else f"  {nid(a)} --> {nid(b)}")
    return "\n".join(lines)
