"""The gen commands: exit codes 0 ok, 1 errors/refused, 2 misuse or unreadable input."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from septum.cli.gen import gen, validate_sdf

from .conftest import PUMP, ROOT

HERE = Path(__file__).parent
SMALL = HERE / "models" / "small.yaml"


def test_validate_sdf_exit_codes() -> None:
    r = CliRunner()
    ok = r.invoke(validate_sdf, [str(HERE / "sdf_valid" / "minimal.system")])
    assert ok.exit_code == 0, ok.output
    bad = r.invoke(validate_sdf, [str(HERE / "sdf_invalid" / "pd_budget_gt_period.system")])
    assert bad.exit_code == 1
    assert "pd_budget_gt_period.system:4:5: error: budget (2000)" in bad.output
    assert r.invoke(validate_sdf, [str(HERE / "no-such.system")]).exit_code == 2
    warn = HERE / "sdf_valid" / "unused_region_warning.system"
    assert r.invoke(validate_sdf, [str(warn)]).exit_code == 0
    assert r.invoke(validate_sdf, [str(warn), "--strict"]).exit_code == 1


def test_gen_microkit_refuses_a_model_with_blocking_findings(tmp_path: Path) -> None:
    r = CliRunner()
    refused = r.invoke(gen, ["microkit", str(SMALL), "-o", str(tmp_path / "out")])
    assert refused.exit_code == 1
    assert "refusing to generate" in refused.output
    assert not (tmp_path / "out").exists()
    forced = r.invoke(gen, ["microkit", str(SMALL), "-o", str(tmp_path / "out"), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "out" / "device.system").is_file()
    assert (tmp_path / "out" / "include" / "driver.h").is_file()


def test_gen_pump_and_check(tmp_path: Path) -> None:
    r = CliRunner()
    assert r.invoke(gen, ["microkit", str(PUMP), "-o", str(ROOT / "examples/infusion_pump/sel4"), "--check"]
                    ).exit_code == 0
    out = tmp_path / "mk"
    assert r.invoke(gen, ["microkit", str(PUMP), "-o", str(out)]).exit_code == 0
    checked = r.invoke(validate_sdf, [str(out / "device.system"), "--model", str(PUMP)])
    assert checked.exit_code == 0, checked.output
    (out / "device.system").write_text((out / "device.system").read_text().replace('perms="r"', 'perms="rw"', 1))
    assert r.invoke(gen, ["microkit", str(PUMP), "-o", str(out), "--check"]).exit_code == 1
    tampered = r.invoke(validate_sdf, [str(out / "device.system"), "--model", str(PUMP)])
    assert tampered.exit_code == 1 and "[roundtrip]" in tampered.output
    assert r.invoke(gen, ["camkes", str(PUMP), "-o", str(tmp_path / "ck")]).exit_code == 0
    assert (tmp_path / "ck" / "device.camkes").is_file()


def test_bad_inputs_exit_2(tmp_path: Path) -> None:
    r = CliRunner()
    assert r.invoke(gen, ["microkit", str(tmp_path / "missing.yaml"), "-o", str(tmp_path)]).exit_code == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("septum: 1\ndevice: {name: x}\npartitions: {a: {criticality: extreme}}\n")
    res = r.invoke(gen, ["microkit", str(broken), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "broken.yaml:3:" in res.output
    plan = tmp_path / "plan.yaml"
    plan.write_text("devices: {motor: {irq: many}}\n")
    res = r.invoke(gen, ["microkit", str(SMALL), "-o", str(tmp_path / "o"), "--force", "--address-plan", str(plan)])
    assert res.exit_code == 2 and "plan.yaml" in res.output and "irq" in res.output


def test_address_plan_overrides_device(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("devices:\n  motor: {phys_addr: 0x09000000, irq: 77}\n")
    r = CliRunner()
    res = r.invoke(gen, ["microkit", str(SMALL), "-o", str(tmp_path / "o"), "--force", "--address-plan", str(plan)])
    assert res.exit_code == 0, res.output
    sdf = (tmp_path / "o" / "device.system").read_text()
    assert 'name="dev_motor" size="0x1000" phys_addr="0x9000000"' in sdf and '<irq irq="77"' in sdf
