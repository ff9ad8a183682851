"""Run the rules over a model, apply waivers, and return a Report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from septum.gc_pause import cyclic_gc_paused
from septum.model import schema as s
from septum.model.source import SourceMap

from .context import Context
from .finding import SEVERITY_ORDER, ElementRef, Finding
from .registry import Rule, all_rules


@dataclass
class Report:
    model: s.Model
    source: SourceMap | None
    findings: list[Finding]
    rules: list[Rule] = field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    def counts(self) -> dict[str, int]:
        out = {"error": 0, "warning": 0, "note": 0, "waived": 0}
        for f in self.findings:
            if f.waived:
                out["waived"] += 1
            else:
                out[f.severity] += 1
        return out

    @property
    def exit_code(self) -> int:
        return 1 if self.blocking else 0


def _matches(waiver: s.Waiver, finding: Finding) -> bool:
    if waiver.rule.upper() != finding.rule:
        return False
    return any(waiver.element in (ref.name, str(ref)) for ref in finding.elements)


def judged_waivers(model: s.Model, ran: set[str], *, full_run: bool) -> list[int]:
    """Indices of the waivers this run can judge: those of rules that ran. A waiver of a rule that did not
    run (not selected, or missing its input such as OSV data) says nothing about this run's findings, so it
    is neither stale nor expired here. In a full run a waiver naming no known rule is judged (and reported
    as matching nothing), so a typo in a rule id is not silently ignored."""
    from .registry import RULES

    out: list[int] = []
    for i, w in enumerate(model.waivers):
        rid = w.rule.upper()
        if rid in ran or (full_run and rid not in RULES):
            out.append(i)
    return out


def apply_waivers(
    ctx: Context, findings: list[Finding], ran: set[str] | None = None, *, full_run: bool = True,
) -> list[Finding]:
    """Mark the findings the model's waivers cover; report expired and stale waivers of the rules in
    ``ran`` (default: every waiver)."""
    indices = (list(range(len(ctx.model.waivers))) if ran is None
               else judged_waivers(ctx.model, ran, full_run=full_run))
    out: list[Finding] = []
    used: set[int] = set()
    for f in findings:
        for i in indices:
            w = ctx.model.waivers[i]
            if not _matches(w, f):
                continue
            used.add(i)
            if w.expires >= ctx.today:
                f = replace(f, waived=True, waiver_reason=w.reason, waiver_by=w.by,
                            waiver_expires=w.expires.isoformat())
                break
        out.append(f)
    for i in indices:
        w = ctx.model.waivers[i]
        ref = ElementRef("waiver", f"{w.rule}@{w.element}")
        if w.expires < ctx.today:
            out.append(ctx.finding(
                "WAIVER001",
                f"the waiver of {w.rule} for '{w.element}' (by {w.by}) expired on {w.expires.isoformat()}; "
                "the finding it covered is active again",
                ref, severity="warning"))
        elif i not in used:
            out.append(ctx.finding(
                "WAIVER002", f"the waiver of {w.rule} for '{w.element}' matches no finding: remove it", ref))
    return out


def _sort_key(f: Finding) -> tuple[Any, ...]:
    return (f.waived, SEVERITY_ORDER[f.severity], f.rule, str(f.elements[0]) if f.elements else "", f.message)


def check(
    model: s.Model,
    source: SourceMap | None = None,
    *,
    today: dt.date | None = None,
    options: dict[str, Any] | None = None,
    select: Iterable[str] | None = None,
) -> Report:
    """Run every registered rule (or those in ``select``) and return the findings, waivers applied."""
    ctx = Context(model, today=today or dt.date.today(), options=dict(options or {}))
    rules = all_rules()
    if select is not None:
        wanted = {r.upper() for r in select}
        rules = [r for r in rules if r.id in wanted or r.family in wanted]
    findings: list[Finding] = []
    ran: set[str] = set()
    with cyclic_gc_paused():  # the rules build large indexes over the model: no rescans of the heap meanwhile
        for r in rules:
            if r.family == "WAIVER" or (r.needs is not None and r.needs not in ctx.options):
                continue
            ran.add(r.id)
            findings.extend(r.check(ctx))
    findings = apply_waivers(ctx, findings, ran, full_run=select is None)
    findings.sort(key=_sort_key)
    return Report(model=model, source=source, findings=findings, rules=rules)
