"""`septum check --osv`: offline vulnerability data feeds VULN001; bad data is a usage error."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from septum.cli import cli

ROOT = Path(__file__).parents[2]
PUMP = ROOT / "examples" / "infusion_pump" / "model.yaml"
OSV = ROOT / "tests" / "compliance" / "osv"


def test_check_with_osv_reports_vulnerable_components() -> None:
    r = CliRunner().invoke(cli, ["check", str(PUMP), "--osv", str(OSV), "--format", "json"])
    assert r.exit_code == 1, r.output
    data = json.loads(r.output)
    vulns = [f for f in data["findings"] if f["rule"] == "VULN001"]
    assert {f["elements"][0]["name"] for f in vulns} >= {"network/hl7", "network/cryptography"}


def test_check_without_osv_is_clean() -> None:
    assert CliRunner().invoke(cli, ["check", str(PUMP)]).exit_code == 0


def test_bad_osv_path_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = CliRunner().invoke(cli, ["check", str(PUMP), "--osv", str(bad)])
    assert r.exit_code == 2 and "Traceback" not in r.output
