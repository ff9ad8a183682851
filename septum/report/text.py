"""Human-readable findings: grouped by severity, each with its rule, location, message and path witness.

Built from styled segments (``septum.report.styled.Line``) rather than rich markup, because finding messages
contain brackets (``--[channel]-->``) that rich would otherwise read as style tags. Without colour (no TTY,
NO_COLOR, or a file) the output is plain text with no escape codes, so it can be grepped and diffed, and rich
is not imported at all; with colour the lines go through rich.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from septum.analysis import Finding, Report, get_rule
from septum.analysis.causes import Cause, cause_of, group_by_cause
from septum.model import Model
from septum.model.source import SourceMap

from . import element_location, path_chain
from .styled import Line, Output

if TYPE_CHECKING:
    # types only: `septum check` renders no diff, and importing the diff engine cost it ~8 ms of start-up
    from septum.analysis.diff import Change, ModelDiff

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "note": "cyan", "waived": "dim"}
SECTION_TITLE = {"error": "Errors", "warning": "Warnings", "note": "Notes", "waived": "Waived"}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _finding_lines(report: Report, f: Finding, group: str, cause: Cause | None = None) -> list[Line]:
    rule = get_rule(f.rule)
    title = rule.title if rule else ""
    head = Line("  ")
    head.append(f.rule, style=SEVERITY_STYLE[group])
    head.append(f" [{f.severity}] " if group == "waived" else "  ")
    head.append(title, style="bold")
    lines = [head]
    if f.elements:
        loc = element_location(report.source, report.model, f.elements[0])
        where = Line("    ")
        if loc is not None:
            where.append(str(loc), style="blue")
            where.append("  ")
        where.append(str(f.elements[0]))
        lines.append(where)
    lines.append(Line("    " + f.message))
    if f.path:
        lines.append(Line("    path: " + path_chain(f.path), style="magenta"))
    if cause is not None:
        lines.append(Line(f"    cause: {cause.element.kind} {cause.element.name} "
                          f"(shared by {len(cause.findings)} findings)", style="bold"))
    if f.waived:
        lines.append(Line(
            f"    waived by {f.waiver_by or '?'} until {f.waiver_expires or '?'}: {f.waiver_reason or ''}",
            style="dim",
        ))
    return lines


def summary_line(report: Report) -> Line:
    c = report.counts()
    verdict = "FAIL" if report.exit_code else "PASS"
    text = Line()
    text.append(verdict, style="bold red" if report.exit_code else "bold green")
    text.append(
        f": {plural(c['error'], 'error')}, {plural(c['warning'], 'warning')}, {plural(c['note'], 'note')}, "
        f"{c['waived']} waived"
    )
    return text


def render_text(report: Report, *, color: bool = False, width: int | None = None) -> str:
    console = Output(color=color, width=width)
    dev = report.model.device
    header = Line()
    if report.source is not None:
        header.append(report.source.file, style="bold")
        header.append(": ")
    header.append(f"{dev.name} {dev.version} ({dev.profile} profile)")
    console.print(header)

    groups: dict[str, list[tuple[int, Finding]]] = {"error": [], "warning": [], "note": [], "waived": []}
    for n, f in enumerate(report.findings):
        groups["waived" if f.waived else f.severity].append((n, f))
    if not report.findings:
        console.print(Line("\nNo findings."))
    causes = group_by_cause(report.findings)
    by_finding = cause_of(causes)
    if causes:
        console.print()
        console.print(Line(f"Causes ({len(causes)})", style="bold"))
        for c in causes:
            rules = ", ".join(report.findings[i].rule for i in c.findings)
            console.print(Line(f"  {c.headline()} ({rules})"))
    for group, findings in groups.items():
        if not findings:
            continue
        console.print()
        console.print(Line(f"{SECTION_TITLE[group]} ({len(findings)})", style=SEVERITY_STYLE[group]))
        for i, (n, f) in enumerate(findings):
            if i:
                console.print()
            for line in _finding_lines(report, f, group, by_finding.get(n)):
                console.print(line)
    console.print()
    console.print(summary_line(report))
    return console.text()


# --------------------------------------------------------------------------- septum diff

DIFF_SECTIONS = {
    "path": "Paths into safety partitions",
    "interface": "External interfaces",
    "channel": "Channels",
    "grant": "Grants",
    "partition": "Partitions",
    "action": "Actions",
    "role": "Roles",
    "shared": "Shared state",
    "waiver": "Waivers",
    "device": "Device",
}
RISK_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "none": "dim"}


def render_diff_text(
    d: ModelDiff, old: Model, old_source: SourceMap | None, new: Model, new_source: SourceMap | None,
    *, color: bool = False, width: int | None = None,
) -> str:
    console = Output(color=color, width=width)
    old_name = old_source.file if old_source else "old"
    new_name = new_source.file if new_source else "new"
    console.print(Line(f"{old_name} -> {new_name}", style="bold"))

    by_cat: dict[str, list[Change]] = {}
    for c in d.changes:
        by_cat.setdefault(c.category, []).append(c)
    for cat, title in DIFF_SECTIONS.items():
        changes = by_cat.get(cat, [])
        if not changes:
            continue
        console.print()
        console.print(Line(title, style="bold"))
        for c in changes:
            removed = c.change.startswith("removed")
            src, model = (old_source, old) if removed else (new_source, new)
            line = Line("  ")
            line.append("-" if not c.adds_surface else "+", style=RISK_STYLE[c.risk])
            line.append(f" [{c.risk}] " if c.adds_surface else " ", style=RISK_STYLE[c.risk])
            line.append(c.message)
            loc = element_location(src, model, c.element)
            if loc is not None:
                line.append(f"  ({loc})", style="blue")
            console.print(line)
            if c.path:
                console.print(Line("      path: " + path_chain(c.path), style="magenta"))

    for title, findings, src, model in (
        ("New findings", d.new_findings, new_source, new),
        ("Resolved findings", d.resolved_findings, old_source, old),
    ):
        if not findings:
            continue
        console.print()
        console.print(Line(f"{title} ({len(findings)})", style="bold"))
        rep = Report(model=model, source=src, findings=list(findings))
        for i, f in enumerate(findings):
            if i:
                console.print()
            group = "waived" if f.waived else f.severity
            for line in _finding_lines(rep, f, group):
                console.print(line)

    if not d.changes and not d.new_findings and not d.resolved_findings:
        console.print(Line("\nNo security-relevant changes."))
    console.print()
    verdict = Line()
    if d.adds_attack_surface:
        verdict.append(f"Risk: {d.verdict.upper()}", style=RISK_STYLE[d.verdict])
        verdict.append(f": the change adds to the attack surface ({plural(len(d.additions), 'addition')}, "
                       f"{plural(len(d.new_blocking), 'new finding')}); review it")
    else:
        verdict.append("Risk: NONE", style="bold green")
        verdict.append(": the change adds nothing to the attack surface")
    console.print(verdict)
    return console.text()
