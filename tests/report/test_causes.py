"""Findings grouped by cause: one debug channel is one cause of five findings, in every output format."""

from __future__ import annotations

import json
from pathlib import Path

from septum.analysis import check
from septum.analysis.causes import cause_channels, group_by_cause
from septum.analysis.finding import ElementRef, Finding, PathStep
from septum.model import load
from septum.report import render
from septum.report.sarif import sarif_log

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "examples" / "flawed" / "debug_console.yaml"
FIVE = ["ISO001", "ISO002", "ISO003", "MED002", "MED003"]


def _report(path: Path):  # type: ignore[no-untyped-def]
    model, source = load(path)
    return check(model, source)


def _f(rule: str, *channels: str, path: tuple[str, ...] = ()) -> Finding:
    elements = tuple(ElementRef("channel", c) for c in channels) or (ElementRef("partition", "p"),)
    steps = tuple(PathStep(ElementRef("partition", f"n{i}"), ch) for i, ch in enumerate(path))
    return Finding(rule, "error", f"{rule} finding", elements, steps)


def test_the_debug_channel_is_one_cause_of_five_findings_in_text() -> None:
    report = _report(DEBUG)
    text = render(report, "text")
    assert "Causes (1)" in text
    assert "1 cause, 5 findings: channel console (ISO001, ISO002, ISO003, MED002, MED003)" in text
    assert text.count("cause: channel console (shared by 5 findings)") == 5  # each finding still listed


def test_json_and_sarif_keep_one_result_per_finding_linked_by_the_cause_id() -> None:
    report = _report(DEBUG)
    data = json.loads(render(report, "json"))
    assert [c["id"] for c in data["causes"]] == ["cause:channel:console"]
    assert sorted(data["findings"][i]["rule"] for i in data["causes"][0]["findings"]) == FIVE
    assert [f["cause"] for f in data["findings"]] == ["cause:channel:console"] * 5
    sarif = sarif_log(report)["runs"][0]
    assert len(sarif["results"]) == 5
    assert {r["properties"]["cause"] for r in sarif["results"]} == {"cause:channel:console"}
    assert sarif["properties"]["causes"] == [{"id": "cause:channel:console", "element": "channel:console",
                                              "results": [0, 1, 2, 3, 4]}]


def test_a_clean_model_has_no_causes() -> None:
    report = _report(ROOT / "examples" / "infusion_pump" / "model.yaml")
    data = json.loads(render(report, "json"))
    assert data["causes"] == [] and all(f["cause"] is None for f in data["findings"])
    assert "Causes (" not in render(report, "text")


def test_grouping_is_greedy_exclusive_and_needs_two_findings() -> None:
    findings = [
        _f("A001", "debug"),
        _f("A002", path=("", "debug")),
        _f("A003", "x", path=("", "x")),
        _f("A004", "x"),
        _f("A005", "lonely"),
        _f("A006", "debug", "x"),
    ]
    causes = group_by_cause(findings)
    # 'debug' and 'x' are each on three witnesses; the tie goes by name, and A006 then belongs to 'debug' only
    assert [(c.element.name, c.findings) for c in causes] == [("debug", (0, 1, 5)), ("x", (2, 3))]
    assert cause_channels(findings[5]) == {"debug", "x"} and cause_channels(findings[1]) == {"debug"}
    assert causes[0].id == "cause:channel:debug"
    assert group_by_cause([_f("B001", "a"), _f("B002", "b")]) == []  # nothing shared: no cause
