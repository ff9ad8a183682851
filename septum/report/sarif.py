"""SARIF 2.1.0 output as plain dicts (the OASIS standard; validated against the official schema in tests).

Mapping (docs/cli.md has the full table):
- each rule that ran -> ``tool.driver.rules[]`` (rationale as fullDescription, fix as help);
- each finding -> ``results[]`` located at the model-file line/column of its primary element, with every
  element it names as a ``logicalLocation`` (``partitions.ui``) and its secondary elements as
  ``relatedLocations``;
- a flow finding's path witness -> one ``codeFlow`` whose thread-flow steps carry the position of the
  channel (or, for the first step, the interface) that makes each hop;
- a waived finding -> a ``suppression`` of kind ``external`` (the waiver lives in the model, not in code).

For code-scanning services (GitHub ranks and gates alerts by these), every rule descriptor carries
``properties.security-severity`` (from the rule's severity: error 8.0 = high, warning 5.0 = medium,
note 2.0 = low on GitHub's 0-10 scale), ``properties.precision`` (the rule's own, from the registry),
``properties.tags`` (``security``, the family, and ``external/cwe/cwe-N`` for each CWE of the rule) and
``helpUri``: the rule's section of the rule reference (docs/rules.md, anchor = the lower-case rule id).

Findings that share a cause (``septum.analysis.causes``: a channel two or more witnesses run through) stay
one result each and carry the same ``properties.cause`` id; ``run.properties.causes`` lists each cause with
the indexes of its results.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from septum import __version__
from septum.analysis import Finding, Report, Rule, get_rule
from septum.analysis.causes import cause_of, group_by_cause
from septum.analysis.finding import ElementRef, PathStep
from septum.model.errors import Location

from . import element_location, path_chain, qualified_name

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/os/schemas/sarif-schema-2.1.0.json"

# GitHub code scanning: > 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low
SECURITY_SEVERITY = {"error": "8.0", "warning": "5.0", "note": "2.0"}
# where docs/rules.md is published when neither SEPTUM_DOCS_URL nor the installed distribution's
# Project-URL "Documentation" says (the project's reserved example domain: a placeholder, not a live site)
DEFAULT_DOCS_URL = "https://septum.example/docs/"


def docs_url() -> str:
    """The base URL of the published docs/ folder (ends with '/')."""
    url = os.environ.get("SEPTUM_DOCS_URL", "")
    if not url:
        try:
            for entry in md.metadata("septum").get_all("Project-URL") or []:
                label, _, value = entry.partition(",")
                if label.strip().lower() == "documentation" and value.strip():
                    url = value.strip()
                    break
        except md.PackageNotFoundError:
            pass
    url = url or DEFAULT_DOCS_URL
    return url if url.endswith("/") else url + "/"


def rule_anchor(rule_id: str) -> str:
    """The anchor of the rule's section in docs/rules.md (its heading is the rule id)."""
    return rule_id.lower()


def help_uri(rule: Rule) -> str:
    return f"{docs_url()}rules.md#{rule_anchor(rule.id)}"


def artifact_uri(file: str, base: Path | None) -> str:
    """Relative to ``base`` (default: the working directory) when the file is inside it, so code-scanning
    services can match it to the repository; otherwise an absolute ``file://`` URI."""
    path = Path(file)
    root = (base or Path.cwd()).resolve()
    full = path.resolve() if path.is_absolute() or path.exists() else (root / path).resolve()
    try:
        rel = full.relative_to(root)
    except ValueError:
        return full.as_uri()
    return quote(rel.as_posix())


def rule_name(rule: Rule) -> str:
    """SARIF wants an identifier-like name; derive PascalCase from the title."""
    words = re.findall(r"[A-Za-z0-9]+", rule.title)
    return "".join(w[:1].upper() + w[1:] for w in words) or rule.id


def _rule_descriptor(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule_name(rule),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.rationale},
        "help": {"text": rule.fix, "markdown": f"**Fix:** {rule.fix}"},
        "helpUri": help_uri(rule),
        "defaultConfiguration": {"level": rule.severity},
        "properties": {
            "family": rule.family,
            "tags": ["security", rule.family.lower(), *(f"external/cwe/cwe-{n}" for n in rule.cwe)],
            "security-severity": SECURITY_SEVERITY[rule.severity],
            **({"precision": rule.precision} if rule.precision else {}),
        },
    }


class _Locator:
    def __init__(self, report: Report, base: Path | None) -> None:
        self.report = report
        self.uri = artifact_uri(report.source.file, base) if report.source else None

    def loc(self, ref: ElementRef) -> Location | None:
        return element_location(self.report.source, self.report.model, ref)

    def logical(self, ref: ElementRef) -> dict[str, Any]:
        return {"name": ref.name, "fullyQualifiedName": qualified_name(ref), "kind": ref.kind}

    def location(
        self, ref: ElementRef, *, logical: list[ElementRef] | None = None, message: str | None = None,
        at: ElementRef | None = None,
    ) -> dict[str, Any]:
        """A SARIF location for ``ref``; ``at`` overrides which element's position is used."""
        out: dict[str, Any] = {}
        loc = self.loc(at or ref)
        if loc is not None and self.uri is not None:
            out["physicalLocation"] = {
                "artifactLocation": {"uri": self.uri, "index": 0},
                "region": {"startLine": loc.line, "startColumn": loc.column},
            }
        # SARIF requires logicalLocations to be unique; a rule may name an element twice
        out["logicalLocations"] = [self.logical(r) for r in dict.fromkeys(logical or [ref])]
        if message:
            out["message"] = {"text": message}
        return out


def _step_message(step: PathStep, index: int) -> str:
    if step.channel is None:
        return f"{'start at' if index == 0 else 'reach'} {step.node.kind} '{step.node.name}'"
    return f"via channel '{step.channel}' to {step.node.kind} '{step.node.name}'"


def _code_flow(loc: _Locator, f: Finding) -> dict[str, Any]:
    steps = []
    for i, step in enumerate(f.path):
        chan = ElementRef("channel", step.channel) if step.channel else None
        logical = [chan, step.node] if chan else [step.node]
        steps.append({
            # the channel declaration is the line that creates the hop; the first step is the interface
            "location": loc.location(step.node, logical=logical, message=_step_message(step, i), at=chan),
            "executionOrder": i + 1,
            "importance": "essential",
        })
    return {"message": {"text": path_chain(f.path)}, "threadFlows": [{"locations": steps}]}


def _fingerprint(f: Finding) -> str:
    # stable across edits that only move lines: rule + the elements it names
    key = f.rule + "|" + "|".join(str(e) for e in f.elements)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _result(loc: _Locator, f: Finding, rule_index: dict[str, int], cause: str | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "ruleId": f.rule,
        "level": f.severity,
        "message": {"text": f.message},
    }
    if f.rule in rule_index:
        res["ruleIndex"] = rule_index[f.rule]
    if f.elements:
        res["locations"] = [loc.location(f.elements[0], logical=list(f.elements))]
        if len(f.elements) > 1:
            res["relatedLocations"] = [
                {"id": i, **loc.location(e, message=f"{e.kind} '{e.name}'")}
                for i, e in enumerate(f.elements[1:], start=1)
            ]
    if f.path:
        res["codeFlows"] = [_code_flow(loc, f)]
    res["partialFingerprints"] = {"septumFinding/v1": _fingerprint(f)}
    if f.waived:
        res["suppressions"] = [{
            # no status/state: SARIF 2.1.0 committee and final texts name that property differently
            "kind": "external",
            "justification": f.waiver_reason or "",
            "properties": {"by": f.waiver_by, "expires": f.waiver_expires},
        }]
    if f.extra or cause:
        res["properties"] = dict(f.extra)
        if cause:  # findings that share a cause (septum.analysis.causes) carry the same id
            res["properties"]["cause"] = cause
    return res


def sarif_log(report: Report, *, base: Path | None = None) -> dict[str, Any]:
    rules: list[Rule] = list(report.rules)
    seen = {r.id for r in rules}
    # findings may come from rules outside the selection (waiver bookkeeping); describe those too
    for f in report.findings:
        if f.rule not in seen:
            r = get_rule(f.rule)
            if r is not None:
                rules.append(r)
                seen.add(r.id)
    rule_index = {r.id: i for i, r in enumerate(rules)}
    loc = _Locator(report, base)
    causes = group_by_cause(report.findings)
    by_finding = cause_of(causes)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "septum",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": [_rule_descriptor(r) for r in rules],
            }
        },
        "columnKind": "unicodeCodePoints",
        "results": [_result(loc, f, rule_index, by_finding[i].id if i in by_finding else None)
                    for i, f in enumerate(report.findings)],
        "properties": {
            "device": report.model.device.name,
            "profile": report.model.device.profile,
            "counts": report.counts(),
            "causes": [{"id": c.id, "element": str(c.element), "results": list(c.findings)} for c in causes],
        },
    }
    if loc.uri is not None:
        run["artifacts"] = [{"location": {"uri": loc.uri}, "roles": ["analysisTarget"], "mimeType": "application/yaml"}]
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render_sarif(report: Report, *, base: Path | None = None) -> str:
    return json.dumps(sarif_log(report, base=base), indent=2, ensure_ascii=False) + "\n"
