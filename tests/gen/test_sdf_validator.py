"""The SDF validator: every invalid fixture fails with the expected rule, message and location."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from septum.gen.sdf_model import Target
from septum.gen.sdf_parse import parse_number
from septum.gen.sdf_validate import errors, validate_file, validate_text

HERE = Path(__file__).parent
INVALID = HERE / "sdf_invalid"
VALID = HERE / "sdf_valid"


def _table() -> list[tuple[str, str, int, int, str]]:
    rows = []
    for line in (INVALID / "expected.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, rule, loc, fragment = line.split("\t")
        lineno, col = loc.split(":")
        rows.append((name, rule, int(lineno), int(col), fragment))
    return rows


TABLE = _table()
_TARGET = re.compile(r"<!-- target: ([^>]*?) -->")


def target_of(path: Path) -> Target:
    """A fixture for a kernel-build limit says which build in a comment: ``<!-- target: arch=x86_64 -->``."""
    m = _TARGET.search(path.read_text())
    if m is None:
        return Target()
    fields: dict[str, object] = {}
    for item in m.group(1).split():
        key, value = item.split("=")
        fields[key] = value if key == "arch" else value == "true" if value in ("true", "false") else int(value)
    return Target(**fields)  # type: ignore[arg-type]


def test_every_fixture_has_an_expectation_and_there_are_enough() -> None:
    files = {p.stem for p in INVALID.glob("*.system")}
    listed = {row[0] for row in TABLE}
    assert files == listed
    assert len(files) >= 40


@pytest.mark.parametrize(("name", "rule", "line", "col", "fragment"), TABLE, ids=[r[0] for r in TABLE])
def test_invalid_fixture_fails_as_expected(name: str, rule: str, line: int, col: int, fragment: str) -> None:
    path = INVALID / f"{name}.system"
    _system, diags = validate_file(path, target=target_of(path))
    errs = errors(diags)
    assert errs, f"{name} was accepted"
    match = [d for d in errs if d.rule == rule and (d.loc.line, d.loc.column) == (line, col)]
    assert match, f"{name}: expected [{rule}] at {line}:{col}, got " + "; ".join(map(str, errs))
    assert fragment in match[0].message
    # the printed form names file, line and column
    assert str(match[0]).startswith(f"{path}:{line}:{col}: error: ")


@pytest.mark.parametrize("path", sorted(VALID.glob("*.system")), ids=lambda p: p.stem)
def test_valid_fixtures_have_no_errors(path: Path) -> None:
    system, diags = validate_file(path)
    assert system is not None
    assert errors(diags) == []


def test_unused_region_is_a_warning_with_location() -> None:
    _s, diags = validate_file(VALID / "unused_region_warning.system")
    assert [(d.severity, d.rule, d.loc.line) for d in diags] == [("warning", "unused_mr", 4)]


def test_full_fixture_decodes_numbers_and_attributes() -> None:
    system, _ = validate_file(VALID / "full.system")
    assert system is not None
    a = system.pd("a")
    assert a is not None and (a.budget, a.period, a.domain) == (1000, 10000, "d1")
    assert a.irqs[0].trigger == "edge"
    dev = system.region("dev")
    assert dev is not None and (dev.page_size, dev.phys_addr) == (0x200000, 0x40000000)
    assert system.domains is not None and [e.unit for e in system.domains.schedule] == ["us", "ticks"]


@pytest.mark.parametrize(("text", "value"), [("10", 10), ("0x10", 16), ("1_000", 1000), ("0xA_B", 0xAB),
                                             ("-1", None), ("0x", None), ("", None), ("1e3", None), ("0x-1", None)])
def test_number_format(text: str, value: int | None) -> None:
    assert parse_number(text) == value


def test_all_errors_are_reported_not_just_the_first() -> None:
    text = """<system>
  <memory_region name="m" size="0x1800" />
  <protection_domain name="a" priority="300" budget="5" period="1">
    <program_image path="a.elf" />
    <map mr="m" vaddr="0x1000" perms="w" />
  </protection_domain>
</system>"""
    _s, diags = validate_text(text, "x.system")
    assert {d.rule for d in errors(diags)} >= {"mr_size_not_multiple_of_page_size", "priority_range",
                                                "budget_gt_period", "write_only_map"}
