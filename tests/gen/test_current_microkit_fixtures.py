"""The default dialect against current Microkit's own SDF fixtures and examples (the vendored 2.3-dev archive).

Each case of Microkit's ``test.rs`` runs with the kernel configuration test.rs gives it (as a ``Target``): no
fixture Microkit refuses may be accepted, none it accepts may be refused for anything but a feature this
validator says it does not support, and a refusal must name the same mistake as Microkit's message, except
where listed below. Skipped, with the reason, when the archive is not there; read from the archive, never
copied into the project. ``python -m tests.gen.microkit_agreement`` prints the table in docs/sel4.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from septum.gen.sdf_validate import errors, validate_file

from .microkit_agreement import (
    ARCHIVE_GLOB,
    Outcome,
    cases,
    examples,
    extract,
    find_archive,
    judge,
    table,
    vendor_dir,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sel4.md"

# Refused because they use what this validator does not check (cspace capability sharing, prefill_bootinfo):
# rule unsupported_element / unsupported_attribute. Named so a new one cannot hide.
UNSUPPORTED_FIXTURES = {
    "mr_prefill_bootinfo_valid.system", "mr_prefill_bootinfo_type_invalid.system",
    "mr_prefill_path_bootinfo_both_specified.system",
    "pd_cap_mappings_overlapping.system", "cap_mappings_slot_invalid.system", "pd_cap_mappings_invalid.system",
    "pd_cap_mappings_invalid_pd_ref.system",
}
# The upstream examples that use those features; all others must be accepted.
UNSUPPORTED_EXAMPLES = {"bootinfo", "cap_sharing"}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = find_archive()
    if archive is None:
        pytest.skip(f"no {ARCHIVE_GLOB} in {vendor_dir()} (SEPTUM_VENDOR): Microkit's fixtures are not vendored here")
    return extract(archive, tmp_path_factory.mktemp("microkit-2.3"))


@pytest.fixture(scope="module")
def outcomes(fixtures: Path) -> list[Outcome]:
    return [judge(fixtures, c) for c in cases(fixtures)]


def test_every_case_of_test_rs_is_read(outcomes: list[Outcome]) -> None:
    kinds = Counter(o.case.kind for o in outcomes)
    # test.rs of cfd52163: 132 refusals (check_error + check_missing) and 15 acceptances
    assert kinds == {"error": 132, "success": 15}
    assert {o.case.target.arch for o in outcomes} == {"aarch64", "riscv64", "x86_64"}


def test_no_fixture_microkit_refuses_is_accepted(outcomes: list[Outcome]) -> None:
    wrong = [o.case.fixture for o in outcomes if o.verdict == "false_accept"]
    assert not wrong, f"current Microkit refuses these, we accept them: {wrong}"


def test_no_fixture_microkit_accepts_is_refused(outcomes: list[Outcome]) -> None:
    wrong = [(o.case.fixture, o.rules) for o in outcomes if o.verdict == "false_reject"]
    assert not wrong, f"current Microkit accepts these, we refuse them: {wrong}"


def test_refusals_name_the_same_mistake_as_microkit(outcomes: list[Outcome]) -> None:
    other = [(o.case.fixture, o.case.expected[:80], o.rules) for o in outcomes if o.verdict == "other_error"]
    assert not other, f"refused for another reason than Microkit's: {other}"


def test_only_the_named_fixtures_are_refused_as_unsupported(outcomes: list[Outcome]) -> None:
    unsupported = {o.case.fixture for o in outcomes if o.verdict == "unsupported"}
    assert unsupported == UNSUPPORTED_FIXTURES


def test_upstream_examples(fixtures: Path) -> None:
    results = dict(examples(fixtures))
    assert len(results) == 14
    refused = {name for name, rules in results.items() if rules}
    assert refused == UNSUPPORTED_EXAMPLES, results
    for name in UNSUPPORTED_EXAMPLES:
        assert set(results[name]) <= {"unsupported_element", "unsupported_attribute"}, (name, results[name])


@pytest.mark.parametrize(("fixture", "rule", "line"), [
    ("sys_no_protection_domains.system", "no_pds", None),
    ("sys_text_elements.system", "text_content", None),
    ("pd_duplicate_setvar.system", "duplicate_setvar", 13),
    ("domain_out_of_bounds_start_index.system", "schedule_start_index", 11),
    ("domain_exceed_max_domains.system", "too_many_domains", 8),
])
def test_issue_points_on_microkit_fixtures(fixtures: Path, fixture: str, rule: str, line: int | None) -> None:
    diags = errors(validate_file(fixtures / "tool" / "microkit" / "tests" / "sdf" / fixture)[1])
    hits = [d for d in diags if d.rule == rule]
    assert hits, f"{fixture}: expected [{rule}], got " + "; ".join(map(str, diags))
    if line is not None:
        assert hits[0].loc.line == line, str(hits[0])


def test_the_agreement_table_in_the_docs_is_current(fixtures: Path) -> None:
    text = DOCS.read_text()
    begin = text.index("<!-- microkit-agreement:begin")
    body = text[text.index("\n", begin) + 1:text.index("<!-- microkit-agreement:end -->")]
    documented = body.split("\n", 2)[2]  # after the "Measured against" line and its blank line
    assert documented.rstrip("\n") == table(fixtures), (
        "docs/sel4.md's agreement table is stale: paste `python -m tests.gen.microkit_agreement` between the markers")
