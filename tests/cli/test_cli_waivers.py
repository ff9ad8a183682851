"""A clean model with valid waivers exits 0 from every command that judges findings (issue 18): a waiver is
judged only by a run of the rule it waives, and `septum vulns` exits by its own findings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

MODELS = Path(__file__).with_name("models")
OSV = Path(__file__).parents[1] / "compliance" / "osv"
STALE = "matches no finding"


def _model(tmp_path: Path, *, component: str = "0.22.0", vuln_waiver: bool = False) -> Path:
    """The waived test model, with an unauthenticated serial line waived for MED001 (as a device maker
    would for a bench port) and one component."""
    data = yaml.safe_load((MODELS / "waived.yaml").read_text())
    data["interfaces"]["bench"] = {"kind": "serial", "external": True, "authentication": "none"}
    data["partitions"]["network"]["owns"].append("bench")
    data["partitions"]["network"]["functions"] = {"bench_console": {"uses": ["interface:bench"]}}
    data["waivers"].append({"rule": "MED001", "element": "bench", "reason": "bench units only, port potted",
                            "by": "alice", "expires": "2030-01-31"})
    data["components"] = {"network": [{"name": "cryptography", "version": component,
                                       "purl": f"pkg:pypi/cryptography@{component}"}]}
    if vuln_waiver:
        data["waivers"].append({"rule": "VULN001", "element": "network", "reason": "chain parsing unused",
                                "by": "alice", "expires": "2030-01-31"})
    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_check_clean_with_waivers_exits_0(run, tmp_path: Path) -> None:
    r = run("check", str(_model(tmp_path)))
    assert r.exit_code == 0, r.output
    assert STALE not in r.output and "2 waived" in r.output


@pytest.mark.parametrize("select", ["ISO", "MED002", "VULN001"])
def test_check_select_does_not_judge_waivers_of_rules_not_run(run, tmp_path: Path, select: str) -> None:
    r = run("check", str(_model(tmp_path)), "--select", select)
    assert r.exit_code == 0, r.output
    assert STALE not in r.output


def test_check_select_still_judges_waivers_of_rules_that_ran(run, tmp_path: Path) -> None:
    # MED001 ran and found nothing on a now-authenticated port: its waiver is stale (a note, exit 0)
    path = _model(tmp_path)
    path.write_text(path.read_text().replace("authentication: none", "authentication: mutual-tls"))
    r = run("check", str(path), "--select", "MED")
    assert r.exit_code == 0 and "the waiver of MED001 for 'bench' matches no finding" in r.output


def test_vulns_clean_with_waivers_exits_0(run, tmp_path: Path) -> None:
    r = run("vulns", str(_model(tmp_path, component="44.0.1")), "--osv", str(OSV))
    assert r.exit_code == 0, r.output
    assert STALE not in r.output and "0 match(es)" in r.output


def test_vulns_waived_match_exits_0_and_open_match_exits_1(run, tmp_path: Path) -> None:
    r = run("vulns", str(_model(tmp_path, component="43.0.1", vuln_waiver=True)), "--osv", str(OSV))
    assert r.exit_code == 0, r.output
    assert "(waived)" in r.output and "1 match(es), 1 waived" in r.output
    r = run("vulns", str(_model(tmp_path, component="43.0.1")), "--osv", str(OSV))
    assert r.exit_code == 1 and "1 match(es), 0 waived" in r.output


def test_check_with_osv_and_waivers_exits_0(run, tmp_path: Path) -> None:
    r = run("check", str(_model(tmp_path, component="43.0.1", vuln_waiver=True)), "--osv", str(OSV))
    assert r.exit_code == 0, r.output
    assert STALE not in r.output


def test_gen_microkit_clean_with_waivers_is_not_refused(run, tmp_path: Path) -> None:
    r = run("gen", "microkit", str(_model(tmp_path)), "-o", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert "refusing" not in r.output and (tmp_path / "out").is_dir()


def test_run_gate_clean_with_waivers_lets_it_run(tmp_path: Path) -> None:
    # `septum run` refuses a model through this gate before anything starts
    from septum.model import load
    from septum.runtime.gate import gate

    model, source = load(_model(tmp_path))
    assert gate(model, source, allow_debug=False) == []
