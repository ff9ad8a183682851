"""`septum diff`: what a change adds to the attack surface, and the exit code CI gates on."""

from __future__ import annotations

import json
from pathlib import Path

from septum.analysis.diff import diff
from septum.model import load, loads

MODELS = Path(__file__).parent / "models"

CLEAN = (MODELS / "clean.yaml").read_text()
DEBUG_CHANNEL = "  - {name: debug_cmd, from: network, to: control, message: Cmd, rate: 10/s, debug: true}\n"


def _variant(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _with_channel(text: str, line: str) -> str:
    return text.replace("channels:\n", "channels:\n" + line, 1)


def test_debug_channel_into_safety_is_a_new_unguarded_path(run, tmp_path):
    new = _variant(tmp_path, "new.yaml", _with_channel(CLEAN, DEBUG_CHANNEL))
    r = run("diff", str(MODELS / "clean.yaml"), new)
    assert r.exit_code == 1, r.output
    out = r.stdout
    assert "new unguarded path from external interface 'lan' into safety partition 'control'" in out
    assert "path: interface:lan --> partition:network --[debug_cmd]--> partition:control" in out
    assert "new channel 'debug_cmd' [debug]: network -> control" in out
    assert "ISO001" in out  # the new finding is listed too
    assert "Risk: HIGH" in out


def test_debug_channel_json(run, tmp_path):
    new = _variant(tmp_path, "new.yaml", _with_channel(CLEAN, DEBUG_CHANNEL))
    r = run("diff", str(MODELS / "clean.yaml"), new, "--format", "json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["format"] == "septum-diff/1"
    assert data["verdict"] == "high" and data["adds_attack_surface"] is True and data["exit_code"] == 1
    (path,) = [c for c in data["changes"] if c["category"] == "path"]
    assert path["change"] == "unguarded" and path["risk"] == "high"
    assert path["element"]["qualified_name"] == "partitions.control"
    assert [(s["node"]["name"], s["channel"]) for s in path["path"]] == [
        ("lan", None), ("network", None), ("control", "debug_cmd")]
    assert path["path"][2]["channel_location"]["file"] == new
    (chan,) = [c for c in data["changes"] if c["category"] == "channel"]
    assert chan["change"] == "added" and chan["location"]["file"] == new
    assert "ISO001" in {f["rule"] for f in data["new_findings"]}
    assert data["resolved_findings"] == []


def test_cosmetic_change_reports_nothing(run, tmp_path):
    text = CLEAN.replace("name: Clean test device", "name: Clean test device\n  description: now with prose")
    text = text.replace("    carries: [commands]", "    carries: [commands]\n    description: the hospital LAN")
    new = _variant(tmp_path, "new.yaml", text)
    r = run("diff", str(MODELS / "clean.yaml"), new)
    assert r.exit_code == 0, r.output
    assert "No security-relevant changes." in r.stdout
    assert "Risk: NONE" in r.stdout
    data = json.loads(run("diff", str(MODELS / "clean.yaml"), new, "--format", "json").stdout)
    assert data["changes"] == [] and data["new_findings"] == [] and data["verdict"] == "none"


def test_removing_the_flaw_is_not_an_addition(run):
    r = run("diff", str(MODELS / "flawed.yaml"), str(MODELS / "clean.yaml"), "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert all(not c["adds_surface"] for c in data["changes"])
    assert any(c["change"] == "removed-unguarded" for c in data["changes"])
    assert "ISO001" in {f["rule"] for f in data["resolved_findings"]}


def test_load_error_exits_2(run, tmp_path):
    r = run("diff", str(MODELS / "clean.yaml"), str(MODELS / "broken.yaml"))
    assert r.exit_code == 2
    assert "unknown key 'colour'" in r.stderr
    r = run("diff", str(tmp_path / "missing.yaml"), str(MODELS / "clean.yaml"))
    assert r.exit_code == 2
    assert "cannot read the model" in r.stderr


def _diff(old_text: str, new_text: str):
    old, _ = loads(old_text, "old.yaml")
    new, _ = loads(new_text, "new.yaml")
    return diff(old, new)


def _kinds(d) -> set[tuple[str, str]]:
    return {(c.category, c.change) for c in d.changes if c.adds_surface}


def test_widened_grants():
    new = CLEAN.replace(
        "    owns: [motor]\n    resources: {memory_mb: 64, period_ms: 100, budget_ms: 10}",
        "    owns: [motor]\n    allow: {net: true, files: {/var/log: rw}, syscalls: [realtime-clock]}\n"
        "    resources: {memory_mb: 512, period_ms: 100, budget_ms: 10}",
    ).replace("mitigation: [authenticating]", "mitigation: []").replace("criticality: high", "criticality: low")
    d = _diff(CLEAN, new)
    kinds = _kinds(d)
    assert {("grant", "allow.net"), ("grant", "allow.files"), ("grant", "allow.syscalls"), ("grant", "resources"),
            ("grant", "mitigation"), ("grant", "criticality")} <= kinds
    net = next(c for c in d.changes if c.change == "allow.net")
    assert net.risk == "high"  # a safety partition on the network
    # without its mitigation, auth no longer guards: the path into 'control' is new and unguarded
    assert ("path", "unguarded") in kinds
    assert d.exit_code == 1


def test_new_and_enabled_interfaces():
    old = CLEAN.replace("  motor:\n", "  uart:\n    kind: debug\n    external: true\n    enabled: false\n  motor:\n")
    new = old.replace("    enabled: false\n", "")
    new = new.replace("  motor:\n", "  bt:\n    kind: bluetooth\n    external: true\n    authentication: none\n"
                                     "  motor:\n")
    d = _diff(old, new)
    by_elem = {(c.element.name, c.change): c for c in d.changes}
    assert by_elem[("uart", "enabled")].risk == "high"
    assert by_elem[("bt", "added")].risk == "medium"
    assert d.verdict == "high"


def test_weaker_interface_and_higher_rate():
    new = CLEAN.replace("authentication: mutual-tls\n    encryption: tls1.3\n", "authentication: none\n")
    new = new.replace("{name: cmd_in, from: network, to: auth, message: Cmd, rate: 10/s}",
                      "{name: cmd_in, from: network, to: auth, message: Cmd, rate: 100/s}")
    d = _diff(CLEAN, new)
    changes = {(c.element.name, c.change) for c in d.changes if c.adds_surface}
    assert {("lan", "authentication"), ("lan", "encryption"), ("cmd_in", "widened")} <= changes
    assert "MED001" in {f.rule for f in d.new_findings}


def test_action_allowed_to_more_roles():
    new = CLEAN.replace("  operator: {kind: machine, authenticates_with: [mutual-tls], via: [lan]}",
                        "  operator: {kind: machine, authenticates_with: [mutual-tls], via: [lan]}\n"
                        "  guest: {kind: machine, via: [lan]}")
    new = new.replace("allowed: [operator]", "allowed: [operator, guest]")
    d = _diff(CLEAN, new)
    assert ("action", "allowed") in _kinds(d)
    assert ("role", "added") in _kinds(d)


def test_identical_models_diff_empty():
    model, _ = load(MODELS / "flawed.yaml")
    d = diff(model, model)
    assert d.changes == [] and d.new_findings == [] and d.resolved_findings == []
    assert d.exit_code == 0
