"""WAIVER — findings about waivers themselves (produced by the engine when it applies waivers)."""

from __future__ import annotations

from collections.abc import Iterator

from ..context import Context
from ..finding import Finding
from ..registry import rule


@rule(
    "WAIVER001", "Expired waiver", "warning",
    rationale="""A waiver accepts a finding until a date. After it, the finding is active again and the
    acceptance must be reviewed.""",
    fix="""Fix the finding, or renew the waiver with a new review, reason and expiry date.""",
    cwe=(1068,), precision="very-high",
)
def waiver001(ctx: Context) -> Iterator[Finding]:
    return iter(())


@rule(
    "WAIVER002", "Waiver that matches no finding", "note",
    rationale="""A waiver that covers nothing is stale and hides the history of what was accepted.""",
    fix="""Remove it.""",
    cwe=(1068,), precision="very-high",
)
def waiver002(ctx: Context) -> Iterator[Finding]:
    return iter(())
