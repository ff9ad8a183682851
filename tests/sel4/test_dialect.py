"""The Microkit 1.2 dialect of the generator and of validate-sdf (no SDK needed; the real tool: test_dialect_tool)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from septum.cli.gen import gen, validate_sdf
from septum.gen import microkit
from septum.gen.roundtrip import compare
from septum.gen.sdf_validate import errors, validate_file, validate_text
from septum.model import load

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "tests" / "gen"
PUMP = ROOT / "examples" / "infusion_pump" / "model.yaml"
SMALL = GEN / "models" / "small.yaml"
PROBES = GEN / "sdf_1_2"


def _gen(path: Path, dialect: str) -> microkit.Generated:
    model, source = load(path)
    return microkit.generate(model, source, model_file=path.name, dialect=dialect)  # type: ignore[arg-type]


def test_1_2_output_has_no_domain_scheduler_and_says_how_time_is_isolated() -> None:
    sdf = _gen(PUMP, "1.2").files["device.system"]
    assert "<domains>" not in sdf and "domain=" not in sdf and "schedule_entry" not in sdf
    assert "notify=" not in sdf and " pp=" not in sdf
    assert "no domain scheduler" in sdf and "budget and period" in sdf
    assert 'budget="2000" period="10000"' in sdf  # the safety monitor keeps its MCS reservation
    current = _gen(PUMP, "current").files["device.system"]
    assert "<domains>" in current and 'domain="dom_safety_monitor"' in current and 'notify="false"' in current


def test_1_2_mapping_report_states_the_time_isolation_and_the_reverse_notifications() -> None:
    generated = _gen(PUMP, "1.2")
    report = generated.files["mapping.md"]
    assert "## Time isolation (Microkit 1.2: MCS budget and period, no domain schedule)" in report
    assert "## Domain schedule" not in report
    assert "| safety_monitor |" in report and "20.0 %" in report
    model, _ = load(PUMP)
    # one widening per (receiver, sender) pair of the model's channels, and nothing else
    pairs = {(c.dst, c.src) for c in model.channels}
    assert len(generated.widenings) == len(pairs) > 0
    assert {tuple(w.split("'")[1:4:2]) for w in generated.widenings} == pairs
    for w in generated.widenings:
        assert f"- {w}" in report
    assert any("no domain schedule" in n for n in generated.notes)


def test_headers_are_the_same_in_both_dialects() -> None:
    old, new = _gen(PUMP, "1.2").files, _gen(PUMP, "current").files
    headers = [k for k in new if k.startswith("include/")]
    assert headers and all(old[k] == new[k] for k in headers)


def test_generated_1_2_output_passes_our_1_2_validator_and_fails_the_current_one() -> None:
    sdf = _gen(PUMP, "1.2").files["device.system"]
    _system, diags = validate_text(sdf, "device.system", "1.2")
    assert not errors(diags)
    current = _gen(PUMP, "current").files["device.system"]
    _system, diags = validate_text(current, "device.system", "1.2")
    assert {"unknown_element", "unknown_attribute"} <= {d.rule for d in errors(diags)}


def test_a_1_2_channel_lets_both_ends_notify_in_the_round_trip() -> None:
    model, _ = load(PUMP)
    sdf = _gen(PUMP, "1.2").files["device.system"]
    system, _diags = validate_text(sdf, "device.system", "1.2")
    assert system is not None
    problems = compare(model, system)
    assert problems and all("notification channel(s) let" in p for p in problems)
    rest, widenings = microkit._reverse_notifications(model, system, problems)
    assert rest == [] and len(widenings) == len(problems)


def test_a_notification_that_is_not_a_reverse_of_a_model_channel_stays_a_problem() -> None:
    model, _ = load(SMALL)
    sdf = _gen(SMALL, "1.2").files["device.system"]
    # an extra channel between two PDs that the model does not connect in either direction
    extra = sdf.replace("</system>", '    <channel>\n        <end pd="net" id="5" />\n'
                        '        <end pd="driver" id="5" />\n    </channel>\n</system>')
    system, diags = validate_text(extra, "device.system", "1.2")
    assert system is not None and not errors(diags)
    rest, _widenings = microkit._reverse_notifications(model, system, compare(model, system))
    assert any("'net' signal 'driver'" in p or "'driver' signal 'net'" in p for p in rest)


def test_pp_on_a_1_2_protection_domain_is_a_protected_call_grant() -> None:
    system, diags = validate_file(PROBES / "valid_pp_pd.system", "1.2")
    assert system is not None and not errors(diags)
    client_end, server_end = system.channels[0].ends
    assert client_end.pp and not server_end.pp
    assert client_end.notify and server_end.notify
    # what 1.2 grants, whatever the file says: a (refused, and by 1.2.6 ignored) notify="false" changes nothing
    system, diags = validate_file(PROBES / "end_notify.system", "1.2")
    assert system is not None and errors(diags)
    assert all(end.notify for end in system.channels[0].ends)


@pytest.mark.parametrize(("fixture", "rule"), [
    ("leading_zero", "bad_number"),
    ("end_id_hex", "bad_number"),
    ("domains_block", "unknown_element"),
    ("domain_attribute", "unknown_attribute"),
    ("stack_size_attribute", "unknown_attribute"),
    ("id_63", "id_range"),
    ("end_notify", "unknown_attribute"),
    ("pp_both_pds", "pp_both_ends"),
    ("pp_lower_priority", "ppcall_priority"),
    ("bool_invalid", "bad_bool"),
    ("setvar_unknown_region", "setvar_unknown_mr"),
])
def test_1_2_probes_are_refused_with_their_rule(fixture: str, rule: str) -> None:
    _system, diags = validate_file(PROBES / f"{fixture}.system", "1.2")
    assert rule in {d.rule for d in errors(diags)}, [str(d) for d in diags]


@pytest.mark.parametrize("fixture", ["valid_pp_pd", "valid_id_62", "valid_python_numbers"])
def test_1_2_probes_that_1_2_accepts(fixture: str) -> None:
    _system, diags = validate_file(PROBES / f"{fixture}.system", "1.2")
    assert not errors(diags), [str(d) for d in diags]


def test_numbers_and_ids_differ_between_the_dialects() -> None:
    system, _ = validate_file(PROBES / "valid_python_numbers.system", "1.2")
    assert system is not None
    assert [r.size for r in system.regions] == [0o20000, 0x1000]
    assert system.pds[0].priority == 16 and system.pds[0].budget == 1000
    assert not system.pds[0].maps[1].cached  # "False": 1.2.6 reads booleans in any case
    # the current dialect reads '010' as ten and refuses ids above 61
    assert not errors(validate_file(PROBES / "leading_zero.system")[1])
    assert "id_range" in {d.rule for d in validate_file(PROBES / "valid_id_62.system")[1]}


@pytest.mark.parametrize("dialect", ["1.2", "current"])
def test_text_inside_elements_is_refused(tmp_path: Path, dialect: str) -> None:
    f = tmp_path / "text.system"
    f.write_text('<?xml version="1.0"?>\n<system>\n  stray\n  <protection_domain name="a">'
                 '<program_image path="a.elf"/></protection_domain>\n</system>\n')
    diags = validate_file(f, dialect)[1]  # type: ignore[arg-type]
    assert [(d.rule, d.loc.line) for d in errors(diags)] == [("text_content", 3)]


@pytest.mark.parametrize("dialect", ["1.2", "current"])
def test_no_protection_domain_is_refused(tmp_path: Path, dialect: str) -> None:
    f = tmp_path / "empty.system"
    f.write_text('<?xml version="1.0"?>\n<system>\n</system>\n')
    assert "no_pds" in {d.rule for d in validate_file(f, dialect)[1]}  # type: ignore[arg-type]


def test_cli_gen_microkit_1_2_and_check(tmp_path: Path) -> None:
    r = CliRunner()
    out = tmp_path / "sel4"
    done = r.invoke(gen, ["microkit", str(PUMP), "-o", str(out), "--microkit", "1.2"])
    assert done.exit_code == 0, done.output
    assert "Microkit 1.2: no domain schedule" in done.output
    assert "<domains>" not in (out / "device.system").read_text()
    assert r.invoke(gen, ["microkit", str(PUMP), "-o", str(out), "--microkit", "1.2", "--check"]).exit_code == 0
    # the default dialect's output differs from what is there
    assert r.invoke(gen, ["microkit", str(PUMP), "-o", str(out), "--check"]).exit_code == 1
    bad = r.invoke(gen, ["microkit", str(PUMP), "-o", str(out), "--microkit", "1.3"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_cli_validate_sdf_dialect_option(tmp_path: Path) -> None:
    r = CliRunner()
    out = tmp_path / "sel4"
    assert r.invoke(gen, ["microkit", str(PUMP), "-o", str(out), "--microkit", "1.2"]).exit_code == 0
    system = str(out / "device.system")
    ok = r.invoke(validate_sdf, [system, "--microkit", "1.2"])
    assert ok.exit_code == 0, ok.output
    # without domains and notify attributes the 1.2 output is also a valid current system (every end notifies)
    assert r.invoke(validate_sdf, [system]).exit_code == 0
    with_model = r.invoke(validate_sdf, [system, "--microkit", "1.2", "--model", str(PUMP)])
    assert with_model.exit_code == 0, with_model.output
    assert "warning:" in with_model.output and "Microkit 1.2 lets both channel ends notify" in with_model.output
    strict = r.invoke(validate_sdf, [system, "--microkit", "1.2", "--model", str(PUMP), "--strict"])
    assert strict.exit_code == 1
    current = tmp_path / "current"
    assert r.invoke(gen, ["microkit", str(PUMP), "-o", str(current)]).exit_code == 0
    old = r.invoke(validate_sdf, [str(current / "device.system"), "--microkit", "1.2"])
    assert old.exit_code == 1 and "<domains> is not part of Microkit 1.2" in old.output
