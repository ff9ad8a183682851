"""The real Microkit 1.2.6 tool as an external validator of the 1.2 dialect.

Every generated 1.2 system (the pump and the models in tests/gen/models) must be accepted by the real tool, and
``validate-sdf --microkit 1.2`` is compared with the tool on the tool's own fixtures (tool/test in the Microkit
source) and on ours (tests/gen/sdf_invalid, sdf_valid, sdf_1_2). Every fixture where the two do not give the
same clean verdict is listed, with the reason, in dialect_disagreements.tsv (and in docs/sel4.md): a new
disagreement, or a listed one that went away, fails here. Where both refuse, our diagnostics must include the
rule that matches the tool's message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from septum.gen import microkit
from septum.gen.sdf_validate import errors, validate_file, validate_text
from septum.model import load
from septum.sel4.sdk import Sdk
from septum.sel4.tool import placeholder_elf, validate_system

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
GEN = ROOT / "tests" / "gen"
MODELS = [ROOT / "examples" / "infusion_pump" / "model.yaml", *sorted((GEN / "models").glob("*.yaml"))]
TABLE = HERE / "dialect_disagreements.tsv"

# The tool's first error message -> the rule of ours that says the same thing.
TOOL_MESSAGE_RULES = [
    (r"id must be < 63", "id_range"),
    (r"id must be >= 0", "bad_number"),  # we read a negative number as not a number
    (r"invalid attribute", "unknown_attribute"),
    (r"Missing required attribute", "missing_attribute"),
    (r"trigger must be", "bad_trigger"),
    (r"phys_addr is not aligned", "phys_addr_alignment"),
    (r"invalid literal for int\(\)", "bad_number"),
    (r"page size 0x[0-9a-f]+ not supported", "page_size_unsupported"),
    (r"size is not a multiple of the page size", "mr_size_not_multiple_of_page_size"),
    (r"budget \(\d+\) must be less than", "budget_gt_period"),
    (r"program_image must only be specified once", "duplicate_program_image"),
    (r"program_image must be specified", "missing_program_image"),
    (r"perms must not be 'w'", "write_only_map"),
    (r"duplicate channel id", "duplicate_id"),
    (r"Invalid pd name", "channel_unknown_pd"),
    (r"duplicate irq:", "duplicate_irq_number"),
    (r"Duplicate memory region name", "duplicate_mr_name"),
    (r"Duplicate protection domain name", "duplicate_pd_name"),
    (r"Invalid memory region name", "map_unknown_mr"),
    (r"Invalid vaddr alignment", "map_vaddr_alignment"),
    (r"At least one protection domain", "no_pds"),
    (r"unexpected text found", "text_content"),
    (r"Too many protection domains", "too_many_pds"),
    (r"Invalid XML element", "unknown_element"),
    (r"XML parse error", "xml_malformed"),
    (r"priority must be between", "priority_range"),
    (r"invalid boolean value", "bad_bool"),
    (r"exactly two end elements", "channel_end_count"),
]


@dataclass(frozen=True)
class Verdicts:
    group: str
    name: str
    tool: str  # accept | reject | crash (a Python traceback from the tool: it refused by failing)
    ours: str  # accept | reject
    tool_message: str
    our_rules: frozenset[str]


def _tool_fixtures(sdk: Sdk) -> list[Path]:
    return sorted((sdk.tool_dir / "test").glob("*.xml"))


def _groups(sdk: Sdk) -> dict[str, list[Path]]:
    return {
        "tool/test": _tool_fixtures(sdk),
        "sdf_invalid": sorted((GEN / "sdf_invalid").glob("*.system")),
        "sdf_valid": sorted((GEN / "sdf_valid").glob("*.system")),
        "sdf_1_2": sorted((GEN / "sdf_1_2").glob("*.system")),
    }


@pytest.fixture(scope="module")
def placeholder(sdk: Sdk, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return placeholder_elf(sdk, "debug", tmp_path_factory.mktemp("elf") / "placeholder.elf")


@pytest.fixture(scope="module")
def verdicts(sdk: Sdk, placeholder: Path) -> list[Verdicts]:
    if not _tool_fixtures(sdk):
        pytest.skip(f"the SDK at {sdk.root} has no tool/test fixtures (a prebuilt SDK): build it from source")
    out = []
    for group, files in _groups(sdk).items():
        for path in files:
            run = validate_system(sdk, path, placeholder=placeholder)
            lines = [ln for ln in run.output.splitlines() if ln.strip() and not ln.startswith("BUILT")]
            tool = "accept" if run.ok else ("crash" if "Traceback" in run.output else "reject")
            _system, diags = validate_file(path, "1.2")
            rules = frozenset(d.rule for d in errors(diags))
            out.append(Verdicts(group, path.stem, tool, "reject" if rules else "accept",
                                lines[-1] if lines and not run.ok else "", rules))
    return out


def _table() -> set[tuple[str, str, str, str]]:
    rows = set()
    for line in TABLE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        group, name, tool, ours, _why = line.split("\t")
        rows.add((group, name, tool, ours))
    return rows


def test_every_group_of_fixtures_is_there(sdk: Sdk) -> None:
    groups = _groups(sdk)
    assert len(groups["tool/test"]) >= 40, "the Microkit 1.2.6 tool's own fixtures are missing from the SDK"
    assert all(groups.values())


def test_disagreements_with_the_real_tool_are_exactly_the_documented_ones(verdicts: list[Verdicts]) -> None:
    found = {(v.group, v.name, v.tool, v.ours) for v in verdicts if v.tool != v.ours}
    table = {row for row in _table() if row[2] != row[3]}
    assert not found - table, "undocumented disagreements with the real 1.2.6 tool (fix ours or document why): " + \
        "; ".join(f"{v.group}/{v.name}: tool {v.tool} ({v.tool_message}), ours {v.ours} {sorted(v.our_rules)}"
                  for v in verdicts if (v.group, v.name, v.tool, v.ours) in found - table)
    assert not table - found, f"documented disagreements that no longer happen: {sorted(table - found)}"


def test_where_both_refuse_we_name_the_tools_reason(verdicts: list[Verdicts]) -> None:
    """Both refuse: ours names the tool's reason, except in the rows of the table that say why not."""
    both = [v for v in verdicts if v.tool == "reject" and v.ours == "reject"]
    other_reason = {(row[0], row[1]) for row in _table() if row[2] == row[3] == "reject"}
    assert len(both) >= 60
    wrong = []
    for v in both:
        rule = next((r for pattern, r in TOOL_MESSAGE_RULES if re.search(pattern, v.tool_message)), None)
        if rule is None:
            wrong.append(f"{v.group}/{v.name}: the tool's message is not mapped to a rule: {v.tool_message}")
        elif (v.group, v.name) in other_reason:
            if rule in v.our_rules:
                wrong.append(f"{v.group}/{v.name} is listed as refused for another reason, but is not")
        elif rule not in v.our_rules:
            wrong.append(f"{v.group}/{v.name}: tool says {v.tool_message!r}; ours {sorted(v.our_rules)}")
    assert not wrong, "\n".join(wrong)


def test_the_tools_own_fixtures_all_agree(verdicts: list[Verdicts]) -> None:
    tool_fixtures = [v for v in verdicts if v.group == "tool/test"]
    assert tool_fixtures and all(v.tool == v.ours == "reject" for v in tool_fixtures)


@pytest.mark.parametrize("model_path", MODELS, ids=[p.stem for p in MODELS])
def test_every_generated_1_2_system_is_accepted_by_the_real_tool(sdk: Sdk, placeholder: Path, model_path: Path,
                                                                 tmp_path: Path) -> None:
    model, source = load(model_path)
    generated = microkit.generate(model, source, model_file=model_path.name, dialect="1.2")
    system_file = tmp_path / "device.system"
    system_file.write_text(generated.files["device.system"])
    run = validate_system(sdk, system_file, placeholder=placeholder, workdir=tmp_path / "work")
    assert run.ok, run.output
    report = (tmp_path / "work" / "report.txt").read_text()
    for pd in model.partitions:  # the tool laid out every partition as a PD of the image
        assert f"IPC Buffer PD={pd} " in report
    _system, diags = validate_text(generated.files["device.system"], "device.system", "1.2")
    assert not errors(diags)


@pytest.mark.parametrize("model_path", MODELS, ids=[p.stem for p in MODELS])
def test_the_default_dialect_is_refused_by_the_1_2_tool(sdk: Sdk, placeholder: Path, model_path: Path,
                                                        tmp_path: Path) -> None:
    """The tool really checks: current-Microkit output (domains, notify) is not 1.2 and it says so."""
    model, source = load(model_path)
    generated = microkit.generate(model, source, model_file=model_path.name)
    system_file = tmp_path / "device.system"
    system_file.write_text(generated.files["device.system"])
    run = validate_system(sdk, system_file, placeholder=placeholder)
    if "<domains>" in generated.files["device.system"]:
        assert not run.ok
        assert "Invalid XML element 'domains'" in run.output
    else:  # no periods: only the (ignored) notify attributes differ, which 1.2.6 does not check
        assert run.ok, run.output
