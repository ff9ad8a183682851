"""CTRL001-CTRL005 and VULN001 on the reference pump and on small variations of it."""

from __future__ import annotations

from msgspec.structs import replace

from septum.analysis import check
from septum.knowledge.osv import load_osv
from septum.model.schema import Component, Controls, Decision, Interface, Model

from .conftest import OSV_FIXTURES


def rules_of(model: Model, **options: object) -> list[tuple[str, str, str]]:
    report = check(model, select=["CTRL", "VULN"], options=dict(options))
    return [(f.rule, f.severity, str(f.elements[0])) for f in report.findings]


def with_decisions(model: Model, **changes: Decision | None) -> Model:
    assert model.controls is not None
    decisions = dict(model.controls.decisions)
    for cid, d in changes.items():
        cid = cid.lstrip("c")
        if d is None:
            decisions.pop(cid)
        else:
            decisions[cid] = d
    return replace(model, controls=Controls(catalogue=model.controls.catalogue, decisions=decisions))


def test_pump_has_no_ctrl_or_vuln_findings_without_osv(pump_model: Model) -> None:
    assert rules_of(pump_model) == []


def test_no_controls_section_means_no_ctrl_findings(pump_model: Model) -> None:
    assert rules_of(replace(pump_model, controls=None)) == []


def test_ctrl001_missing_decision(pump_model: Model) -> None:
    m = with_decisions(pump_model, c13=None, c2=None)
    assert rules_of(m) == [("CTRL001", "warning", "control:13"), ("CTRL001", "warning", "control:2")]


def test_ctrl002_email_reason_contradicted_by_smtp_interface(pump_model: Model) -> None:
    ifaces = dict(pump_model.interfaces)
    ifaces["mail"] = Interface(kind="network", protocol="smtp", port=587, authentication="password",
                               encryption="tls1.3")
    m = replace(pump_model, interfaces=ifaces)
    found = check(m, select=["CTRL002"]).findings
    assert [(f.rule, str(f.elements[0]), str(f.elements[1])) for f in found] == [
        ("CTRL002", "control:9", "interface:mail")]
    assert "e-mail" in found[0].message


def test_ctrl002_disabled_interface_does_not_contradict(pump_model: Model) -> None:
    ifaces = dict(pump_model.interfaces)
    ifaces["mail"] = Interface(kind="network", protocol="smtp", enabled=False)
    assert check(replace(pump_model, interfaces=ifaces), select=["CTRL002"]).findings == []


def test_ctrl002_wireless_and_removable_media(pump_model: Model) -> None:
    ifaces = dict(pump_model.interfaces)
    ifaces["wifi"] = Interface(kind="wireless", external=True, authentication="wpa3", encryption="wpa3")
    ifaces["usb"] = Interface(kind="usb", external=True, authentication="none")
    m = with_decisions(
        replace(pump_model, interfaces=ifaces),
        c12=Decision(status="not-applicable", reason="No wireless radio is fitted; wired only."),
        c10=Decision(status="not-applicable", reason="There is no USB port and no removable media."),
    )
    found = {(f.rule, str(f.elements[0]), str(f.elements[1])) for f in check(m, select=["CTRL002"]).findings}
    assert found == {("CTRL002", "control:12", "interface:wifi"), ("CTRL002", "control:10", "interface:usb")}


def test_ctrl002_browser_component(pump_model: Model) -> None:
    comps = dict(pump_model.components)
    comps["ui"] = (*comps["ui"], Component(name="QtWebEngine", version="6.7.0"))
    found = check(replace(pump_model, components=comps), select=["CTRL002"]).findings
    assert [str(e) for e in found[0].elements] == ["control:9", "component:ui/QtWebEngine"]


def test_ctrl003_implemented_without_elements(pump_model: Model) -> None:
    m = with_decisions(pump_model, c8=Decision(status="implemented", reason="we log"))
    assert rules_of(m) == [("CTRL003", "warning", "control:8")]


def test_ctrl004_not_applicable_without_reason(pump_model: Model) -> None:
    m = with_decisions(pump_model, c14=Decision(status="not-applicable"))
    assert rules_of(m) == [("CTRL004", "warning", "control:14")]


def test_ctrl005_unknown_control_and_catalogue(pump_model: Model) -> None:
    m = with_decisions(pump_model, c19=Decision(status="planned"))
    assert rules_of(m) == [("CTRL005", "warning", "control:19")]
    assert pump_model.controls is not None
    other = replace(pump_model, controls=Controls(catalogue="iso-27001", decisions=pump_model.controls.decisions))
    assert rules_of(other) == [("CTRL005", "warning", "control:iso-27001")]


def test_vuln001_severity_depends_on_reachability(pump_model: Model) -> None:
    db = load_osv(OSV_FIXTURES)
    found = rules_of(pump_model, osv=db)
    # cryptography < 44.0.1 in network, audit, update; hl7 0.4.5 in network; all reachable from outside
    assert sorted(found) == [
        ("VULN001", "error", "component:audit/cryptography"),
        ("VULN001", "error", "component:network/cryptography"),
        ("VULN001", "error", "component:network/hl7"),
        ("VULN001", "error", "component:update/cryptography"),
    ]
    # a partition no external interface reaches keeps the finding a warning
    parts = dict(pump_model.partitions)
    parts["offline_tool"] = replace(parts["ui"], owns=(), runs=None)
    comps = dict(pump_model.components)
    comps["offline_tool"] = (Component(name="hl7", version="0.4.1", purl="pkg:pypi/hl7@0.4.1"),)
    m = replace(pump_model, partitions=parts, components=comps)
    assert ("VULN001", "warning", "component:offline_tool/hl7") in rules_of(m, osv=db)


def test_vuln001_silent_without_osv_and_for_fixed_versions(pump_model: Model) -> None:
    comps = {p: tuple(replace(c, version="44.0.1") if c.name == "cryptography" else c for c in cs)
             for p, cs in pump_model.components.items()}
    found = rules_of(replace(pump_model, components=comps), osv=load_osv(OSV_FIXTURES))
    assert found == [("VULN001", "error", "component:network/hl7")]
