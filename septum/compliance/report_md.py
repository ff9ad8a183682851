"""The same report as Markdown, with Mermaid diagrams (code hosts render them), for repositories."""

from __future__ import annotations

from .report_data import ReportData
from .views import mermaid


def _cell(x: object) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[object]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return [*out, ""]


def render_md(d: ReportData) -> str:
    m = d.model
    c = d.findings.counts()
    out = [f"# {m.device.name} {m.device.version} — security and compliance report", "",
           f"Generated {d.generated} by Septum from the device model (profile `{m.device.profile}`).", "",
           f"- findings: {c['error']} errors, {c['warning']} warnings, {c['note']} notes, {c['waived']} waived",
           f"- threats: {len(d.threats)} (" + ", ".join(f"{k} {v}" for k, v in d.threat_counts.items()) + ")",
           f"- SBOM components: {len(d.sbom)}",
           f"- vulnerabilities: {d.osv_summary}" + ("" if d.vulns is None else f"; {len(d.vulns)} matches"),
           "", "## Analysis findings", ""]
    if d.findings.findings:
        out += [f"- **{c.headline()}** ({d.cause_rules(c)})" for c in d.causes] + ([""] if d.causes else [])
        out += _table(["rule", "severity", "elements", "message", "cause"],
                      [[f.rule, f.severity + (" (waived)" if f.waived else ""), ", ".join(map(str, f.elements)),
                        f.message, d.cause_label(i)] for i, f in enumerate(d.findings.findings)])
    else:
        out += ["No findings.", ""]
    out += ["## Threat model (STRIDE)", ""]
    out += _table(["id", "STRIDE", "threat", "status", "mitigated by / reason", "controls", "verified by"],
                  [[t.id, t.stride, t.title, t.status, ", ".join(map(str, t.mitigated_by)) or t.reason,
                    ", ".join(f"CIS {cid} ({st})" for cid, st in t.controls), ", ".join(t.rule.verified_by)]
                   for t in d.threats])
    out += ["## Security architecture views", ""]
    for v in d.views:
        out += [f"### {v.title}", "", v.purpose, "", "```mermaid", mermaid(v), "```", ""]
        out += [f"- {n}" for n in v.notes] + ([""] if v.notes else [])
        out += _table(["from", "to", "via", "protocol", "port", "direction", "data", "authentication", "strength",
                       "crypto", "on error"],
                      [[p.src, p.dst, p.via, p.protocol, p.port, p.direction, p.data, p.authentication,
                        p.strength, p.crypto, p.on_error] for p in v.details])
    out += ["## SBOM", ""]
    out += _table(["component", "version", "purl", "supplier", "partitions", "support", "end of support"],
                  [[e.name, e.version, e.purl or "", e.supplier, ", ".join(e.partitions), e.support,
                    e.end_of_support or ""] for e in d.sbom])
    out += ["## Known vulnerabilities", "", d.osv_summary, ""]
    if d.vulns:
        out += _table(["partition", "component", "advisory", "summary", "fixed in"],
                      [[p, f"{x.component.name} {x.component.version}", x.record.id, x.record.summary,
                        ", ".join(x.fixed)] for p, x in d.vulns])
    out += ["## MDS2", ""]
    out += _table(["id", "question (paraphrase)", "answer", "basis", "derived from", "note"],
                  [[a.id, a.question, a.answer, a.basis, ", ".join(a.derived_from), a.note] for a in d.mds2])
    out += ["## Security controls", ""]
    if d.controls:
        out += _table(["control", "topic", "status", "by", "reason", "contradicted by"],
                      [[r.control.id, r.control.topic, r.status, ", ".join(r.by), r.reason,
                        "; ".join(f"{x.what}: {', '.join(map(str, x.elements))}" for x in r.contradictions)]
                       for r in d.controls])
    else:
        out += ["The model has no `controls:` section.", ""]
    return "\n".join(out)
