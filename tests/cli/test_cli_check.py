"""`septum check`, `rules`, `explain`, `schema`: exit codes, messages, and output options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from septum.model import json_schema

MODELS = Path(__file__).parent / "models"


def test_clean_model_exits_0(run):
    r = run("check", str(MODELS / "clean.yaml"))
    assert r.exit_code == 0, r.output
    assert "No findings." in r.stdout
    assert "PASS: 0 errors" in r.stdout


def test_flawed_model_exits_1_with_location_and_witness(run):
    r = run("check", str(MODELS / "flawed.yaml"))
    assert r.exit_code == 1
    out = r.stdout
    assert "Errors (" in out
    assert "ISO001" in out and "External input reaches a safety partition" in out
    # the primary element of ISO001 is the safety partition 'control', declared on line 30
    assert f"{MODELS / 'flawed.yaml'}:30:5  partition:control" in out
    assert "path: interface:lan --> partition:network --[console]--> partition:control" in out
    assert out.rstrip().splitlines()[-1].startswith("FAIL: 5 errors")


def test_waived_error_is_listed_but_does_not_fail(run):
    r = run("check", str(MODELS / "waived.yaml"), "--today", "2026-01-01")
    assert r.exit_code == 0, r.output
    assert "Waived (1)" in r.stdout
    assert "waived by alice until 2030-01-31: auth rate-limits per principal" in r.stdout
    assert "1 waived" in r.stdout


def test_expired_waiver_counts_again(run):
    r = run("check", str(MODELS / "waived.yaml"), "--today", "2031-01-01", "--format", "json")
    data = json.loads(r.stdout)
    assert data["counts"]["waived"] == 0
    assert {f["rule"] for f in data["findings"]} >= {"PRIV005", "WAIVER001"}


def test_broken_model_exits_2_with_located_errors(run):
    r = run("check", str(MODELS / "broken.yaml"))
    assert r.exit_code == 2
    assert r.stdout == ""
    assert f"{MODELS / 'broken.yaml'}:8:5: error: partition 'a': unknown key 'colour'" in r.stderr
    assert "Traceback" not in r.output


def test_not_yaml_exits_2(run):
    r = run("check", str(MODELS / "not_yaml.yaml"))
    assert r.exit_code == 2
    assert ":2:10: error: YAML syntax" in r.stderr


def test_missing_file_exits_2(run, tmp_path):
    r = run("check", str(tmp_path / "nope.yaml"))
    assert r.exit_code == 2
    assert "cannot read the model" in r.stderr


def test_bad_format_is_misuse(run):
    r = run("check", str(MODELS / "clean.yaml"), "--format", "xml")
    assert r.exit_code == 2
    assert "'xml' is not one of" in r.stderr


def test_bad_today_is_misuse(run):
    r = run("check", str(MODELS / "clean.yaml"), "--today", "31/01/2026")
    assert r.exit_code == 2
    assert "YYYY-MM-DD" in r.stderr


def test_unknown_select_suggests(run):
    r = run("check", str(MODELS / "clean.yaml"), "--select", "ISO01")
    assert r.exit_code == 2
    assert "unknown rule or family 'ISO01'" in r.stderr
    assert "ISO001" in r.stderr


def test_select_limits_rules(run):
    r = run("check", str(MODELS / "flawed.yaml"), "--select", "iso002", "--format", "json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["rules"] == ["ISO002"]
    assert [f["rule"] for f in data["findings"]] == ["ISO002"]
    r = run("check", str(MODELS / "flawed.yaml"), "--select", "TIME")
    assert r.exit_code == 0


def test_output_file(run, tmp_path):
    out = tmp_path / "report.sarif"
    r = run("check", str(MODELS / "flawed.yaml"), "--format", "sarif", "--output", str(out))
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "wrote sarif report" in r.stderr
    assert json.loads(out.read_text())["version"] == "2.1.0"


def test_unwritable_output_exits_2(run, tmp_path):
    r = run("check", str(MODELS / "clean.yaml"), "--output", str(tmp_path / "no" / "such" / "dir.txt"))
    assert r.exit_code == 2
    assert "cannot write" in r.stderr


def test_text_has_no_escape_codes_without_tty(run):
    r = run("check", str(MODELS / "flawed.yaml"), env={"NO_COLOR": "1"})
    assert "\x1b[" not in r.stdout


def test_rules_lists_every_rule(run):
    r = run("rules")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "SEVERITY", "TITLE"]
    assert any(line.startswith("ISO001") and "error" in line for line in lines)
    data = json.loads(run("rules", "--format", "json").stdout)
    assert {"ISO001", "MED002", "WAIVER001"} <= {d["id"] for d in data}


def test_explain_rule(run):
    r = run("explain", "iso001")
    assert r.exit_code == 0
    assert r.stdout.startswith("ISO001: External input reaches a safety partition")
    assert "severity: error" in r.stdout
    assert "Why it matters:" in r.stdout and "How to fix it:" in r.stdout


def test_explain_family_lists_rules(run):
    r = run("explain", "MED")
    assert r.exit_code == 0
    assert "MED001" in r.stdout and "MED005" in r.stdout


def test_explain_unknown_rule_suggests(run):
    r = run("explain", "ISO01")
    assert r.exit_code == 2
    assert "unknown rule 'ISO01'" in r.stderr
    assert "did you mean" in r.stderr and "ISO001" in r.stderr


def test_schema_is_the_model_json_schema(run):
    r = run("schema")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data == json.loads(json.dumps(json_schema()))
    jsonschema.Draft202012Validator.check_schema(data)


def test_console_script_never_prints_a_traceback(tmp_path):
    # the installed entry point, as a user runs it, on a file that is not a model at all
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(b"\xff\xfe\x00binary")
    p = subprocess.run(
        [sys.executable, "-c", "from septum.cli import main; main()", "check", str(junk)],
        capture_output=True, text=True,
    )
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "not UTF-8" in p.stderr
