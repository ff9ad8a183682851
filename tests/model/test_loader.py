"""The loader: every mistake is an error with file:line:col and a plain sentence."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from septum.model import ModelError, json_schema, load, loads

PUMP = Path(__file__).parents[2] / "examples" / "infusion_pump" / "model.yaml"

MINI = """\
septum: 1
device: {name: mini}
interfaces:
  net: {kind: network, external: true}
partitions:
  a: {owns: [net]}
  b: {criticality: safety}
messages:
  M: {x: {type: int, min: 0, max: 9}}
channels:
  - {name: c, from: a, to: b, message: M}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ModelError) as exc:
        loads(text, "m.yaml")
    return [str(i) for i in exc.value.issues]


def test_pump_model_loads() -> None:
    model, source = load(PUMP)
    assert len(model.partitions) == 7
    assert model.partitions["safety_monitor"].restart_policy == "fail-safe"
    assert model.channel("orders_in").rate_per_s == 5.0
    loc = source.element("channel", "motor_cmd")
    assert loc.file.endswith("model.yaml") and loc.line > 1


def test_mini_loads() -> None:
    model, _ = loads(MINI)
    assert model.channels[0].src == "a"


def test_yaml_syntax_error_located() -> None:
    (e,) = errors("septum: 1\ndevice: {name: x\n")
    assert e.startswith("m.yaml:") and "YAML syntax" in e


def test_duplicate_key() -> None:
    (e,) = errors(MINI.replace("  b: {criticality: safety}", "  b: {criticality: safety}\n  a: {}"))
    assert e.startswith("m.yaml:8:3:") and "duplicate key 'a'" in e


def test_unknown_key_with_suggestion() -> None:
    (e,) = errors(MINI.replace("a: {owns: [net]}", "a: {own: [net]}"))
    assert e.startswith("m.yaml:6:7:")
    assert "unknown key 'own'" in e and "did you mean 'owns'" in e


def test_unknown_section() -> None:
    (e,) = errors(MINI + "partitons: {}\n")
    assert "unknown top-level section 'partitons'" in e and "did you mean 'partitions'" in e


def test_wrong_type_and_range() -> None:
    errs = errors(MINI.replace("kind: network, external: true", "kind: network, external: true, port: 70000")
                  .replace("criticality: safety", "criticality: 3"))
    assert any(e.startswith("m.yaml:4:") and "port" in e for e in errs)
    assert any(e.startswith("m.yaml:7:") and "criticality" in e for e in errs)


def test_bad_enum_value() -> None:
    (e,) = errors(MINI.replace("criticality: safety", "criticality: safty"))
    assert "m.yaml:7:" in e and "'safty'" in e


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("to: b", "to: z", "unknown partition 'z'"),
        ("message: M}", "message: N}", "unknown message type 'N'"),
        ("a: {owns: [net]}", "a: {owns: [nte]}", "unknown interface 'nte' (did you mean 'net'?)"),
        ("b: {criticality: safety}", "b: {criticality: safety, owns: [net]}", "interface 'net' is owned twice"),
        ("x: {type: int, min: 0, max: 9}", "x: {type: str}", "unbounded str"),
        ("x: {type: int, min: 0, max: 9}", "x: {type: list, items: int}", "unbounded list"),
        ("x: {type: int, min: 0, max: 9}", "x: {type: int, min: 9, max: 0}", "min (9.0) is greater than max"),
        ("from: a, to: b", "from: a, to: a", "connects partition 'a' to itself"),
    ],
)
def test_reference_errors(old: str, new: str, expect: str) -> None:
    text = MINI.replace(old, new)
    assert text != MINI
    errs = errors(text)
    assert any(expect in e for e in errs), errs
    assert all(e.startswith("m.yaml:") for e in errs)


def test_action_and_role_references() -> None:
    text = MINI + (
        "roles:\n  nurse: {via: [nett]}\n"
        "actions:\n  go: {handled_by: q, allowed: [doctor]}\n"
    )
    errs = errors(text)
    joined = "\n".join(errs)
    assert "role 'nurse' via unknown interface 'nett'" in joined
    assert "action 'go' is handled by unknown partition 'q'" in joined
    assert "action 'go' allows unknown role 'doctor'" in joined


def test_duplicate_channel_name() -> None:
    errs = errors(MINI + "  - {name: c, from: b, to: a, message: M}\n")
    assert any("duplicate channel name 'c'" in e and e.startswith("m.yaml:12:") for e in errs)


def test_empty_and_non_mapping() -> None:
    assert "empty" in errors("")[0]
    assert "mapping" in errors("- a\n- b\n")[0]


def test_missing_version_and_device() -> None:
    errs = errors("partitions: {}\n")
    assert any("septum: 1" in e for e in errs) and any("'device'" in e for e in errs)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as exc:
        load(tmp_path / "nope.yaml")
    assert "cannot read the model" in str(exc.value)
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelError) as exc:
        load(bad)
    assert "not UTF-8" in str(exc.value)


def test_model_is_immutable() -> None:
    model, _ = loads(MINI)
    with pytest.raises(AttributeError):
        model.partitions["a"].criticality = "safety"  # type: ignore[misc]


def test_json_schema_accepts_pump_model() -> None:
    schema = json_schema()
    data = yaml.safe_load(PUMP.read_text())
    # YAML dates become date objects; the schema expects their JSON (string) form
    for comps in data.get("components", {}).values():
        for c in comps:
            if "end_of_support" in c:
                c["end_of_support"] = c["end_of_support"].isoformat()
    jsonschema.validate(data, schema)
    bad = dict(data, partitions={"x": {"criticality": "extreme"}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_component_locations() -> None:
    _, source = load(PUMP)
    loc = source.element("component", "network/hl7")
    text = PUMP.read_text().splitlines()
    assert "name: hl7" in text[loc.line - 1]
