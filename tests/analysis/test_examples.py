"""The shipped examples: the reference pump is clean; each flawed model reports exactly what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from septum.analysis import check
from septum.model import load

EXAMPLES = Path(__file__).parents[2] / "examples"
FLAWED = sorted((EXAMPLES / "flawed").glob("*.yaml"))
# the Simplex-pattern warmer: the model itself (expect: none) and variants that break the pattern
WARMER = sorted((EXAMPLES / "warmer").rglob("*.yaml"))


def test_reference_pump_has_no_findings() -> None:
    model, source = load(EXAMPLES / "infusion_pump" / "model.yaml")
    report = check(model, source)
    assert [f.message for f in report.findings] == []


def test_there_are_at_least_six_flawed_models() -> None:
    assert len(FLAWED) >= 6


@pytest.mark.parametrize("path", FLAWED, ids=lambda p: p.stem)
def test_flawed_model_reports_what_it_expects(path: Path) -> None:
    m = re.search(r"^# expect: (.+)$", path.read_text(), re.M)
    assert m, f"{path.name} has no '# expect:' line"
    expected = set(m.group(1).split())
    model, source = load(path)
    report = check(model, source)
    assert {f.rule for f in report.findings} == expected
    assert report.exit_code == 1


def _expected(path: Path) -> set[str]:
    m = re.search(r"^# expect: (.+)$", path.read_text(), re.M)
    assert m, f"{path.name} has no '# expect:' line"
    return set() if m.group(1).strip() == "(none)" else set(m.group(1).split())


def test_warmer_has_a_clean_model_and_failing_variants() -> None:
    assert EXAMPLES / "warmer" / "model.yaml" in WARMER
    assert len([p for p in WARMER if _expected(p)]) >= 5


@pytest.mark.parametrize("path", WARMER, ids=lambda p: p.stem)
def test_warmer_model_reports_what_it_expects(path: Path) -> None:
    model, source = load(path)
    report = check(model, source)
    expected = _expected(path)
    assert {f.rule for f in report.findings} == expected, [f.message for f in report.findings]
    assert report.exit_code == (1 if expected else 0)
