"""ISO — isolation: information flow into safety-critical partitions. This is the isolation rule."""

from __future__ import annotations

from collections.abc import Iterator

from septum.model.schema import CRITICALITY_RANK

from ..context import C, Context, I, P
from ..finding import ElementRef, Finding, witness_text
from ..registry import rule
from ..simplex import is_monitor_of, mediation_gaps


@rule(
    "ISO001", "External input reaches a safety partition without passing a guard", "error",
    rationale="""An attacker who controls an external interface (network, USB, serial, ...) can send data
    that arrives, unmediated, at a partition whose failure can hurt a patient. Separation only helps if
    every path from outside into the safety core passes a partition that filters, monitors, gates or
    authenticates it.""",
    fix="""Route the flow through a guard partition (declare `mitigation` on it), or remove the channel that
    makes the path. The witness shows the shortest such path.""",
    cwe=(653,), precision="high",
)
def iso001(ctx: Context) -> Iterator[Finding]:
    g = ctx.graph
    parent = g.bfs(g.entry_points, blocked=lambda n: n in ctx.guard_nodes)
    for name, part in ctx.model.partitions.items():
        if part.criticality != "safety":
            continue
        node = g.part(name)
        if node in parent and node not in ctx.guard_nodes:
            path = g.path_to(parent, node)
            entry = path[0].node.name
            yield ctx.finding(
                "ISO001",
                f"external interface '{entry}' reaches safety partition '{name}' through no guard: "
                + witness_text(path),
                P(name), I(entry), path=path,
            )


@rule(
    "ISO002", "Debug access enabled in a production model", "error",
    rationale="""A debug port (JTAG, UART console) or a channel added "just for debugging" is a way into
    the device that bypasses every design decision. In a production build it must not exist.""",
    fix="""Set `enabled: false` on the debug interface and remove `debug: true` channels, or mark the model
    `profile: debug` for a bench build (never shipped).""",
    cwe=(1191, 489), precision="very-high",
)
def iso002(ctx: Context) -> Iterator[Finding]:
    sev = None if ctx.production else "note"
    where = "a production" if ctx.production else "a debug-profile"
    for name, iface in ctx.model.interfaces.items():
        if iface.kind == "debug" and iface.enabled:
            yield ctx.finding("ISO002", f"debug interface '{name}' is enabled in {where} model",
                              I(name), severity=sev)
    for ch in ctx.model.channels:
        if ch.debug:
            yield ctx.finding(
                "ISO002", f"debug channel '{ch.name}' ({ch.src} -> {ch.dst}) exists in {where} model",
                C(ch.name), P(ch.src), P(ch.dst), severity=sev)


@rule(
    "ISO003", "A lower-criticality partition writes directly into a safety partition", "error",
    rationale="""A channel from a less trusted partition straight into a safety partition is a backward
    path around the monitor: whatever compromises the sender can feed the safety core. The one accepted
    form is the Simplex pattern: the safety partition is the sender's declared monitor and guard
    (`monitors: [sender]`, `mitigation: [monitoring, gating]`), gates what it receives, alone drives the
    actuators, and cannot be reset or overridden from the sender (MED005, MED006).""",
    fix="""Send through a guard (a partition with `mitigation`), or make the safety partition the sender's
    monitor that alone owns the actuators and gates every command (the Simplex pattern). Do not raise the
    sender's criticality to silence this: that puts a complex controller in the safety case.""",
    cwe=(653,), precision="high",
)
def iso003(ctx: Context) -> Iterator[Finding]:
    parts = ctx.model.partitions
    for ch in ctx.model.channels:
        src, dst = parts[ch.src], parts[ch.dst]
        if dst.criticality != "safety" or src.mitigation:
            continue
        if CRITICALITY_RANK[src.criticality] >= CRITICALITY_RANK[dst.criticality]:
            continue
        if is_monitor_of(ctx.model, ch.dst, ch.src):
            gaps = mediation_gaps(ctx, ch.dst, ch.src)
            if not gaps:
                continue  # the safety partition is the sender's monitor and mediates it (Simplex)
            yield ctx.finding(
                "ISO003",
                f"channel '{ch.name}' goes from '{ch.src}' (criticality {src.criticality}) into safety "
                f"partition '{ch.dst}', which monitors it but does not mediate it: {'; '.join(gaps)}",
                C(ch.name), P(ch.src), P(ch.dst))
            continue
        why = (f"which guards but is not declared a monitor of '{ch.src}'" if dst.mitigation
               else "without a guard")
        yield ctx.finding(
            "ISO003",
            f"channel '{ch.name}' goes from '{ch.src}' (criticality {src.criticality}) straight into "
            f"safety partition '{ch.dst}' {why}",
            C(ch.name), P(ch.src), P(ch.dst))


@rule(
    "ISO004", "Shared state written by one partition and read by a more critical one", "error",
    rationale="""Shared memory, files or devices are channels the model cannot see the direction of. A
    less critical writer (or several writers) can corrupt what a more critical reader trusts.""",
    fix="""Declare the one-writer channel that serialises updates (`channel:` on the shared element), or
    replace the shared state with a typed channel.""",
    cwe=(653, 668), precision="high",
)
def iso004(ctx: Context) -> Iterator[Finding]:
    parts = ctx.model.partitions
    for sname, sh in ctx.model.shared.items():
        if sh.channel is not None:
            continue
        ref = ElementRef("shared", sname)
        if len(sh.writers) > 1:
            yield ctx.finding(
                "ISO004", f"shared {sh.kind} '{sname}' has {len(sh.writers)} writers "
                f"({', '.join(sh.writers)}) and no one-writer channel", ref, *map(P, sh.writers))
            continue
        for w in sh.writers:
            for r in sh.readers:
                if r == w:
                    continue
                if CRITICALITY_RANK[parts[r].criticality] > CRITICALITY_RANK[parts[w].criticality]:
                    yield ctx.finding(
                        "ISO004",
                        f"shared {sh.kind} '{sname}' is written by '{w}' ({parts[w].criticality}) and read by "
                        f"'{r}' ({parts[r].criticality}) with no declared one-writer channel",
                        ref, P(w), P(r))
