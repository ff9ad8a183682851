"""VULN — components that match known vulnerabilities in offline OSV data (``options={"osv": db}``)."""

from __future__ import annotations

from collections.abc import Iterator

from ..context import Context, P
from ..finding import ElementRef, Finding
from ..registry import rule


def reachable_partitions(ctx: Context) -> set[str]:
    """Partitions an attacker at any enabled external input interface can send data to, directly or not.

    Guards do not stop this search: a guard mediates what passes, but a vulnerable library inside the
    guard (or behind it, fed by data the guard let through) is still exposed to attacker-chosen input.
    """
    g = ctx.graph
    parent = g.bfs(g.entry_points)
    return {g.refs[n].name for n in parent if g.refs[n].kind == "partition"}


@rule(
    "VULN001", "A component matches a known vulnerability", "warning",
    rationale="""A component with a published vulnerability is a known way in. It matters most where an
    attacker can reach it: in a partition fed, directly or through other partitions, from an external
    interface (then this finding is an error).""",
    fix="""Upgrade the component to a fixed version (the finding lists them), or remove it; if the
    vulnerable code is provably unreachable in this device, waive the finding with that reason.""",
    needs="osv",
    cwe=(1395,), precision="high",
)
def vuln001(ctx: Context) -> Iterator[Finding]:
    db = ctx.options.get("osv")
    if db is None:
        return  # no OSV data given: the rule has nothing to say
    # imported only when OSV data was given: the OSV and version-ordering code slowed every `septum check`
    from septum.knowledge.osv import OsvDatabase

    if not isinstance(db, OsvDatabase):
        return  # no OSV data given: the rule has nothing to say
    exposed = reachable_partitions(ctx)
    for part, comps in ctx.model.components.items():
        for comp in comps:
            for m in db.match(comp):
                reach = part in exposed
                fixed = f"; fixed in {', '.join(m.fixed)}" if m.fixed else "; no fixed version listed"
                where = ("reachable from an external interface" if reach
                         else "not reachable from any external interface")
                note = f" ({m.note})" if m.note else ""
                aliases = f" [{', '.join(m.record.aliases)}]" if m.record.aliases else ""
                yield ctx.finding(
                    "VULN001",
                    f"{comp.name} {comp.version} in partition '{part}' matches {m.record.id}{aliases}: "
                    f"{m.record.summary or 'no summary'}{fixed}; the partition is {where}{note}",
                    ElementRef("component", f"{part}/{comp.name}"), P(part),
                    severity="error" if reach else "warning",
                )
