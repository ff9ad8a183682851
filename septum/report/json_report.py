"""The ``septum-findings/1`` JSON report: a stable, documented shape for tools (docs/cli.md lists every key).

Stability rules: keys are only ever added within format version 1, never renamed or removed; values that
may be absent are ``null`` rather than missing; output holds no timestamps, so the same model and the same
``--today`` give byte-identical output.
"""

from __future__ import annotations

import json
from typing import Any

from septum import __version__
from septum.analysis import Finding, Report, get_rule
from septum.analysis.causes import cause_of, group_by_cause
from septum.analysis.diff import Change, ModelDiff
from septum.analysis.finding import ElementRef, PathStep
from septum.model import Model
from septum.model.errors import Location
from septum.model.source import SourceMap

from . import element_location, qualified_name

FORMAT = "septum-findings/1"


def _loc(loc: Location | None) -> dict[str, Any] | None:
    if loc is None:
        return None
    return {"file": loc.file, "line": loc.line, "column": loc.column}


def _element(report: Report, ref: ElementRef) -> dict[str, Any]:
    return {
        "kind": ref.kind,
        "name": ref.name,
        "qualified_name": qualified_name(ref),
        "location": _loc(element_location(report.source, report.model, ref)),
    }


def _path(report: Report, path: tuple[PathStep, ...]) -> list[dict[str, Any]]:
    out = []
    for step in path:
        chan = ElementRef("channel", step.channel) if step.channel else None
        out.append({
            "node": _element(report, step.node),
            "channel": step.channel,
            "channel_location": _loc(element_location(report.source, report.model, chan)) if chan else None,
        })
    return out


def finding_dict(report: Report, f: Finding, cause: str | None = None) -> dict[str, Any]:
    rule = get_rule(f.rule)
    primary = f.elements[0] if f.elements else None
    return {
        "rule": f.rule,
        "title": rule.title if rule else f.rule,
        "severity": f.severity,
        "blocking": f.blocking,
        "message": f.message,
        "location": _loc(element_location(report.source, report.model, primary)) if primary else None,
        "elements": [_element(report, e) for e in f.elements],
        "path": _path(report, f.path),
        "waived": f.waived,
        "waiver": {"reason": f.waiver_reason, "by": f.waiver_by, "expires": f.waiver_expires} if f.waived else None,
        "extra": dict(f.extra),
        "cause": cause,
    }


def report_dict(report: Report) -> dict[str, Any]:
    device = report.model.device
    causes = group_by_cause(report.findings)
    by_finding = cause_of(causes)
    return {
        "format": FORMAT,
        "tool": {"name": "septum", "version": __version__},
        "model": {
            "file": report.source.file if report.source else None,
            "device": {"name": device.name, "version": device.version, "profile": device.profile},
        },
        "rules": [r.id for r in report.rules],
        "counts": report.counts(),
        "exit_code": report.exit_code,
        "causes": [{"id": c.id, "element": _element(report, c.element), "findings": list(c.findings)}
                   for c in causes],
        "findings": [finding_dict(report, f, by_finding[i].id if i in by_finding else None)
                     for i, f in enumerate(report.findings)],
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- septum diff

DIFF_FORMAT = "septum-diff/1"


def diff_dict(
    d: ModelDiff, old: Model, old_source: SourceMap | None, new: Model, new_source: SourceMap | None
) -> dict[str, Any]:
    """``septum-diff/1``: same stability rules as ``septum-findings/1``. Removed elements are located in the
    old file, everything else in the new one."""

    def where(c: Change) -> Location | None:
        removed = c.change.startswith("removed")
        src, model = (old_source, old) if removed else (new_source, new)
        return element_location(src, model, c.element)

    new_report = Report(model=new, source=new_source, findings=[])
    old_report = Report(model=old, source=old_source, findings=[])
    return {
        "format": DIFF_FORMAT,
        "tool": {"name": "septum", "version": __version__},
        "old": {"file": old_source.file if old_source else None, "device": old.device.name},
        "new": {"file": new_source.file if new_source else None, "device": new.device.name},
        "verdict": d.verdict,
        "adds_attack_surface": d.adds_attack_surface,
        "exit_code": d.exit_code,
        "changes": [
            {
                "category": c.category,
                "change": c.change,
                "risk": c.risk,
                "adds_surface": c.adds_surface,
                "element": {"kind": c.element.kind, "name": c.element.name,
                            "qualified_name": qualified_name(c.element)},
                "location": _loc(where(c)),
                "message": c.message,
                "old": c.old,
                "new": c.new,
                "path": _path(old_report if c.change.startswith("removed") else new_report, c.path),
            }
            for c in d.changes
        ],
        "new_findings": [finding_dict(new_report, f) for f in d.new_findings],
        "resolved_findings": [finding_dict(old_report, f) for f in d.resolved_findings],
    }


def render_diff_json(
    d: ModelDiff, old: Model, old_source: SourceMap | None, new: Model, new_source: SourceMap | None
) -> str:
    return json.dumps(diff_dict(d, old, old_source, new, new_source), indent=2, ensure_ascii=False) + "\n"
