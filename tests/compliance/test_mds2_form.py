"""The MDS2 item list against the HN 1-2019 form's numbering, and derive paths the pump does not take.

FORM_IDS lists the question ids of the HN 1-2019 form in the form's order (ids only, checked against
public filled-in forms; all 240, sub-questions included); the wording in septum/data/mds2.yaml is Septum's
own paraphrase.
"""

from __future__ import annotations

import re

import msgspec

from septum.compliance.mds2 import DERIVE, answers, sections
from septum.knowledge.shipped import shipped
from septum.model import schema as s

FORM_IDS: dict[str, str] = {
    "DOC": "1 2 3 4 5 6 7 8 9 10 11 11.1 11.2 11.3 11.4",
    "MPII": "1 2 2.1 2.2 2.3 2.4 2.5 2.6 2.7 2.8 2.9 3 3.1 3.2 3.3 3.4 3.5 3.6 3.7 3.8 3.9 3.10",
    "ALOF": "1 2",
    "AUDT": "1 1.1 1.2 2 2.1 2.2 2.3 2.4 2.5 2.6 2.7 2.8 2.8.1 2.8.2 2.9 2.10 2.11 3 4 4.1 4.1.1 5 5.1 5.2 5.3 5.4 "
            "6 7 7.1 8",
    "AUTH": "1 1.1 1.2 1.3 2 3 4 5",
    "CSUP": "1 2 2.1 2.2 2.3 2.4 3 3.1 3.2 3.3 3.4 4 4.1 4.2 4.3 4.4 5 5.1 5.2 5.3 5.4 6 6.1 6.2 6.3 6.4 7 8 9 10 "
            "10.1 11 11.1 11.2",
    "DIDT": "1 1.1",
    "DTBK": "1 2 3 4 5 6",
    "EMRG": "1",
    "IGAU": "1 2",
    "MLDP": "1 2 2.1 2.2 2.3 2.4 2.5 2.6 2.7 2.8 3 4 5 5.1 5.2",
    "NAUT": "1 2 2.1 3",
    "CONN": "1 1.1 1.1.1 1.1.2 1.1.3 1.1.4 1.2 1.2.1 1.2.2 1.2.3 1.2.4 2 3 4 5 6 7 7.1 8",
    "PAUT": "1 1.1 2 3 4 5 6 7 8 9 10 11 12 13 14 14.1",
    "PLOK": "1 2 3 4",
    "RDMP": "1 2 3 4",
    "SBOM": "1 2 2.1 2.2 2.3 2.4 3 4",
    "SAHD": "1 2 3 3.1 3.2 4 5 5.1 6 6.1 6.2 7 8 9 10 11 12 13 14 14.1 15 16",
    "SGUD": "1 2 3 3.1 4",
    "STCF": "1 1.1 1.2 1.3 2 3 4",
    "TXCF": "1 2 2.1 3 4 5",
    "TXIG": "1 2",
    "RMOT": "1 1.1 1.2 1.3 2 3",
}
FORM_ORDER = [f"{sec}-{n}" for sec, nums in FORM_IDS.items() for n in nums.split()]
ID = re.compile(r"^([A-Z]{3,4})-([1-9]\d*(?:\.[1-9]\d*)*)$")


def _key(qid: str) -> tuple[int, tuple[int, ...]]:
    sec, num = qid.split("-", 1)
    return list(FORM_IDS).index(sec), tuple(int(x) for x in num.split("."))


def test_form_order_list_is_itself_sorted() -> None:
    assert FORM_ORDER == sorted(FORM_ORDER, key=_key) and len(set(FORM_ORDER)) == len(FORM_ORDER)


def test_ids_are_unique_well_formed_in_their_section_and_in_form_order() -> None:
    data = shipped("mds2.yaml")
    assert list(data["sections"]) == list(FORM_IDS), "the 23 sections, in the form's order"
    ids = [item["id"] for item in data["items"]]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for qid in ids:
        m = ID.match(qid)
        assert m and m.group(1) in FORM_IDS, qid
    unknown = [q for q in ids if q not in FORM_ORDER]
    assert unknown == [], f"ids the form does not have: {unknown}"
    assert ids == sorted(ids, key=FORM_ORDER.index), "items must follow the form's order"
    missing = [q for q in FORM_ORDER if q not in ids]
    assert missing == [], f"every question of the form is listed, sub-questions included: {missing}"


def test_items_name_existing_derive_functions_and_every_function_is_used() -> None:
    items = shipped("mds2.yaml")["items"]
    used = {item["derive"] for item in items if "derive" in item}
    assert used <= set(DERIVE), used - set(DERIVE)
    assert set(DERIVE) <= used, f"unused derive functions: {set(DERIVE) - used}"
    assert all(0 < len(item["q"]) <= 100 for item in items), "paraphrases stay short"
    assert set(sections()) == {i["id"].split("-", 1)[0] for i in items}


def _with(model: s.Model, **interfaces: s.Interface) -> s.Model:
    return msgspec.structs.replace(model, interfaces={**model.interfaces, **interfaces})


def test_radio_interfaces(pump_model: s.Model) -> None:
    wifi = _with(pump_model, wlan=s.Interface(kind="wireless", external=True, protocol="wifi-802.11ax",
                                              encryption="tls1.3", carries=("phi",)))
    got = {a.id: (a.answer, a.basis) for a in answers(wifi)}
    assert got["MPII-3.6"] == ("Yes", "derived") and got["CONN-1.1"] == ("Yes", "derived")
    assert got["CONN-1.1.1"] == ("Yes", "derived") and got["CONN-1.1.3"] == ("No", "derived")
    radio = _with(pump_model, lora=s.Interface(kind="wireless", external=True, protocol="lora"))
    got = {a.id: (a.answer, a.basis) for a in answers(radio)}
    assert got["CONN-1.1.1"] == ("See note", "needs confirmation")
    assert got["CONN-1.1.3"] == ("See note", "needs confirmation")
    assert got["MPII-3.6"] == ("No", "derived")


def test_api_around_auth_and_no_update_service(pump_model: s.Model) -> None:
    extra = s.Channel(name="orders_direct", src="network", dst="pump_control", message="InfusionOrder")
    bypass = msgspec.structs.replace(pump_model, channels=(*pump_model.channels, extra))
    got = {a.id: a for a in answers(bypass)}
    assert got["AUTH-4"].answer == "No" and "orders_direct" in got["AUTH-4"].note
    parts = {n: p for n, p in pump_model.partitions.items() if p.service != "update"}
    chans = tuple(c for c in pump_model.channels if "update" not in (c.src, c.dst))
    no_update = msgspec.structs.replace(pump_model, partitions=parts, channels=chans)
    got = {a.id: (a.answer, a.basis) for a in answers(no_update)}
    assert got["CSUP-5.3"] == ("No", "derived") and got["RMOT-3"] == ("No", "derived")
    assert got["CSUP-5.4"] == ("N/A", "derived") and got["AUDT-2.10"] == ("N/A", "derived")
