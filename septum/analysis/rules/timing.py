"""TIME — temporal partitioning: budgets, periods and monitor deadlines."""

from __future__ import annotations

import math
from collections.abc import Iterator

from ..context import Context, P
from ..finding import Finding
from ..registry import rule


@rule(
    "TIME001", "Partition budgets do not fit their periods", "error",
    rationale="""A separation kernel gives each partition a budget of CPU time per period. A budget longer
    than its period, or budgets that add up to more than the processor, cannot be scheduled: some partition
    (maybe the safety monitor) will miss its deadline.""",
    fix="""Shorten budgets or lengthen periods so each budget <= its period and the sum of budget/period
    over all partitions is at most 1.""",
    cwe=(400,), precision="very-high",
)
def time001(ctx: Context) -> Iterator[Finding]:
    total = 0.0
    timed: list[str] = []
    for pname, part in ctx.model.partitions.items():
        r = part.resources
        if r.budget_ms is not None and r.period_ms is None:
            yield ctx.finding("TIME001", f"partition '{pname}' has a budget but no period", P(pname))
            continue
        if r.budget_ms is None or r.period_ms is None:
            continue
        if r.budget_ms > r.period_ms:
            yield ctx.finding("TIME001", f"partition '{pname}': budget {r.budget_ms} ms exceeds its period "
                              f"{r.period_ms} ms", P(pname))
        total += r.budget_ms / r.period_ms
        timed.append(pname)
    if total > 1.0 + 1e-9:
        periods = [ctx.model.partitions[p].resources.period_ms or 1 for p in timed]
        frame = math.lcm(*periods) if periods else 0
        yield ctx.finding(
            "TIME001",
            f"the partitions' budgets need {total:.0%} of the processor (major frame {frame} ms)",
            *map(P, timed), severity="error")


@rule(
    "TIME002", "Monitor runs slower than the control loop it enforces", "error",
    rationale="""A safety monitor that checks less often than the controller acts can let a hazardous
    command run for a whole monitor period before it reacts.""",
    fix="""Give the monitor a period no longer than the monitored partition's period and heartbeat
    interval.""",
    cwe=(754,), precision="high",
)
def time002(ctx: Context) -> Iterator[Finding]:
    parts = ctx.model.partitions
    for mname, mon in parts.items():
        mp = mon.resources.period_ms
        if mp is None:
            continue
        for watched in mon.monitors:
            w = parts[watched]
            deadlines = [d for d in (w.resources.period_ms, w.heartbeat_ms) if d is not None]
            if deadlines and mp > min(deadlines):
                yield ctx.finding(
                    "TIME002", f"monitor '{mname}' runs every {mp} ms but must enforce '{watched}' within "
                    f"{min(deadlines)} ms", P(mname), P(watched))
