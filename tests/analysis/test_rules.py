"""Every rule: a mutation of the clean base model that triggers it (with the expected witness), and the
clean base model, which triggers nothing."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from septum.analysis import Finding, Report, all_rules, check
from septum.model import loads

BASE_TEXT = Path(__file__).with_name("base_model.yaml").read_text()
BASE: dict[str, Any] = yaml.safe_load(BASE_TEXT)
TODAY = dt.date(2026, 6, 1)


def run(mutate: Callable[[dict[str, Any]], None] | None = None) -> Report:
    data = copy.deepcopy(BASE)
    if mutate:
        mutate(data)
    model, source = loads(yaml.safe_dump(data, sort_keys=False), "mutated.yaml")
    return check(model, source, today=TODAY)


def only(report: Report, rule: str) -> list[Finding]:
    return [f for f in report.findings if f.rule == rule]


def path_names(f: Finding) -> list[str]:
    return [step.node.name for step in f.path]


def add_channel(data: dict[str, Any], **ch: Any) -> None:
    ch.setdefault("rate", "10/s")
    data["channels"].append(ch)


def test_base_model_is_clean() -> None:
    assert run().findings == []


def test_every_rule_has_text() -> None:
    for r in all_rules():
        assert r.title and r.rationale and r.fix, r.id
        assert r.severity in ("error", "warning", "note")


# ------------------------------------------------------------------------------------------------- ISO


def test_iso001_unguarded_path_with_witness() -> None:
    rep = run(lambda d: add_channel(d, name="dbg", **{"from": "network", "to": "pump_control"}, message="Command"))
    (f,) = only(rep, "ISO001")
    assert path_names(f) == ["hospital_net", "network", "pump_control"]
    assert [s.channel for s in f.path] == [None, None, "dbg"]
    assert f.severity == "error" and f.blocking


def test_iso001_guard_mediates() -> None:
    # the same flow through a guard is mediated
    def m(d: dict[str, Any]) -> None:
        d["partitions"]["filter"] = {"criticality": "low", "mitigation": ["filtering"]}
        add_channel(d, name="a", **{"from": "network", "to": "filter"}, message="Order")
        add_channel(d, name="b", **{"from": "filter", "to": "pump_control"}, message="Command")

    assert only(run(m), "ISO001") == []


def test_iso002_debug_channel_and_port() -> None:
    def m(d: dict[str, Any]) -> None:
        d["interfaces"]["jtag"] = {"kind": "debug", "external": True, "authentication": "none"}
        d["partitions"]["ui"]["owns"].append("jtag")
        add_channel(d, name="console", **{"from": "ui", "to": "audit"}, message="Raw", debug=True)

    found = only(run(m), "ISO002")
    assert {f.primary.name for f in found} == {"jtag", "console"}
    assert all(f.severity == "error" for f in found)


def test_iso002_is_a_note_in_debug_profile() -> None:
    def m(d: dict[str, Any]) -> None:
        d["device"]["profile"] = "debug"
        add_channel(d, name="console", **{"from": "ui", "to": "audit"}, message="Raw", debug=True)

    (f,) = only(run(m), "ISO002")
    assert f.severity == "note"


def test_iso003_backward_channel_into_safety() -> None:
    rep = run(lambda d: add_channel(d, name="shortcut", **{"from": "ui", "to": "safety_monitor"}, message="Motor"))
    (f,) = only(rep, "ISO003")
    assert [str(e) for e in f.elements] == ["channel:shortcut", "partition:ui", "partition:safety_monitor"]


def test_iso004_shared_state() -> None:
    def m(d: dict[str, Any]) -> None:
        d["shared"] = {"druglib": {"kind": "file", "writers": ["network"], "readers": ["safety_monitor"]}}

    (f,) = only(run(m), "ISO004")
    assert {str(e) for e in f.elements} == {"shared:druglib", "partition:network", "partition:safety_monitor"}

    def fixed(d: dict[str, Any]) -> None:
        m(d)
        d["shared"]["druglib"]["channel"] = "orders_in"

    assert only(run(fixed), "ISO004") == []


# ------------------------------------------------------------------------------------------------- MED


def test_med001_unauthenticated_interface() -> None:
    rep = run(lambda d: d["interfaces"]["hospital_net"].update(authentication="none"))
    (f,) = only(rep, "MED001")
    assert f.primary.name == "hospital_net"
    rep = run(lambda d: d["interfaces"]["keypad"].update(authentication="physical-presence-only"))
    assert only(rep, "MED001") == []


def test_med002_ui_around_auth() -> None:
    rep = run(lambda d: add_channel(d, name="direct", **{"from": "ui", "to": "pump_control"}, message="Command"))
    found = {f.elements[0].name: f for f in only(rep, "MED002")}
    assert set(found) == {"program_infusion"}
    assert path_names(found["program_infusion"]) == ["keypad", "ui", "pump_control"]


def test_med002_no_auth_service_at_all() -> None:
    def m(d: dict[str, Any]) -> None:
        del d["partitions"]["auth"]["service"]
        d["partitions"]["auth"]["mitigation"] = ["filtering"]

    names = {f.elements[0].name for f in only(run(m), "MED002")}
    assert names == {"program_infusion", "accept_remote_order"}


def test_med003_guard_bypassed() -> None:
    rep = run(lambda d: add_channel(d, name="around", **{"from": "network", "to": "pump_control"}, message="Command"))
    (f,) = only(rep, "MED003")
    assert f.elements[0].name == "auth" and f.elements[1].name == "pump_control"
    assert path_names(f) == ["hospital_net", "network", "pump_control"]


def test_med004_break_glass_without_audit() -> None:
    rep = run(lambda d: d["channels"].remove(next(c for c in d["channels"] if c["name"] == "audit_pc")))
    (f,) = only(rep, "MED004")
    assert "audit" in f.message


def test_med004_break_glass_without_alert() -> None:
    rep = run(lambda d: d["channels"].remove(next(c for c in d["channels"] if c["name"] == "status")))
    (f,) = only(rep, "MED004")
    assert "alert" in f.message


def test_med005_monitor_reset_from_monitored() -> None:
    rep = run(lambda d: add_channel(d, name="reset", **{"from": "pump_control", "to": "safety_monitor"},
                                    message="Command", purpose="reset"))
    (f,) = only(rep, "MED005")
    assert path_names(f) == ["pump_control", "safety_monitor"]
    # through the auth service the reset is mediated
    rep = run(lambda d: add_channel(d, name="reset", **{"from": "auth", "to": "safety_monitor"},
                                    message="Command", purpose="reset"))
    assert only(rep, "MED005") == []


def _simplex(d: dict[str, Any]) -> None:
    """The base model's pump_control made a `high` controller: the Simplex pattern, which is clean."""
    d["partitions"]["pump_control"]["criticality"] = "high"


def test_iso003_simplex_monitor_mediates_its_controller() -> None:
    rep = run(_simplex)
    assert rep.findings == []


def test_iso003_fix_text_does_not_advise_raising_criticality() -> None:
    from septum.analysis import get_rule

    rule = get_rule("ISO003")
    assert rule is not None and "Do not raise the sender's criticality" in rule.fix


def test_iso003_simplex_monitor_not_declared() -> None:
    def m(d: dict[str, Any]) -> None:
        _simplex(d)
        d["partitions"]["safety_monitor"]["monitors"] = []

    (f,) = only(run(m), "ISO003")
    assert "not declared a monitor of 'pump_control'" in f.message


def test_med006_controller_owns_an_actuator() -> None:
    def m(d: dict[str, Any]) -> None:
        _simplex(d)
        d["interfaces"]["boost"] = {"kind": "actuator"}
        d["partitions"]["pump_control"]["owns"] = ["boost"]

    rep = run(m)
    (f,) = only(rep, "MED006")
    assert "owns actuator 'boost'" in f.message
    (i,) = only(rep, "ISO003")
    assert "does not mediate" in i.message


def test_med006_controller_reaches_another_actuator_owner() -> None:
    def m(d: dict[str, Any]) -> None:
        _simplex(d)
        d["interfaces"]["boost"] = {"kind": "actuator"}
        d["partitions"]["driver"] = {"criticality": "high", "owns": ["boost"], "heartbeat_ms": 100}
        add_channel(d, name="boost_cmd", **{"from": "ui", "to": "driver"}, message="Motor")

    rep = run(m)
    (f,) = only(rep, "MED006")
    assert path_names(f) == ["pump_control", "ui", "driver"]
    assert len(only(rep, "ISO003")) == 1


def test_med006_monitor_without_gating() -> None:
    def m(d: dict[str, Any]) -> None:
        _simplex(d)
        d["partitions"]["safety_monitor"]["mitigation"] = ["monitoring"]

    rep = run(m)
    (f,) = only(rep, "MED006")
    assert "motor_cmd" in f.message and "no gating" in f.message
    assert len(only(rep, "ISO003")) == 1


def test_med006_watchdog_of_heartbeats_needs_no_gating() -> None:
    def m(d: dict[str, Any]) -> None:
        d["partitions"]["safety_monitor"]["mitigation"] = ["monitoring"]
        d["channels"] = [c for c in d["channels"] if c["name"] != "motor_cmd"]
        add_channel(d, name="beat", **{"from": "pump_control", "to": "safety_monitor"}, message="Heartbeat",
                    purpose="heartbeat")

    assert only(run(m), "MED006") == []


def test_iso003_simplex_with_reachable_reset() -> None:
    def m(d: dict[str, Any]) -> None:
        _simplex(d)
        add_channel(d, name="reset", **{"from": "pump_control", "to": "safety_monitor"}, message="Command",
                    purpose="reset")

    rep = run(m)
    assert {f.rule for f in rep.findings} == {"ISO003", "MED005"}


# ------------------------------------------------------------------------------------------------ LIVE


def test_live001_monitored_partition_without_heartbeat() -> None:
    def m(d: dict[str, Any]) -> None:
        _simplex(d)
        del d["partitions"]["pump_control"]["heartbeat_ms"]

    (f,) = only(run(m), "LIVE001")
    assert f.severity == "error" and "monitored by 'safety_monitor'" in f.message


def test_live001_unmonitored_safety_partition_is_a_warning() -> None:
    (f,) = only(run(lambda d: d["partitions"]["safety_monitor"].pop("heartbeat_ms")), "LIVE001")
    assert f.severity == "warning" and "safety_monitor" in f.message


def test_live002_heartbeat_slower_than_default_tolerance() -> None:
    # pump_control runs every 50 ms: by default its monitor tolerates 4 periods = 200 ms of silence
    assert only(run(lambda d: d["partitions"]["pump_control"].update(heartbeat_ms=100)), "LIVE002") == []
    (f,) = only(run(lambda d: d["partitions"]["pump_control"].update(heartbeat_ms=101)), "LIVE002")
    assert "202 ms" in f.message and "200 ms" in f.message


def test_live002_declared_tolerance() -> None:
    def m(d: dict[str, Any], key: str, value: Any) -> None:
        d["partitions"]["safety_monitor"]["config"] = {key: value}

    (f,) = only(run(lambda d: m(d, "max_silence_ms", 150)), "LIVE002")
    assert "150 ms" in f.message
    assert only(run(lambda d: m(d, "max_silence_ms.pump_control", 1000)), "LIVE002") == []
    (bad,) = only(run(lambda d: m(d, "max_silence_ms", "soon")), "LIVE002")
    assert "not a positive number" in bad.message


# ------------------------------------------------------------------------------------------------ PRIV


def test_priv001_unused_interface() -> None:
    def m(d: dict[str, Any]) -> None:
        d["interfaces"]["usb"] = {"kind": "usb", "external": True, "authentication": "biomed-badge"}
        d["partitions"]["ui"]["owns"].append("usb")

    (f,) = only(run(m), "PRIV001")
    assert [str(e) for e in f.elements] == ["partition:ui", "interface:usb"]


def test_priv002_safety_with_network() -> None:
    (f,) = only(run(lambda d: d["partitions"]["pump_control"].update(allow={"net": True})), "PRIV002")
    assert f.primary.name == "pump_control"


def test_priv003_unbounded_number_and_raw() -> None:
    def m(d: dict[str, Any]) -> None:
        d["messages"]["Motor"]["rate_ml_h"] = {"type": "float", "min": 0}
        add_channel(d, name="blob", **{"from": "ui", "to": "audit"}, message="Raw")

    found = only(run(m), "PRIV003")
    assert {f.primary.name for f in found} == {"Motor", "blob"}


def test_priv004_unused_capability() -> None:
    def m(d: dict[str, Any]) -> None:
        d["partitions"]["ui"]["allow"] = {"files": {"/var/lib/fonts": "r"}}

    (f,) = only(run(m), "PRIV004")
    assert "file:/var/lib/fonts" in f.message

    def fixed(d: dict[str, Any]) -> None:
        m(d)
        d["partitions"]["ui"]["functions"] = {"render": {"uses": ["file:/var/lib/fonts"]}}

    assert only(run(fixed), "PRIV004") == []


def test_priv005_unlimited_channel_upward() -> None:
    def m(d: dict[str, Any]) -> None:
        next(c for c in d["channels"] if c["name"] == "ui_requests").pop("rate")

    (f,) = only(run(m), "PRIV005")
    assert f.primary.name == "ui_requests"


# ------------------------------------------------------------------------------------------------ TIME


def test_time001_budget_over_period_and_overload() -> None:
    rep = run(lambda d: d["partitions"]["ui"].update(resources={"period_ms": 10, "budget_ms": 20}))
    msgs = [f.message for f in only(rep, "TIME001")]
    assert any("exceeds its period" in m for m in msgs)
    assert any("of the processor" in m for m in msgs)


def test_time002_monitor_slower_than_control() -> None:
    rep = run(lambda d: d["partitions"]["safety_monitor"]["resources"].update(period_ms=200, budget_ms=2))
    (f,) = only(rep, "TIME002")
    assert [e.name for e in f.elements] == ["safety_monitor", "pump_control"]


# ------------------------------------------------------------------------------------- CRYPTO / CRED


@pytest.mark.parametrize("enc", ["none", "tls1.0", "SSLv3"])
def test_crypto001_weak_or_missing_encryption(enc: str) -> None:
    (f,) = [f for f in only(run(lambda d: d["interfaces"]["hospital_net"].update(encryption=enc)), "CRYPTO001")
            if f.severity == "error"]
    assert f.primary.name == "hospital_net"


def test_crypto001_current_tls_is_fine() -> None:
    assert only(run(lambda d: d["interfaces"]["hospital_net"].update(encryption="tls1.2")), "CRYPTO001") == []


def test_cred001_literal_secret() -> None:
    rep = run(lambda d: d["partitions"]["network"].update(config={"admin_password": "1234"}))
    (f,) = only(rep, "CRED001")
    assert f.primary.name == "network"
    rep = run(lambda d: d["partitions"]["network"].update(config={"admin_password": "provisioned:admin"}))
    assert only(rep, "CRED001") == []


def test_cred001_private_key_anywhere() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB..."
    rep = run(lambda d: d["interfaces"]["display"].update(description=pem))
    assert len(only(rep, "CRED001")) == 1


# ----------------------------------------------------------------------------------------------- WAIVER


def test_waiver_applies_and_expires() -> None:
    def m(d: dict[str, Any], expires: str) -> None:
        d["interfaces"]["hospital_net"]["authentication"] = "none"
        d["waivers"] = [{"rule": "MED001", "element": "hospital_net", "reason": "bench only",
                         "by": "QA lead", "expires": expires}]

    rep = run(lambda d: m(d, "2027-01-01"))
    (f,) = only(rep, "MED001")
    assert f.waived and not f.blocking and f.waiver_by == "QA lead"
    assert rep.exit_code == 0

    rep = run(lambda d: m(d, "2026-01-01"))
    (f,) = only(rep, "MED001")
    assert not f.waived and f.blocking
    assert len(only(rep, "WAIVER001")) == 1


def test_unused_waiver_is_a_note() -> None:
    def m(d: dict[str, Any]) -> None:
        d["waivers"] = [{"rule": "ISO001", "element": "ui", "reason": "x", "by": "y", "expires": "2030-01-01"}]

    (f,) = only(run(m), "WAIVER002")
    assert f.severity == "note"


def test_waivers_of_rules_that_did_not_run_are_not_judged() -> None:
    def m(d: dict[str, Any]) -> None:
        d["interfaces"]["hospital_net"]["authentication"] = "none"
        d["waivers"] = [{"rule": "MED001", "element": "hospital_net", "reason": "bench only",
                         "by": "QA lead", "expires": "2027-01-01"},
                        {"rule": "VULN001", "element": "network", "reason": "not reachable",
                         "by": "QA lead", "expires": "2027-01-01"}]

    data = copy.deepcopy(BASE)
    m(data)
    model, source = loads(yaml.safe_dump(data, sort_keys=False), "mutated.yaml")
    # a full run without OSV data: VULN001 did not run, so its waiver is not stale
    full = check(model, source, today=TODAY)
    assert [f.rule for f in full.findings] == ["MED001"] and full.exit_code == 0
    # only ISO selected: neither waiver is judged
    assert check(model, source, today=TODAY, select=["ISO"]).findings == []
    # an expired waiver of a rule that did not run is not reported either
    data["waivers"][0]["expires"] = "2026-01-01"
    model, source = loads(yaml.safe_dump(data, sort_keys=False), "mutated.yaml")
    assert check(model, source, today=TODAY, select=["ISO"]).findings == []


def test_waiver_of_unknown_rule_is_reported_in_a_full_run() -> None:
    def m(d: dict[str, Any]) -> None:
        d["waivers"] = [{"rule": "ISO999", "element": "ui", "reason": "x", "by": "y", "expires": "2030-01-01"}]

    assert len(only(run(m), "WAIVER002")) == 1
