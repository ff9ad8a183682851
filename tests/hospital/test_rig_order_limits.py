"""Limits at intake on the real pump (every partition under the real runtime, real auth and audit): an order
is checked by pump_control against its verified drug library and care area when it arrives, and the
hospital gets pump_control's verdict in its answer, over HL7 v2 and FHIR:

* above a hard limit, unknown drug, wrong care area: refused at once (``MSA|AE`` + ERR naming the limit /
  422 OperationOutcome business-rule), audited as ``order_refused`` by pump_control, nothing pre-filled;
* above a soft limit: pre-filled, marked as needing an override (``MSA|AA`` + ERR severity W / 201 with a
  warning), and the pump's order display says so;
* within the limits: pre-filled (``MSA|AA`` / 201).

Before the check existed every one of these was answered AA / 201 "pre-filled"."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from septum.runtime.sandbox.probe import probe

PUMP = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump"
if str(PUMP) not in sys.path:
    sys.path.insert(0, str(PUMP))

from septum_pump.rig import PumpRig  # noqa: E402

# morphine-pca in adult-med-surg (the pump's care area): rate soft max 1, hard max 2 mg/h
WITHIN = dict(patient_id="MRN-42", drug="morphine-pca", concentration=1.0, concentration_unit="mg/mL", dose_rate=0.5,
              dose_unit="mg/h", vtbi_ml=50.0, care_area="adult-med-surg")
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "within": (WITHIN, "prefilled"),
    "soft": ({**WITHIN, "dose_rate": 1.5}, "needs_override"),
    "hard": ({**WITHIN, "dose_rate": 3.0}, "refused"),
    "unknown": ({**WITHIN, "drug": "unobtainium"}, "refused"),
    "area": ({**WITHIN, "care_area": "icu"}, "refused"),
}
WHY = {"hard": "hard maximum of 2 mg/h", "unknown": "unobtainium", "area": "set up for 'adult-med-surg'"}


@pytest.fixture(scope="module")
def rig() -> Iterator[PumpRig]:
    if not probe().root:
        print("SKIP: the pump runs partitions under their own uids and needs root")
        pytest.skip("needs root (partitions run under their own uids)")
    with PumpRig(time_scale=1.0, services="real") as r:
        yield r


@pytest.fixture(scope="module")
def client(rig: PumpRig) -> Iterator[Any]:
    from hospital_client.client import HospitalClient

    d = rig.hospital_dir
    assert d is not None
    c = HospitalClient("127.0.0.1", https_port=rig.ports["hospital_https"], mllp_port=rig.ports["hospital_mllp"],
                       ca=d / "hospital-ca.pem", cert=d / "client.pem", key=d / "client.key",
                       server_name="127.0.0.1", timeout=10.0)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def paced() -> None:
    # the model admits 5 orders/s on orders_in (a burst of 4 at the sender): these tests send one order
    # each, paced below that rate so that the rate limit (tested in test_rate_limit.py) never answers
    time.sleep(0.3)


def _segments(reply: str) -> dict[str, list[str]]:
    return {seg.split("|")[0]: seg.split("|") for seg in reply.split("\r") if seg}


def _refusal_audited(rig: PumpRig, oid: str, why: str) -> bool:
    def found() -> bool:
        # who (the hospital identity auth established), what (the order) and why (the limit)
        return any(r["event"] == "order_refused" and r["partition"] == "pump_control"
                   and f"order_id={oid}," in r["detail"] and why in r["detail"]
                   and "principal=hospital.example" in r["detail"] for r in rig.audit_records())
    return rig.wait_until(found, timeout=10)


@pytest.mark.parametrize("case", list(CASES))
def test_hl7_order_gets_the_pumps_verdict(rig: PumpRig, client: Any, case: str) -> None:
    fields, verdict = CASES[case]
    oid = f"ORD-RH-{case}"
    reply = client.send_hl7(client.order("hl7v2", order_id=oid, **fields))
    segs = _segments(reply)
    if verdict == "refused":
        assert segs["MSA"][1] == "AE", reply
        err = segs["ERR"]
        assert err[3].startswith("207^") and err[4] == "E" and WHY[case] in err[8], reply
        assert _refusal_audited(rig, oid, WHY[case])
        # nothing pre-filled: the display names it only as refused
        assert not any(oid in line and "refused" not in line for line in rig.display()), rig.display()
    elif verdict == "needs_override":
        assert segs["MSA"][1] == "AA" and segs["ERR"][4] == "W" and "soft maximum of 1 mg/h" in segs["ERR"][8], reply
        assert rig.wait_until(lambda: any(oid in line and "SOFT LIMIT" in line for line in rig.display()),
                              timeout=10), rig.display()
    else:
        assert segs["MSA"][1] == "AA" and "ERR" not in segs, reply


@pytest.mark.parametrize("case", list(CASES))
def test_fhir_order_gets_the_pumps_verdict(rig: PumpRig, client: Any, case: str) -> None:
    fields, verdict = CASES[case]
    oid = f"ORD-RF-{case}"
    status, body = client.send_fhir(client.order("fhir", order_id=oid, **fields))
    issue = body["issue"][0]
    if verdict == "refused":
        assert status == 422 and issue["severity"] == "error" and issue["code"] == "business-rule", body
        assert WHY[case] in issue["details"]["text"], body
        assert _refusal_audited(rig, oid, WHY[case])
    elif verdict == "needs_override":
        assert status == 201 and issue["severity"] == "warning" and issue["code"] == "business-rule", body
        assert "override" in issue["details"]["text"], body
    else:
        assert status == 201 and issue["severity"] == "information", body
