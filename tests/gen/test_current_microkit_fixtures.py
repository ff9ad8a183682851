"""The default dialect against current Microkit's own SDF fixtures (the vendored 2.3-dev archive).

Every error fixture that current Microkit's test.rs expects to fail must fail here too, except the gaps listed
below (checks our validator does not make yet); every example system that uses only what we check must pass.
Skipped, with the reason, when the archive is not there.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from septum.gen.sdf_validate import errors, validate_file
from septum.sel4.sdk import vendor_dir

# Refused by current Microkit, accepted by us: board- or configuration-dependent limits (x86, cores, virtual
# address width) and domain-schedule details we do not check yet. Each is named so a new gap cannot hide.
KNOWN_GAPS = {
    "pd_duplicate_setvar.system",
    "pd_setvar_no_paddr.system",
    "irq_arm_on_x86.system",
    "pd_invalid_cpu.system",
    "domain_smp.system",
    "domain_exceed_max_domains.system",
    "domain_out_of_bounds_start_index.system",
    "domain_out_of_bounds_shift.system",
    "sys_map_too_high.system",
    "sys_map_range_too_high.system",
}
# Current Microkit's examples that use only what septum validate-sdf checks.
EXAMPLES_WE_CHECK = {"arm_smc", "domains", "ethernet", "hello", "passive_server", "rust", "setvar", "timer"}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    archives = sorted(vendor_dir().glob("microkit-2.3-dev-*-sdf-fixtures.tar.gz"))
    if not archives:
        pytest.skip(f"no microkit-2.3-dev-*-sdf-fixtures.tar.gz in {vendor_dir()} (SEPTUM_VENDOR)")
    out = tmp_path_factory.mktemp("microkit-2.3")
    with tarfile.open(archives[-1], "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(out, filter="data")
        else:  # an older Python 3.11: the archive is the vendored upstream one
            tar.extractall(out)
    (root,) = out.iterdir()
    return root


def _expected_errors(root: Path) -> list[tuple[str, str]]:
    text = (root / "tool" / "microkit" / "tests" / "test.rs").read_text()
    return re.findall(r'check_error\(\s*&?\w+,\s*"([^"]+)",\s*"([^"]*)"', text)


def test_current_microkit_error_fixtures_are_refused(fixtures: Path) -> None:
    expected = _expected_errors(fixtures)
    assert len(expected) >= 100
    sdf = fixtures / "tool" / "microkit" / "tests" / "sdf"
    accepted = {name for name, _msg in expected if not errors(validate_file(sdf / name)[1])}
    assert not accepted - KNOWN_GAPS, f"current Microkit refuses these, we accept them: {sorted(accepted - KNOWN_GAPS)}"
    assert not KNOWN_GAPS - accepted, f"listed as gaps but now refused (remove them): {sorted(KNOWN_GAPS - accepted)}"


@pytest.mark.parametrize("name", ["sys_no_protection_domains.system", "sys_text_elements.system"])
def test_no_pds_and_text_are_refused_as_current_microkit_does(fixtures: Path, name: str) -> None:
    diags = validate_file(fixtures / "tool" / "microkit" / "tests" / "sdf" / name)[1]
    assert {d.rule for d in errors(diags)} & {"no_pds", "text_content"}


def test_current_microkit_examples_we_check_are_valid(fixtures: Path) -> None:
    for name in sorted(EXAMPLES_WE_CHECK):
        diags = validate_file(fixtures / "example" / name / f"{name}.system")[1]
        assert not errors(diags), f"{name}: " + "; ".join(map(str, errors(diags)))
