"""MDS2 answers follow the model: every derived answer of the pump changes (or becomes "needs
confirmation") when the model fact it rests on is flipped, and the answers the issue found wrong are right."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from septum.compliance import mds2
from septum.model import loads

PUMP = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump" / "model.yaml"
BASE: dict[str, Any] = yaml.safe_load(PUMP.read_text())

# derived answers that no model can change, and why
CONSTANT = {
    "DOC-10": "septum report always draws the connection and data-flow views",
    "CSUP-1": "every model has partitions, and every partition is software",
    "MLDP-1": "every model has partitions, and every partition is software",
}


def answers(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    model, _ = loads(yaml.safe_dump(data, sort_keys=False), "flipped.yaml")
    return {a.id: (a.answer, a.basis) for a in mds2.answers(model)}


def _iface(d: dict[str, Any], name: str, owner: str, **spec: Any) -> None:
    d["interfaces"][name] = {"external": True, **spec}
    d["partitions"][owner].setdefault("owns", []).append(name)


def _no_break_glass(d: dict[str, Any]) -> None:
    for a in d["actions"].values():
        if a.pop("break_glass", None):
            a["allowed"] = ["clinician"]


def _drop_channels(pred: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__("channels", [c for c in d["channels"] if not pred(c)])


TLS = {"authentication": "mutual-tls", "encryption": "tls1.3", "carries": ["phi"]}
FLIPS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ui may use the network": lambda d: d["partitions"]["ui"].setdefault("allow", {}).update(net=True),
    "ui loses its audit channel": _drop_channels(lambda c: c["from"] == "ui" and c["to"] == "audit"),
    "auth loses its audit channel": _drop_channels(lambda c: c["from"] == "auth" and c["to"] == "audit"),
    "no audit service": lambda d: d["partitions"]["audit"].pop("service"),
    "no auth service": lambda d: d["partitions"]["auth"].pop("service"),
    "https without mutual TLS": lambda d: d["interfaces"]["hospital_https"].update(authentication="bearer-token"),
    "weak TLS": lambda d: d["interfaces"]["hospital_https"].update(encryption="tls1.0"),
    "no phi anywhere": lambda d: [i.update(carries=[c for c in i.get("carries", []) if c != "phi"])
                                  for i in d["interfaces"].values()],
    "display shows phi": lambda d: d["interfaces"]["display"].update(carries=["phi"]),
    "wifi": lambda d: _iface(d, "wlan", "network", kind="wireless", protocol="wifi", port=443, **TLS),
    "zigbee": lambda d: _iface(d, "zb", "network", kind="wireless", protocol="zigbee", **TLS),
    "bluetooth": lambda d: _iface(d, "bt", "network", kind="bluetooth", **TLS),
    "usb and storage": lambda d: (_iface(d, "usb", "ui", kind="usb", authentication="biomed-badge", carries=["phi"]),
                                  _iface(d, "sd", "ui", kind="storage", authentication="biomed-badge",
                                         carries=["phi"])),
    "serial port": lambda d: _iface(d, "rs232", "ui", kind="serial", authentication="biomed-badge", carries=["phi"]),
    "service port enabled": lambda d: d["interfaces"]["service_port"].update(enabled=True),
    "no network": lambda d: [i.update(enabled=False) for i in d["interfaces"].values() if i["kind"] == "network"],
    "network without ports": lambda d: [i.pop("port", None) for i in d["interfaces"].values()
                                        if i["kind"] == "network"],
    "no break glass": _no_break_glass,
    "update does not attest": lambda d: d["partitions"]["update"].update(
        mitigation=[x for x in d["partitions"]["update"].get("mitigation", []) if x != "attesting"]),
    "no update service": lambda d: d["partitions"]["update"].pop("service"),
    "no manufacturer or description": lambda d: (d["device"].pop("manufacturer", None),
                                                 d["device"].pop("description", None)),
    "another version": lambda d: d["device"].update(version="9.9"),
    "no components": lambda d: d.pop("components", None),
    "no hardware": lambda d: [i.update(kind="display") for i in d["interfaces"].values()
                              if i["kind"] in ("actuator", "sensor")],
    "only machines log in": lambda d: [r.update(kind="machine") for r in d["roles"].values()],
    "one role for everything": lambda d: _only_clinician(d),
    "biometric login": lambda d: d["roles"]["clinician"].update(authenticates_with=["pin", "biometric"]),
    "short session timeout": lambda d: d["partitions"]["auth"].setdefault("config", {}).update(session_timeout_s=60),
}


def _only_clinician(d: dict[str, Any]) -> None:
    keep = {"clinician"}
    d["roles"] = {k: v for k, v in d["roles"].items() if k in keep}
    for a in d["actions"].values():
        if a.get("allowed"):
            a["allowed"] = ["clinician"]
        if a.get("requires_confirmation_by"):
            a["requires_confirmation_by"] = "clinician"


def test_every_derived_answer_follows_a_model_fact() -> None:
    base = answers(BASE)
    moved: dict[str, list[str]] = {k: [] for k in base}
    for name, flip in FLIPS.items():
        data = copy.deepcopy(BASE)
        flip(data)
        for item, value in answers(data).items():
            if base.get(item) != value:
                moved[item].append(name)
    derived = [item for item, (_answer, basis) in base.items() if basis == "derived"]
    stuck = sorted(item for item in derived if not moved[item] and item not in CONSTANT)
    assert stuck == [], f"derived answers that no flipped model fact changes: {stuck}"
    assert all(not moved[item] for item in CONSTANT), {i: moved[i] for i in CONSTANT if moved[i]}


def _one(data: dict[str, Any], item: str) -> mds2.Answer:
    model, _ = loads(yaml.safe_dump(data, sort_keys=False), "m.yaml")
    (a,) = [a for a in mds2.answers(model) if a.id == item]
    return a


def test_naut2_is_no_when_a_partition_without_a_network_interface_may_use_the_network() -> None:
    assert (_one(BASE, "NAUT-2").answer, _one(BASE, "NAUT-2").basis) == ("Yes", "derived")
    data = copy.deepcopy(BASE)
    data["partitions"]["ui"].setdefault("allow", {})["net"] = True
    a = _one(data, "NAUT-2")
    assert (a.answer, a.basis) == ("No", "derived") and "partition:ui" in a.derived_from and "ui" in a.note


def test_events_audited_is_not_a_derived_yes_while_a_partition_has_no_audit_channel() -> None:
    data = copy.deepcopy(BASE)
    data["channels"] = [c for c in data["channels"] if not (c["from"] == "ui" and c["to"] == "audit")]
    a = _one(data, "AUDT-2")
    assert a.basis == "needs confirmation" and a.answer != "Yes" and "ui" in a.note


def test_mldp1_asks_what_the_form_asks() -> None:
    a = _one(BASE, "MLDP-1")
    assert a.question == "Does the device host executable software?" and a.answer == "Yes"


def _flipped(*names: str) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for name in names:
        FLIPS[name](data)
    return data


def test_sub_questions_say_where_patient_data_is_held() -> None:
    a = _one(BASE, "MPII-2.1")
    assert (a.answer, a.basis) == ("Yes", "derived") and a.derived_from == ("partition:network",)
    assert "pump_control" in a.note  # passed on by channels: possibly held there too
    usb = _one(_flipped("usb and storage"), "MPII-2.1")
    assert "partition:ui" in usb.derived_from
    assert _one(_flipped("no phi anywhere"), "MPII-2.1").answer == "No"
    stored = _one(BASE, "MPII-2.2")
    assert stored.basis == "needs confirmation" and "network (64 MB)" in stored.note


def test_audit_event_sub_questions_follow_the_audit_channels() -> None:
    assert _one(BASE, "AUDT-2.7").answer == "N/A"  # no removable media in the pump
    media = _one(_flipped("usb and storage"), "AUDT-2.7")
    assert (media.answer, media.basis) == ("Yes", "derived")
    assert _one(_flipped("usb and storage", "ui loses its audit channel"), "AUDT-2.7").answer == "No"
    assert _one(BASE, "AUDT-2.8.1").answer == "N/A"  # the service port is disabled in production
    assert _one(_flipped("service port enabled"), "AUDT-2.8.1").answer == "Yes"  # auth serves it and audits
    assert _one(_flipped("service port enabled", "auth loses its audit channel"), "AUDT-2.8.1").answer == "No"


def test_sub_questions_that_apply_only_when_the_parent_says_so() -> None:
    assert _one(BASE, "TXCF-2.1").answer == "N/A"  # encrypted by default: nothing to turn on
    assert _one(_flipped("weak TLS"), "TXCF-2.1").basis == "needs confirmation"
    assert all(_one(BASE, f"DOC-11.{n}").answer == "N/A" for n in (1, 4))  # hardware: not SaMD
    assert _one(_flipped("no hardware"), "DOC-11.1").basis == "needs confirmation"
    assert _one(_flipped("ui may use the network"), "NAUT-2.1").answer == "No"
