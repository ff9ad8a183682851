"""SARIF output validates against the official 2.1.0 schema and carries locations and path witnesses."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import jsonschema
import pytest

from septum.analysis import check
from septum.model import load
from septum.report import render
from septum.report.sarif import SECURITY_SEVERITY, _rule_descriptor, artifact_uri, sarif_log

HERE = Path(__file__).parent
MODELS = HERE.parent / "cli" / "models"
TODAY = dt.date(2026, 1, 1)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((HERE / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def _sarif(name: str) -> dict:
    model, source = load(MODELS / name)
    text = render(check(model, source, today=TODAY), "sarif", base=MODELS)
    return json.loads(text)


@pytest.mark.parametrize("name", ["clean.yaml", "flawed.yaml", "waived.yaml"])
def test_valid_against_official_schema(validator, name):
    log = _sarif(name)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def test_schema_rejects_a_broken_log(validator):
    # guard against a vacuous validator: a result without a message must fail
    log = _sarif("flawed.yaml")
    del log["runs"][0]["results"][0]["message"]
    assert list(validator.iter_errors(log))


def test_rules_and_results_line_up():
    log = _sarif("flawed.yaml")
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "septum"
    iso001 = next(r for r in rules if r["id"] == "ISO001")
    assert iso001["defaultConfiguration"]["level"] == "error"
    assert iso001["fullDescription"]["text"].startswith("An attacker who controls an external interface")
    assert "guard" in iso001["help"]["text"]
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")


def test_flow_finding_has_located_code_flow():
    log = _sarif("flawed.yaml")
    res = next(r for r in log["runs"][0]["results"] if r["ruleId"] == "ISO001")
    phys = res["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"]["uri"] == "flawed.yaml"
    assert phys["region"] == {"startLine": 30, "startColumn": 5}
    logical = res["locations"][0]["logicalLocations"]
    assert {"name": "control", "fullyQualifiedName": "partitions.control", "kind": "partition"} in logical

    steps = res["codeFlows"][0]["threadFlows"][0]["locations"]
    assert [s["location"]["logicalLocations"][-1]["fullyQualifiedName"] for s in steps] == [
        "interfaces.lan", "partitions.network", "partitions.control"]
    for s in steps:
        region = s["location"]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    # the hop through the debug channel points at the channel's own line, and names it
    hop = steps[2]["location"]
    assert "console" in hop["message"]["text"]
    assert hop["physicalLocation"]["region"]["startLine"] == 38
    assert hop["logicalLocations"][0]["fullyQualifiedName"] == "channels.console"


def test_waived_finding_is_suppressed_externally():
    log = _sarif("waived.yaml")
    (res,) = [r for r in log["runs"][0]["results"] if r["ruleId"] == "PRIV005"]
    (sup,) = res["suppressions"]
    assert sup["kind"] == "external"
    assert sup["justification"] == "auth rate-limits per principal"
    assert sup["properties"] == {"by": "alice", "expires": "2030-01-31"}


def test_clean_model_has_no_results():
    log = _sarif("clean.yaml")
    assert log["runs"][0]["results"] == []
    assert log["version"] == "2.1.0"


def test_artifact_uri_relative_or_absolute(tmp_path):
    inside = tmp_path / "models" / "my model.yaml"
    inside.parent.mkdir()
    inside.write_text("")
    assert artifact_uri(str(inside), tmp_path) == "models/my%20model.yaml"
    outside = artifact_uri(str(inside), tmp_path / "elsewhere")
    assert outside.startswith("file:///") and outside.endswith("my%20model.yaml")


def test_model_without_source_still_valid(validator):
    model, _ = load(MODELS / "flawed.yaml")
    log = sarif_log(check(model, None, today=TODAY))
    assert not list(validator.iter_errors(log))
    res = log["runs"][0]["results"][0]
    assert "physicalLocation" not in res["locations"][0]


def test_repeated_element_stays_schema_valid(validator):
    from septum.analysis import Finding, Report
    from septum.analysis.finding import ElementRef, PathStep

    model, source = load(MODELS / "flawed.yaml")
    part = ElementRef("partition", "control")
    f = Finding("ISO003", "error", "named twice", (part, part), path=(PathStep(part),))
    log = sarif_log(Report(model=model, source=source, findings=[f]))
    assert not list(validator.iter_errors(log))
    assert len(log["runs"][0]["results"][0]["locations"][0]["logicalLocations"]) == 1


# ----------------------------------------------------------------------------- what code scanning needs

RULES_MD = HERE.parents[1] / "docs" / "rules.md"


def _github_anchors(markdown: str) -> set[str]:
    # GitHub's heading ids: lower case, punctuation other than '-' and '_' dropped, spaces to '-'
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return out


def test_every_registered_rule_carries_cwe_precision_and_security_severity():
    # every rule, including rules added later: a new rule without CWE ids or precision fails here
    from septum.analysis.registry import PRECISIONS, all_rules

    rules = all_rules()
    assert len(rules) >= 20
    for r in rules:
        assert r.cwe and all(isinstance(n, int) and n > 0 for n in r.cwe), f"{r.id} has no CWE ids"
        assert r.precision in PRECISIONS, f"{r.id} has no precision"
        d = _rule_descriptor(r)
        props = d["properties"]
        assert 0.0 < float(props["security-severity"]) <= 10.0, r.id
        assert props["security-severity"] == SECURITY_SEVERITY[r.severity]
        assert props["precision"] == r.precision
        assert "security" in props["tags"]
        assert {t for t in props["tags"] if t.startswith("external/cwe/")} == {f"external/cwe/cwe-{n}" for n in r.cwe}
        assert d["helpUri"].startswith(("https://", "http://")) and d["helpUri"].endswith(f"rules.md#{r.id.lower()}")


def test_severity_mapping_ranks_as_github_does():
    # GitHub: >= 7.0 high, 4.0-6.9 medium, < 4.0 low
    assert float(SECURITY_SEVERITY["error"]) >= 7.0
    assert 4.0 <= float(SECURITY_SEVERITY["warning"]) < 7.0
    assert 0.0 < float(SECURITY_SEVERITY["note"]) < 4.0


def test_help_uri_points_at_an_existing_section_of_the_rule_reference():
    from septum.analysis.registry import all_rules

    anchors = _github_anchors(RULES_MD.read_text(encoding="utf-8"))
    for r in all_rules():
        fragment = _rule_descriptor(r)["helpUri"].rsplit("#", 1)[1]
        assert fragment in anchors, f"docs/rules.md has no section #{fragment}"
        assert f"CWE-{r.cwe[0]}" in RULES_MD.read_text(encoding="utf-8")


def test_help_uri_base_can_be_set(monkeypatch):
    from septum.analysis.registry import get_rule

    monkeypatch.setenv("SEPTUM_DOCS_URL", "https://docs.hospital-devices.test/septum")
    assert _rule_descriptor(get_rule("ISO001"))["helpUri"] == "https://docs.hospital-devices.test/septum/rules.md#iso001"


def test_flawed_model_log_carries_the_code_scanning_properties(validator):
    log = _sarif("flawed.yaml")
    assert not list(validator.iter_errors(log))
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    iso001 = next(r for r in rules if r["id"] == "ISO001")
    assert iso001["properties"]["security-severity"] == "8.0"
    assert "external/cwe/cwe-653" in iso001["properties"]["tags"]
    assert iso001["properties"]["precision"] == "high"
    for r in rules:
        assert {"helpUri"} <= set(r) and {"security-severity", "precision", "tags"} <= set(r["properties"])
