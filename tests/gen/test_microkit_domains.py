"""Issue 15 item 5: explicit domain ids, the monitor's domain 0 reserved and counted, the domain limit.

Also the validator's own checks named in the issue (duplicate setvar, schedule start index, "not supported" vs
"unknown") on small systems written here, and the CLI options that set the kernel build's limits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from septum.cli.gen import validate_sdf
from septum.gen import microkit
from septum.gen.schedule import IDLE_DOMAIN, MAX_DOMAINS, Reservation, ScheduleError, build
from septum.gen.sdf_model import Target
from septum.gen.sdf_validate import errors, validate_text

from .conftest import PUMP


def _domains_system(n: int, ids: bool, pd_domain_zero: bool = False) -> str:
    doms = "".join(f'<domain name="d{i}"' + (f' id="{i}"' if ids else "") + " />" for i in range(n))
    entries = "".join(f'<schedule_entry domain="d{i}" duration="1000 us" />' for i in range(n))
    first = 0 if pd_domain_zero else min(1, n - 1)
    return (f"<system><domains>{doms}<domain_schedule>{entries}</domain_schedule></domains>"
            f'<protection_domain name="a" domain="d{first}"><program_image path="a.elf" /></protection_domain>'
            "</system>")


def _rules(text: str, target: Target | None = None) -> set[str]:
    return {d.rule for d in errors(validate_text(text, "x.system", target=target)[1])}


def test_generated_domains_have_explicit_ids_and_domain_0_holds_no_partition() -> None:
    from septum.model import load

    model, source = load(PUMP)
    gen = microkit.generate(model, source)
    system, diags = validate_text(gen.files[microkit.SDF_NAME], "device.system")
    assert system is not None and system.domains is not None
    ids = {d.name: d.id for d in system.domains.domains}
    assert all(i is not None for i in ids.values()), ids
    assert ids[IDLE_DOMAIN] == 0
    assert sorted(i for i in ids.values() if i is not None) == list(range(len(ids)))
    in_zero = [pd.name for pd in system.pds if ids[pd.domain or ""] == 0]
    assert in_zero == []
    assert ids["dom_network"] != 0
    assert not {d.rule for d in diags} & {"domain_id_implicit", "monitor_domain_shared"}


def test_implicit_domain_ids_warn_and_a_partition_in_domain_0_warns() -> None:
    _s, diags = validate_text(_domains_system(2, ids=False), "x.system")
    assert "domain_id_implicit" in {d.rule for d in diags if d.severity == "warning"}
    _s, diags = validate_text(_domains_system(2, ids=True, pd_domain_zero=True), "x.system")
    assert "monitor_domain_shared" in {d.rule for d in diags if d.severity == "warning"}
    _s, diags = validate_text(_domains_system(2, ids=True), "x.system")
    assert not {d.rule for d in diags} & {"domain_id_implicit", "monitor_domain_shared"}


def test_domain_limit_default_16_counts_the_monitors_domain() -> None:
    assert Target().max_domains == MAX_DOMAINS == 16
    assert "too_many_domains" not in _rules(_domains_system(16, ids=False))
    assert "too_many_domains" in _rules(_domains_system(17, ids=False))
    # ids 1..15 leave domain 0 to the monitor: 16 in use, the limit; ids 1..16 need 17
    doms = "".join(f'<domain name="d{i}" id="{i}" />' for i in range(1, 17))
    text = (f"<system><domains>{doms}<domain_schedule><schedule_entry domain=\"d1\" duration=\"1 us\" />"
            "</domain_schedule></domains><protection_domain name=\"a\" domain=\"d1\"><program_image path=\"a\" />"
            "</protection_domain></system>")
    assert {"too_many_domains", "domain_id_range"} <= _rules(text)
    assert not {"too_many_domains", "domain_id_range"} & _rules(text, Target(max_domains=32))
    assert "too_many_domains" in _rules(_domains_system(8, ids=False), Target(max_domains=4))


def test_schedule_counts_domain_0_for_the_monitor() -> None:
    parts = [Reservation(f"p{i}", f"dom_p{i}", 10, 1000) for i in range(MAX_DOMAINS)]
    build(parts[:MAX_DOMAINS - 1])  # 15 partitions and the monitor's domain: 16
    with pytest.raises(ScheduleError, match="domain 0 for the Microkit monitor"):
        build(parts)
    build(parts, max_domains=MAX_DOMAINS + 1)


def test_cli_max_domains_and_arch(tmp_path: Path) -> None:
    f = tmp_path / "d.system"
    f.write_text(_domains_system(8, ids=False))
    r = CliRunner()
    assert r.invoke(validate_sdf, [str(f)]).exit_code == 0
    limited = r.invoke(validate_sdf, [str(f), "--max-domains", "4"])
    assert limited.exit_code == 1 and "too_many_domains" in limited.output
    assert r.invoke(validate_sdf, [str(f), "--cores", "2"]).exit_code == 1  # no domain scheduler on SMP
    irq = tmp_path / "irq.system"
    irq.write_text('<system><protection_domain name="a"><program_image path="a" /><irq irq="33" id="1" />'
                   "</protection_domain></system>")
    assert r.invoke(validate_sdf, [str(irq)]).exit_code == 0
    on_x86 = r.invoke(validate_sdf, [str(irq), "--arch", "x86_64"])
    assert on_x86.exit_code == 1 and "irq_arch" in on_x86.output
    assert r.invoke(validate_sdf, [str(f), "--max-domains", "0"]).exit_code == 2


def test_schedule_start_index_and_shift() -> None:
    base = ('<system><domains><domain name="d" id="1" /><domain_schedule {}><schedule_entry domain="d" '
            'duration="1000 us" /></domain_schedule></domains><protection_domain name="a" domain="d">'
            '<program_image path="a" /></protection_domain></system>')
    assert "schedule_start_index" not in _rules(base.format('start_index="0"'))
    assert "schedule_start_index" in _rules(base.format('start_index="1"'))
    assert "schedule_too_long" not in _rules(base.format('index_shift="99"'))
    assert "schedule_too_long" in _rules(base.format('index_shift="100"'))


def test_not_supported_is_distinct_from_unknown() -> None:
    pd = '<protection_domain name="a"><program_image path="a" />{}</protection_domain>'
    unsupported = validate_text(f"<system>{pd.format('<cspace />')}</system>", "x.system")[1]
    unknown = validate_text(f"<system>{pd.format('<cspaec />')}</system>", "x.system")[1]
    (u,) = errors(unsupported)
    (k,) = errors(unknown)
    assert (u.rule, k.rule) == ("unsupported_element", "unknown_element")
    assert "not supported by this validator" in u.message and "unknown" not in u.message
    assert "unknown element" in k.message
    attr = validate_text('<system><memory_region name="m" prefill_bootinfo="x86_tsc_freq" />'
                         f"{pd.format('')}</system>", "x.system")[1]
    assert "unsupported_attribute" in {d.rule for d in errors(attr)}


def test_duplicate_setvar_and_child_pds() -> None:
    text = ('<system><memory_region name="m" size="0x1000" /><protection_domain name="p" priority="9">'
            '<program_image path="p" /><map mr="m" vaddr="0x1000000" setvar_vaddr="s" />'
            '<setvar symbol="s" region_paddr="m" />'
            '<protection_domain name="c" id="1" priority="8"><program_image path="c" /></protection_domain>'
            '<virtual_machine name="vm"><vcpu id="1" /></virtual_machine></protection_domain></system>')
    system, diags = validate_text(text, "x.system")
    assert {d.rule for d in errors(diags)} == {"duplicate_setvar", "duplicate_child_id"}
    assert system is not None and system.pd("c") is not None and system.pd("c").parent == "p"  # type: ignore[union-attr]
