"""The STRIDE threat model: the pump's threats, status changes when the model changes, user rules."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from msgspec.structs import replace

from septum.analysis import get_rule
from septum.compliance.stride import EVIDENCE, summary, threat_model
from septum.compliance.threat_rules import ThreatRuleError, load_threat_file, shipped_rules
from septum.model.schema import Action, Controls, Decision, Interface, Model

DOCS = Path(__file__).resolve().parents[2] / "docs" / "compliance.md"


def by_id(model: Model, *extra: object) -> dict[str, object]:
    return {t.id: t for t in threat_model(model, *extra)}  # type: ignore[arg-type]


def test_pump_threats_are_all_mitigated_with_evidence(pump_model: Model) -> None:
    ts = threat_model(pump_model)
    # 44: auth -> safety_monitor soft_limit_approvals (issue 11) adds its UPFLOW-TAMPER and UPFLOW-FLOOD;
    # the runtime threats of issue 11 (supervisor abuse, sandbox escape, resource exhaustion per non-safety
    # partition, and a supervisor fault); 62: auth -> safety_monitor clinician_boluses (issue 13) adds two more
    assert summary(ts) == {"mitigated": 62, "accepted": 0, "not-applicable": 0, "open": 0}
    per_rule = Counter(t.rule.id for t in ts)
    assert per_rule == {"SPOOF-ROLE": 4, "SPOOF-PRESENCE": 1, "REPUDIATE-ROLE": 5, "NET-TAMPER": 2,
                        "NET-DISCLOSE": 2, "NET-FLOOD": 2, "ENTRY-ELEVATE": 4, "DEBUG-ACCESS": 1,
                        "UPFLOW-TAMPER": 9, "UPFLOW-FLOOD": 9, "SAFETY-HANG": 2, "UPDATE-TAMPER": 1,
                        "AUDIT-TAMPER": 1, "AUDIT-FLOOD": 1, "BREAKGLASS-MISUSE": 1, "REMOTE-SAFETY": 1,
                        "SUPERVISOR-ABUSE": 5, "SANDBOX-ESCAPE": 5, "RESOURCE-EXHAUST": 5, "SUPERVISOR-FAULT": 1}
    t = {x.id: x for x in ts}
    assert [str(r) for r in t["SPOOF-PRESENCE@patient"].mitigated_by] == ["partition:safety_monitor"]
    assert [str(r) for r in t["ENTRY-ELEVATE@hospital_https"].mitigated_by] == ["partition:auth"]
    assert t["REMOTE-SAFETY@accept_remote_order"].controls == [("6", "implemented")]
    # downward flows (e.g. status to the UI) generate no threat of their own
    assert not any(x.element.name == "pump_status" for x in ts)


def test_documented_threat_count_matches(pump_model: Model) -> None:
    if not DOCS.exists():
        pytest.skip("docs/compliance.md not written")
    assert f"**{len(threat_model(pump_model))} threats**" in DOCS.read_text()


def test_unencrypted_interface_opens_tamper_and_disclosure(pump_model: Model) -> None:
    ifaces = dict(pump_model.interfaces)
    ifaces["hospital_mllp"] = replace(ifaces["hospital_mllp"], encryption="tls1.1")
    t = by_id(replace(pump_model, interfaces=ifaces))
    assert t["NET-TAMPER@hospital_mllp"].status == "open"  # type: ignore[attr-defined]
    assert t["NET-DISCLOSE@hospital_mllp"].status == "open"  # type: ignore[attr-defined]
    assert t["NET-TAMPER@hospital_https"].status == "mitigated"  # type: ignore[attr-defined]


def test_accepted_risk_control_accepts_open_threat(pump_model: Model) -> None:
    ifaces = dict(pump_model.interfaces)
    ifaces["hospital_mllp"] = replace(ifaces["hospital_mllp"], encryption=None)
    assert pump_model.controls is not None
    decisions = dict(pump_model.controls.decisions)
    decisions["3"] = Decision(status="accepted-risk", reason="legacy HL7 segment is an isolated VLAN")
    m = replace(pump_model, interfaces=ifaces, controls=Controls(decisions=decisions))
    t = by_id(m)["NET-DISCLOSE@hospital_mllp"]
    assert t.status == "accepted" and "isolated VLAN" in t.reason  # type: ignore[attr-defined]


def test_remote_order_without_local_confirmation_is_open(pump_model: Model) -> None:
    actions = dict(pump_model.actions)
    actions["accept_remote_order"] = Action(handled_by="pump_control", allowed=("hospital_server",))
    assert by_id(replace(pump_model, actions=actions))["REMOTE-SAFETY@accept_remote_order"].status == "open"  # type: ignore[attr-defined]


def test_unguarded_entry_opens_elevation(pump_model: Model) -> None:
    ifaces = dict(pump_model.interfaces)
    ifaces["usb"] = Interface(kind="usb", external=True, authentication="none")
    parts = dict(pump_model.partitions)
    parts["pump_control"] = replace(parts["pump_control"], owns=("usb",))
    t = by_id(replace(pump_model, interfaces=ifaces, partitions=parts))
    assert t["ENTRY-ELEVATE@usb"].status == "open"  # type: ignore[attr-defined]
    assert t["MEDIA-TAMPER@usb"].status == "open"  # type: ignore[attr-defined]


def test_user_rules_and_decisions(pump_model: Model, tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("""
threats:
  - id: SENSOR-SPOOF
    stride: S
    applies_to: partition
    when: {name: safety_monitor}
    title: "Forged sensor readings reach {name}"
    mitigated_by: [never]
    controls: ["16"]
decisions:
  SENSOR-SPOOF@safety_monitor: {status: accepted, reason: "sensors on the board", by: "safety lead"}
""")
    t = by_id(pump_model, load_threat_file(f))["SENSOR-SPOOF@safety_monitor"]
    assert t.status == "accepted" and "safety lead" in t.reason  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "message"), [
    ("threats: [{id: X, stride: Q, applies_to: role, title: t, mitigated_by: [never]}]", "invalid enum value"),
    ("threats: [{id: X, stride: S, applies_to: role, title: t, mitigated_by: [magic]}]", "unknown evidence"),
    ("threats: [{id: X, stride: S, applies_to: role, title: t, mitigated_by: [never], colour: red}]", "unknown field"),
    ("decisions: {A@b: {status: accepted}}", "reason"),
    ("threats: [", "not valid YAML"),
])
def test_bad_user_rule_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ThreatRuleError) as e:
        load_threat_file(f)
    assert "bad.yaml" in str(e.value) and message.lower() in str(e.value).lower()


def test_shipped_rules_reference_known_evidence_and_rules() -> None:
    for r in shipped_rules().threats:
        assert set(r.mitigated_by) <= set(EVIDENCE)
        for v in r.verified_by:
            if v.isupper() and v.rstrip("0123456789") != v:
                assert get_rule(v) is not None, f"{r.id} cites unknown rule {v}"


def test_supervisor_fault_is_safe_only_with_fail_safe_safety_partitions(pump_model: Model) -> None:
    t = by_id(pump_model)
    assert [str(r) for r in t["SUPERVISOR-FAULT@" + pump_model.device.name].mitigated_by] == [  # type: ignore[attr-defined]
        "partition:pump_control", "partition:safety_monitor"]
    parts = {n: replace(p, restart="always") if p.criticality == "safety" else p
             for n, p in pump_model.partitions.items()}
    t = by_id(replace(pump_model, partitions=parts))
    assert t["SUPERVISOR-FAULT@" + pump_model.device.name].status == "open"  # type: ignore[attr-defined]
    assert "SUPERVISOR-ABUSE@network" in t and "SUPERVISOR-ABUSE@safety_monitor" not in t
