"""FDA security architecture views as SVG diagrams, with the per-path details the guidance asks for.

Views (FDA premarket cybersecurity guidance): Global System, Multi-Patient Harm, Updatability/Patchability,
and one Security Use Case view per safety-relevant or break-glass action. Each is a set of nodes (roles,
interfaces, partitions) and directed paths; every path gets protocol, port, direction, data/command type,
authentication and its strength, cryptography and behaviour on error, derived from the model and from
the runtime's documented behaviour (typed decoding and rate limits at every receiving partition).

The SVG is drawn here from a layout by Graphviz ``dot`` (run as a program, ``-Tjson``, no shell): it ranks
the nodes, routes the edges around the boxes and places every edge label where nothing else is. Without
``dot`` (or for views too large to lay out quickly) a simple layered layout is used, with a warning on stderr.
The same model and the same Graphviz give the same picture; the SVG is self-contained (no external
references), for the HTML report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from html import escape
from typing import Any

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
    vs = [global_view(m), multi_patient_view(m), update_view(m), *use_case_views(m)]
    prefetch_layouts(vs)
    return vs


# ----------------------------------------------------------------------------- SVG

FILL = {"safety": "#f8d7da", "high": "#fff3cd", "low": "#d1ecf1", "none": "#e2e3e5",
        "external": "#ffffff", "internal": "#f4f4f4", "human": "#e8f5e9", "machine": "#ede7f6"}
STROKE = {"safety": "#a71d2a", "high": "#b38600", "low": "#0c5460", "none": "#555"}
COL_W, ROW_H, BOX_W, BOX_H, PAD = 190, 56, 150, 34, 30
EDGE_FONT = 9  # px, edge labels as drawn
SUB_CHARS = 26  # a box's second line at 9 px: at most ~0.6 em per glyph in BOX_W
# dot sizes an edge label from its own font metrics; asking for a larger font than we draw leaves a margin,
# so the text we draw stays inside the box dot kept free for it
DOT_FONT_MARGIN = 1.25
# above this many nodes + edges dot's layout takes longer than a report should (tens of seconds for the
# 3,000-element benchmark model), and a picture that size is unreadable anyway: the simple layout is used
GRAPHVIZ_MAX_ELEMENTS = 400
DOT_TIMEOUT_S = 60
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def layout(v: View) -> dict[str, tuple[float, float]]:
    """The fallback layout (no Graphviz): x from the layer, y from the rank within the layer (sorted by id).
    Readable for a handful of nodes only; edges may cross boxes and labels may overlap."""
    layers = sorted({n.layer for n in v.nodes})
    col = {layer: i for i, layer in enumerate(layers)}
    rows: dict[int, int] = {}
    pos: dict[str, tuple[float, float]] = {}
    for n in sorted(v.nodes, key=lambda n: (n.layer, n.kind, n.id)):
        r = rows.get(n.layer, 0)
        rows[n.layer] = r + 1
        pos[n.id] = (PAD + col[n.layer] * COL_W, PAD + 24 + r * ROW_H)
    return pos


@dataclass
class EdgeShape:
    src: str
    dst: str
    label: str
    path: str  # SVG path data, ending at the arrow's tip
    label_box: tuple[float, float, float, float] | None = None  # x, y, width, height (top-left origin)


@dataclass
class Drawing:
    """Where everything goes, in SVG user units (y grows downwards); node positions are top-left corners."""

    width: float
    height: float
    nodes: dict[str, tuple[float, float]]
    edges: list[EdgeShape]
    boundary: tuple[float, float, float, float] | None  # x0, y0, x1, y1 of the device boundary
    engine: str  # "graphviz" or "simple"
    boundary_label: tuple[float, float] | None = None  # centre of the space dot kept for its label


def _inside(v: View) -> list[VNode]:
    return [n for n in v.nodes if n.kind == "partition" or (n.kind == "interface" and "internal" in n.style)]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def dot_source(v: View, *, label_edges: bool = True) -> str:
    """The view as Graphviz DOT: fixed-size boxes (we draw their text), labelled edges, the device boundary
    as a cluster. Nodes and edges are named by index, so arbitrary model names never reach DOT syntax
    except as quoted labels."""
    index = {n.id: i for i, n in enumerate(v.nodes)}
    inside = {n.id for n in _inside(v)}
    w, h = BOX_W / 72, BOX_H / 72  # dot sizes nodes in inches, coordinates in points (1 pt = 1 SVG unit)
    lines = ["digraph view {", "  rankdir=LR; nodesep=0.35; ranksep=0.9; splines=true; outputorder=edgesfirst;",
             f'  node [shape=box, fixedsize=true, width={w:.4f}, height={h:.4f}, label=""];',
             f'  edge [fontname="Helvetica", fontsize={EDGE_FONT * DOT_FONT_MARGIN:.2f}];']
    if inside:
        lines.append('  subgraph cluster_device { label="device boundary"; fontname="Helvetica-Bold"; '
                     "fontsize=13; margin=16;")
        lines += [f"    n{index[n.id]};" for n in v.nodes if n.id in inside]
        lines.append("  }")
    lines += [f"  n{index[n.id]};" for n in v.nodes if n.id not in inside]
    layer = {n.id: n.layer for n in v.nodes}
    for k, (a, b, label) in enumerate(v.edges):
        if a not in index or b not in index:
            continue
        attrs = f'id="e{k}"' + (f", label={_quote(label)}" if label and label_edges else "")
        if layer[b] < layer[a]:
            # a flow back towards the outside (status, events, audit): drawn, but the ranks follow the
            # inbound direction, so the picture reads left to right from the principals to the safety core
            attrs += ", constraint=false"
        lines.append(f"  n{index[a]} -> n{index[b]} [{attrs}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_binary() -> str | None:
    return shutil.which("dot")


def _pt(text: str) -> tuple[float, float]:
    x, y = text.split(",")[:2]
    return float(x), float(y)


# dot's JSON output by DOT source: a report lays out hundreds of small views, and one dot process for all of
# them (``prefetch_layouts``) costs what one process per view costs in start-up alone
_DOT_CACHE: dict[str, dict[str, Any]] = {}
_DOT_CACHE_MAX = 4096


def _eligible(v: View, label_edges: bool | None) -> tuple[bool, bool]:
    labels = len(v.edges) <= 80 if label_edges is None else label_edges
    return bool(v.nodes) and len(v.nodes) + len(v.edges) <= GRAPHVIZ_MAX_ELEMENTS, labels


PREFETCH_RESTARTS = 4  # dot processes one prefetch may start when dot crashes part-way through the batch


def _dot_batch(dot: str, sources: list[str]) -> list[Any]:
    """dot's JSON documents for ``sources`` in order, as many as it printed before it stopped."""
    try:
        proc = subprocess.run([dot, "-Tjson"], input="".join(sources), text=True, capture_output=True,
                              timeout=DOT_TIMEOUT_S * 4, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    docs: list[Any] = []
    decoder, pos, text = json.JSONDecoder(), 0, proc.stdout
    try:
        while len(docs) < len(sources):
            while pos < len(text) and text[pos].isspace():
                pos += 1
            doc, pos = decoder.raw_decode(text, pos)
            docs.append(doc)
    except ValueError:
        pass  # the output ended (or broke) here: keep what came before
    if proc.returncode == 0 and len(docs) < len(sources):
        return []  # dot exited cleanly but printed something else: trust none of it
    return docs


def prefetch_layouts(vs: list[View]) -> None:
    """Lay out every view that ``svg`` will draw with Graphviz in one ``dot`` run; silently does nothing when
    dot is missing or fails (``svg`` then tries each view alone, and warns)."""
    dot = _dot_binary()
    sources = []
    for v in vs:
        ok, labels = _eligible(v, None)
        src = dot_source(v, label_edges=labels) if ok else ""
        if src and src not in _DOT_CACHE and src not in sources:
            sources.append(src)
    if dot is None or len(sources) < 2:
        return
    docs: list[Any] = []
    # Graphviz 2.43 (Debian 12) can crash on the graph that follows certain graphs in one input; what it
    # printed before the crash is sound, so resume after the graph it died on instead of giving up the batch.
    for _attempt in range(PREFETCH_RESTARTS):
        if len(docs) >= len(sources):
            break
        done = len(docs)
        docs += _dot_batch(dot, sources[done:])
        if len(docs) == done:  # nothing laid out: ``svg`` tries each remaining view alone, and warns
            break
    if not docs:
        return
    sources = sources[: len(docs)]
    if len(_DOT_CACHE) + len(docs) > _DOT_CACHE_MAX:
        _DOT_CACHE.clear()
    _DOT_CACHE.update(zip(sources, docs, strict=True))


def graphviz_drawing(v: View, *, label_edges: bool = True) -> Drawing | None:
    """Lay the view out with Graphviz ``dot`` (``-Tjson``); None when dot is missing or fails (with a
    warning on stderr)."""
    dot = _dot_binary()
    src = dot_source(v, label_edges=label_edges)
    if dot is not None and src in _DOT_CACHE:
        try:
            return _parse_dot_json(v, _DOT_CACHE[src])
        except (ValueError, KeyError, IndexError, TypeError):
            _DOT_CACHE.pop(src, None)
    if dot is None:
        _warn_once("Graphviz 'dot' not found (apt-get install graphviz): FDA views use the simple built-in "
                   "layout, whose edges can cross boxes and labels overlap")
        return None
    try:
        proc = subprocess.run([dot, "-Tjson"], input=src, text=True, capture_output=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        _warn_once(f"Graphviz 'dot' failed ({e}): FDA views use the simple built-in layout")
        return None
    if proc.returncode != 0:
        _warn_once(f"Graphviz 'dot' failed ({proc.stderr.strip()[:200]}): FDA views use the simple layout")
        return None
    try:
        doc = json.loads(proc.stdout)
        drawn = _parse_dot_json(v, doc)
        _DOT_CACHE[src] = doc
        return drawn
    except (ValueError, KeyError, IndexError, TypeError) as e:
        _warn_once(f"unexpected output from Graphviz 'dot' ({e}): FDA views use the simple layout")
        return None


def _parse_dot_json(v: View, doc: dict[str, Any]) -> Drawing:
    x0, y0, x1, y1 = (float(c) for c in doc["bb"].split(","))
    height = y1 - y0 + 2 * PAD
    width = x1 - x0 + 2 * PAD

    def flip(x: float, y: float) -> tuple[float, float]:  # dot's y grows upwards
        return x - x0 + PAD, (y1 - y) + PAD

    nodes: dict[str, tuple[float, float]] = {}
    boundary = None
    boundary_label = None
    for obj in doc.get("objects", []):
        name = obj.get("name", "")
        if name == "cluster_device":
            bx0, by0, bx1, by1 = (float(c) for c in obj["bb"].split(","))
            (ax, ay), (bx, by) = flip(bx0, by1), flip(bx1, by0)
            boundary = (ax, ay, bx, by)
            if "lp" in obj:
                boundary_label = flip(*_pt(obj["lp"]))
        elif name.startswith("n") and name[1:].isdigit() and "pos" in obj:
            cx, cy = flip(*_pt(obj["pos"]))
            nodes[v.nodes[int(name[1:])].id] = (cx - BOX_W / 2, cy - BOX_H / 2)
    edges = []
    for e in doc.get("edges", []):
        k = int(str(e["id"])[1:])
        a, b, label = v.edges[k]
        points, tip = [], None
        for tok in str(e["pos"]).split():
            if tok.startswith("e,"):
                tip = flip(*_pt(tok[2:]))
            elif tok.startswith("s,"):
                continue
            else:
                points.append(flip(*_pt(tok)))
        d = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
        for i in range(1, len(points) - 2, 3):
            (p1, p2, p3) = points[i:i + 3]
            d += f" C{p1[0]:.1f},{p1[1]:.1f} {p2[0]:.1f},{p2[1]:.1f} {p3[0]:.1f},{p3[1]:.1f}"
        if tip is not None:
            d += f" L{tip[0]:.1f},{tip[1]:.1f}"
        box = None
        if "lp" in e and e.get("label"):
            lx, ly = flip(*_pt(e["lp"]))
            text_w = next((float(op["width"]) for op in e.get("_ldraw_", []) if op.get("op") == "T"), 0.0)
            # the box dot kept free for the label (its font is DOT_FONT_MARGIN larger than ours)
            bw, bh = text_w, EDGE_FONT * DOT_FONT_MARGIN * 1.2
            box = (lx - bw / 2, ly - bh / 2, bw, bh)
        edges.append(EdgeShape(a, b, label, d, box))
    return Drawing(width, height, nodes, edges, boundary, "graphviz", boundary_label)


def simple_drawing(v: View, *, label_edges: bool = True) -> Drawing:
    pos = layout(v)
    width = max(x for x, _ in pos.values()) + BOX_W + PAD
    height = max(y for _, y in pos.values()) + BOX_H + PAD
    boundary = None
    inside = [pos[n.id] for n in _inside(v)]
    if inside:
        boundary = (min(x for x, _ in inside) - 12, min(y for _, y in inside) - 22,
                    max(x for x, _ in inside) + BOX_W + 12, max(y for _, y in inside) + BOX_H + 12)
    edges = []
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
        box = None
        if label and label_edges:
            bw = len(label) * EDGE_FONT * 0.6
            box = ((sx + ex) / 2 - bw / 2, (sy + ey) / 2 - 3 - EDGE_FONT, bw, EDGE_FONT * 1.2)
        edges.append(EdgeShape(a, b, label, d, box))
    return Drawing(width, height, pos, edges, boundary, "simple")


def drawing(v: View, *, label_edges: bool | None = None, engine: str = "auto") -> Drawing | None:
    """Where the view's boxes, edges and labels go: Graphviz when available ("auto"), else the simple layout."""
    if not v.nodes:
        return None
    eligible, label_edges = _eligible(v, label_edges)
    if engine in ("auto", "graphviz") and eligible:
        d = graphviz_drawing(v, label_edges=label_edges)
        if d is not None:
            return d
    return simple_drawing(v, label_edges=label_edges)


def svg(v: View, *, label_edges: bool | None = None, engine: str = "auto") -> str:
    """The view as a self-contained SVG document (no external references)."""
    dr = drawing(v, label_edges=label_edges, engine=engine)
    if dr is None:
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="420" height="60" role="img">'
                f'<text x="10" y="35" font-family="sans-serif" font-size="13">{escape(v.title)}: nothing to show'
                "</text></svg>")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {dr.width:.0f} {dr.height:.0f}" '
           f'width="{dr.width:.0f}" height="{dr.height:.0f}" role="img" aria-label="{escape(v.title)}" '
           f'font-family="Helvetica, Arial, sans-serif" font-size="11" data-layout="{dr.engine}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>',
           f'<title>{escape(v.title)}</title>']
    if dr.boundary:
        x0, y0, x1, y1 = dr.boundary
        out.append(f'<rect x="{x0:.0f}" y="{y0:.0f}" width="{x1 - x0:.0f}" height="{y1 - y0:.0f}" fill="none" '
                   'stroke="#333" stroke-dasharray="6 4" rx="8"/>')
        if dr.boundary_label:  # where dot kept room for it (font-size 13 in DOT, we draw 11)
            lx, ly = dr.boundary_label
            out.append(f'<text x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="middle" font-weight="bold" '
                       'class="boundary-label">device boundary</text>')
        else:
            out.append(f'<text x="{x0 + 6:.0f}" y="{y0 + 14:.0f}" font-weight="bold" class="boundary-label">'
                       "device boundary</text>")
    for e in dr.edges:
        out.append(f'<path d="{e.path}" fill="none" stroke="#444" stroke-width="1.1" marker-end="url(#arrow)">'
                   f'<title>{escape(e.src)} -&gt; {escape(e.dst)} {escape(e.label)}</title></path>')
    for e in dr.edges:  # labels over every edge, so no line runs through a label
        if e.label_box is None:
            continue
        x, y, w, h = e.label_box
        out.append(f'<g class="edge-label"><rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                   f'fill="#ffffff" fill-opacity="0.85"/><text x="{x + w / 2:.1f}" y="{y + h - 3:.1f}" '
                   f'text-anchor="middle" fill="#333" font-size="{EDGE_FONT}">{escape(e.label)}</text></g>')
    for n in v.nodes:
        if n.id not in dr.nodes:
            continue
        x, y = dr.nodes[n.id]
        style = n.style.split()[0]
        fill = FILL.get(style, "#fff")
        stroke = STROKE.get(style, "#333")
        dash = ' stroke-dasharray="3 3"' if "disabled" in n.style else ""
        rx = 17 if n.kind == "role" else 4
        label = n.label if len(n.label) <= 22 else n.label[:21] + "…"
        sub = f"{n.kind} · {n.style}"
        if len(sub) > SUB_CHARS:  # "interface · external disabled" does not fit a box: the kind goes
            sub = n.style if len(n.style) <= SUB_CHARS else n.style[:SUB_CHARS - 1] + "…"
        out.append(f'<g class="node" data-id="{escape(n.id)}"><rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" '
                   f'height="{BOX_H}" rx="{rx}" fill="{fill}" stroke="{stroke}"{dash}/><text x="{x + BOX_W / 2:.1f}" '
                   f'y="{y + 14:.1f}" text-anchor="middle" font-weight="bold">{escape(label)}</text><text '
                   f'x="{x + BOX_W / 2:.1f}" y="{y + 27:.1f}" text-anchor="middle" fill="#555" font-size="9">'
                   f'{escape(sub)}</text><title>{escape(n.id)}</title></g>')
    out.append("</svg>")
    return "\n".join(out)


def mermaid(v: View) -> str:
    """The view as a Mermaid flowchart (for Markdown reports rendered by code hosts)."""
    def nid(x: str) -> str:
        return x.replace(":", "__").replace("-", "_")

    lines = ["flowchart LR"]
    inside: list[VNode] = []
    for n in v.nodes:  # one pass: a membership test on the list would compare every node with every other
        if n.kind == "partition" or (n.kind == "interface" and "internal" in n.style):
            inside.append(n)
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
