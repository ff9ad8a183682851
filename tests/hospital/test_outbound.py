"""Events out: ORU^R01/ORU^R42 and FHIR resources, buffered on disk while the hospital is unreachable and
delivered in order when it returns; the bound drops the oldest and says so."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.observation import Observation
from hospital_client.listener import EventListener
from septum_pump.hospital import hl7_orders
from septum_pump.hospital.buffer import EventBuffer
from septum_pump.hospital.outbound import fhir_event, hl7_event


def event(i: int, kind: str = "status") -> dict[str, object]:
    return {"kind": kind, "order_id": f"ORD-{i}", "text": f"event {i} | with ^ delimiters", "value": float(i),
            "unit": "mL/h", "at_ms": 1_700_000_000_000 + i}


def test_oru_messages_parse_and_carry_the_event() -> None:
    r01 = hl7_orders.parse(hl7_event(event(1), control_id="C1", timestamp="20240101000000+0000"))
    r42 = hl7_orders.parse(hl7_event(event(2, "alarm"), control_id="C2", timestamp="20240101000000+0000"))
    assert hl7_orders.component(r01.segments[0][1][9], 2) == "R01"
    assert hl7_orders.component(r42.segments[0][1][9], 2) == "R42"
    obx = r01.all("OBX")
    assert hl7_orders.component(obx[1][5], 1) == "event 1 | with ^ delimiters"  # escaped, then unescaped
    assert hl7_orders.component(r01.one("OBR")[2], 1) == "ORD-1"


def test_fhir_events_are_valid_r4_resources() -> None:
    rtype, res = fhir_event(event(3, "administration"))
    assert rtype == "MedicationAdministration"
    MedicationAdministration.model_validate(res)
    rtype, res = fhir_event(event(4, "alarm"))
    assert rtype == "Observation"
    assert Observation.model_validate(res).code.coding[0].code == "alarm"


def test_buffer_keeps_order_across_restart_and_drops_oldest_at_bound(tmp_path: Path) -> None:
    buf = EventBuffer(tmp_path, max_events=3)
    dropped = [d for i in range(5) for d in buf.append(event(i))]
    assert [d["order_id"] for d in dropped] == ["ORD-0", "ORD-1"]
    again = EventBuffer(tmp_path, max_events=3)  # a restarted partition finds them on disk
    got = []
    while (item := again.peek(timeout=0)) is not None:
        got.append(item[1]["order_id"])
        again.remove(item[0])
    assert got == ["ORD-2", "ORD-3", "ORD-4"]


def test_bound_hit_in_the_link_is_audited(make_link) -> None:
    h = make_link(event_buffer_max=2)  # no outbound target provisioned: everything stays buffered
    for i in range(3):
        h.link.on_event(event(i))
    _, severity, detail = h.audit.wait_for(lambda r: r[0] == "event_dropped")
    assert severity == "alert" and "at_ms=1700000000000" in detail
    assert len(h.link.buffer) == 2


@pytest.mark.parametrize("mode", ["mllp", "fhir"])
def test_events_are_buffered_while_unreachable_and_sent_in_order(make_link, hospital_dir: Path, mode: str
                                                                 ) -> None:
    files = (hospital_dir / "hospital-ca.pem", hospital_dir / "listener.pem", hospital_dir / "listener.key")
    probe = EventListener(mode, *files)
    port = probe.port
    probe.close()  # the hospital is down
    h = make_link(outbound={"mode": mode, "host": "127.0.0.1", "port": port})
    for i in range(5):
        h.link.on_event(event(i, "alarm" if i == 2 else "status"))
    h.audit.wait_for(lambda r: r[0] == "hospital_unreachable")
    assert len(h.link.buffer) == 5  # nothing lost while down
    listener = EventListener(mode, *files, port=port)  # the hospital comes back on the same address
    try:
        got = []
        for _ in range(5):
            try:
                got.append(listener.wait(timeout=15))
            except queue.Empty:
                pytest.fail(f"only {len(got)} of 5 events arrived")
        h.audit.wait_for(lambda r: r[0] == "hospital_reachable")
        if mode == "mllp":
            order_ids = [seg[2] for e in got for seg in e["segments"] if seg[0] == "OBR"]
            assert [e["type"].split("^")[1] for e in got] == ["R01", "R01", "R42", "R01", "R01"]
        else:
            order_ids = [e["resource"]["basedOn"][0]["identifier"]["value"] for e in got]
        assert order_ids == [f"ORD-{i}" for i in range(5)]
    finally:
        listener.close()
