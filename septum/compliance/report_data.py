"""Everything the compliance reports show, computed once from the model (shared by HTML and Markdown)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from septum.analysis import Report, check
from septum.analysis.causes import Cause, cause_of, group_by_cause
from septum.knowledge.controls import ControlRow, control_rows
from septum.knowledge.osv import OsvDatabase, OsvMatch
from septum.model import schema as s
from septum.model.source import SourceMap

from . import mds2
from .sbom import Inventory, SbomEntry, entries
from .stride import Threat, summary, threat_model
from .threat_rules import ThreatFile
from .views import View, all_views


@dataclass
class ReportData:
    model: s.Model
    findings: Report
    threats: list[Threat]
    threat_counts: dict[str, int]
    views: list[View]
    sbom: list[SbomEntry]
    vulns: list[tuple[str, OsvMatch]] | None  # None: no OSV data given
    osv_summary: str
    mds2: list[mds2.Answer]
    mds2_sections: dict[str, str]
    controls: list[ControlRow]
    generated: str
    notes: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)  # findings that share a channel (analysis.causes)

    def cause_label(self, index: int) -> str:
        """'channel console' for the finding at ``index`` when it shares a cause, else ''."""
        c = cause_of(self.causes).get(index)
        return f"{c.element.kind} {c.element.name}" if c else ""

    def cause_rules(self, c: Cause) -> str:
        return ", ".join(self.findings.findings[i].rule for i in c.findings)


def build(model: s.Model, source: SourceMap | None = None, *, osv: OsvDatabase | None = None,
          threat_files: tuple[ThreatFile, ...] = (), today: dt.date | None = None,
          inv: Inventory | None = None) -> ReportData:
    """``inv``: the device's software inventory when the caller has it already (the report also writes the
    SBOM from it: it is read from the installed environment once)."""
    options = {"osv": osv} if osv is not None else {}
    findings = check(model, source, options=options, today=today)
    threats = threat_model(model, *threat_files)
    vulns: list[tuple[str, OsvMatch]] | None = None
    osv_summary = "no OSV data given (run with --osv PATH to match components offline)"
    if osv is not None:
        vulns = [(p, m) for p, cs in model.components.items() for c in cs for m in osv.match(c)]
        osv_summary = (f"{len(osv.records)} OSV records from {osv.files} file(s), {osv.withdrawn} withdrawn "
                       "(ignored)")
    return ReportData(
        model=model, findings=findings, threats=threats, threat_counts=summary(threats),
        views=all_views(model), vulns=vulns, osv_summary=osv_summary,
        sbom=inv.entries if inv is not None else entries(
            model, model_dir=Path(source.file).resolve().parent if source else None),
        mds2=mds2.answers(model), mds2_sections=mds2.sections(), controls=control_rows(model),
        generated=(today or dt.date.today()).isoformat(), causes=group_by_cause(findings.findings),
    )
