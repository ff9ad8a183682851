"""Limits at intake, without sockets: pump_control's check of an arriving order (``order_check``) against the
shipped drug library, and how the network partition relays that verdict to the hospital (HL7 ``MSA|AE`` with
an ERR naming the limit, FHIR 422 ``OperationOutcome`` business-rule; a soft-limit order is pre-filled with
a warning). The stand-in here plays auth + pump_control by calling the same ``check_remote_order`` the
partition calls; the rig test (test_rig_order_limits.py) runs the real partitions."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from septum_pump.hospital import answers, hl7_orders, hl7_writer, httpio
from septum_pump.hospital.intake import OrderDesk
from septum_pump.hospital.pki import HospitalPki
from septum_pump.order_check import OrderVerdict, check_remote_order
from septum_pump.therapy.drug_library import DrugLibrary, load_drug_library

from .conftest import ROOT
from .intake_helpers import peer_of

LIBRARY = ROOT / "examples" / "infusion_pump" / "drug_library.yaml"
PUMP_AREA = "adult-med-surg"
# morphine-pca in adult-med-surg: rate soft max 1, hard max 2 mg/h; dose (VTBI x 1 mg/mL) soft 60, hard 100 mg
WITHIN = dict(drug="morphine-pca", concentration=1.0, concentration_unit="mg/mL", dose_rate=0.5, dose_unit="mg/h",
              vtbi_ml=50.0, care_area=PUMP_AREA)
CASES = {
    "within": (WITHIN, OrderVerdict.PREFILLED),
    "soft": ({**WITHIN, "dose_rate": 1.5}, OrderVerdict.NEEDS_OVERRIDE),
    "hard": ({**WITHIN, "dose_rate": 3.0}, OrderVerdict.REFUSED),
    "unknown-drug": ({**WITHIN, "drug": "unobtainium"}, OrderVerdict.REFUSED),
    "wrong-care-area": ({**WITHIN, "care_area": "icu"}, OrderVerdict.REFUSED),
}


@pytest.fixture(scope="module")
def library() -> DrugLibrary:
    return load_drug_library(Path(LIBRARY).read_bytes())


def _command(**fields: Any) -> SimpleNamespace:
    base = dict(order_id="ORD-1", patient_id="MRN-42", weight_kg=0.0, principal="hospital.example",
                role="hospital_server")
    return SimpleNamespace(**(base | fields))


@pytest.mark.parametrize("case", sorted(CASES))
def test_order_check_verdicts(library: DrugLibrary, case: str) -> None:
    fields, verdict = CASES[case]
    check = check_remote_order(library, PUMP_AREA, _command(**fields))
    assert check.verdict is verdict, check.reason
    if case == "hard":
        assert "hard limit" in check.reason and "rate" in check.reason and "2 mg/h" in check.reason
    if case == "soft":
        assert "soft maximum of 1 mg/h" in check.reason and "override" in check.reason
    if case == "unknown-drug":
        assert "unobtainium" in check.reason and "not in drug library" in check.reason
    if case == "wrong-care-area":
        assert "'icu'" in check.reason and PUMP_AREA in check.reason


def test_order_check_units(library: DrugLibrary) -> None:
    # the same 1 mg/mL written in mcg/mL is the library's concentration, converted to the library's unit
    same = check_remote_order(library, PUMP_AREA, _command(**{**WITHIN, "concentration": 1000.0,
                                                              "concentration_unit": "mcg/mL"}))
    assert same.verdict is OrderVerdict.PREFILLED and same.concentration == pytest.approx(1.0)
    # a dose unit the library does not use for the drug, or no library at all: refused
    wrong_unit = check_remote_order(library, PUMP_AREA, _command(**{**WITHIN, "dose_unit": "mL/h"}))
    assert wrong_unit.refused and "mg/h" in wrong_unit.reason
    assert check_remote_order(None, PUMP_AREA, _command(**WITHIN)).refused
    # an exotic concentration the library does not list is refused, never pre-filled
    odd = check_remote_order(library, PUMP_AREA, _command(**{**WITHIN, "concentration": 7.0}))
    assert odd.refused and "not in the library" in odd.reason


class PumpStandIn:
    """auth forwards (answers accepted), then pump_control answers with its verdict, from other threads."""

    def __init__(self, library: DrugLibrary) -> None:
        self.library = library
        self.desk: OrderDesk | None = None

    def forward(self, order: msgspec.Struct) -> bool:
        fields = msgspec.structs.asdict(order)
        desk = self.desk
        assert desk is not None
        check = check_remote_order(self.library, PUMP_AREA, _command(**{k: fields[k] for k in (
            "order_id", "drug", "concentration", "concentration_unit", "dose_rate", "dose_unit", "vtbi_ml",
            "care_area", "weight_kg")}))

        def answer() -> None:
            desk.on_reply(fields["order_id"], True, "authorised")
            desk.on_verdict(fields["order_id"], check.verdict.value, check.reason)

        threading.Thread(target=answer).start()
        return True


def _desk(order_type: type[msgspec.Struct], library: DrugLibrary) -> tuple[OrderDesk, list[tuple[str, str, str]]]:
    audit: list[tuple[str, str, str]] = []
    pump = PumpStandIn(library)
    desk = OrderDesk(order_type, pump.forward, lambda *a: audit.append(a), reply_timeout_s=5.0, expect_verdict=True)
    pump.desk = desk
    return desk, audit


def _order(pki: HospitalPki, oid: str, source: str, fields: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    from hospital_client import orders

    order = orders.make_order(principal="hospital.example", source=source, order_id=oid, patient_id="MRN-42",
                              **fields)
    return order, orders.sign(order, pki.hospital_client.key)


def _hl7(pki: HospitalPki, desk: OrderDesk, oid: str, fields: dict[str, Any]) -> dict[str, list[str]]:
    from hospital_client import orders

    order, sig = _order(pki, oid, "hl7v2", fields)
    data, _ = answers.answer_hl7(orders.hl7_message(order, sig, control_id="HC1"), peer_of(pki), desk)
    return {seg.split("|")[0]: seg.split("|") for seg in data.decode().split("\r") if seg}


def _fhir(pki: HospitalPki, desk: OrderDesk, oid: str, fields: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    from hospital_client import orders

    order, sig = _order(pki, oid, "fhir", fields)
    body, headers = orders.fhir_request(order, sig)
    req = httpio.Request("POST", "/fhir/MedicationRequest", {k.lower(): v for k, v in headers.items()}, body)
    data, _ = answers.answer_fhir(req, peer_of(pki), desk)
    head, _, out = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(out)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hl7_answer_carries_the_pumps_verdict(pki: HospitalPki, order_type: type[msgspec.Struct],
                                             library: DrugLibrary, case: str) -> None:
    desk, audit = _desk(order_type, library)
    fields, verdict = CASES[case]
    segs = _hl7(pki, desk, f"ORD-H-{case}", fields)
    msa = segs["MSA"]
    if verdict is OrderVerdict.REFUSED:
        assert msa[1] == "AE", segs
        err = segs["ERR"]
        assert err[3].startswith(hl7_orders.ERR_REJECTED[0] + "^") and err[4] == "E"
        assert err[5].startswith("DRUG-LIBRARY^")
        assert err[8] == hl7_writer.escape(check_remote_order(library, PUMP_AREA, _command(**fields)).reason)
        assert any(e == "order_rejected" and "drug library" in d for e, _, d in audit), audit
    elif verdict is OrderVerdict.NEEDS_OVERRIDE:
        assert msa[1] == "AA" and segs["ERR"][4] == "W" and segs["ERR"][5].startswith("SOFT-LIMIT^")
        assert "soft maximum" in segs["ERR"][8] and "override" in segs["ERR"][8]
    else:
        assert msa[1] == "AA" and "ERR" not in segs


@pytest.mark.parametrize("case", sorted(CASES))
def test_fhir_answer_carries_the_pumps_verdict(pki: HospitalPki, order_type: type[msgspec.Struct],
                                              library: DrugLibrary, case: str) -> None:
    desk, _ = _desk(order_type, library)
    fields, verdict = CASES[case]
    status, body = _fhir(pki, desk, f"ORD-F-{case}", fields)
    issue = body["issue"][0]
    assert body["resourceType"] == "OperationOutcome"
    if verdict is OrderVerdict.REFUSED:
        assert status == 422 and issue["severity"] == "error" and issue["code"] == "business-rule"
        assert issue["details"]["text"] == check_remote_order(library, PUMP_AREA, _command(**fields)).reason
    elif verdict is OrderVerdict.NEEDS_OVERRIDE:
        assert status == 201 and issue["severity"] == "warning" and issue["code"] == "business-rule"
        assert "override" in issue["details"]["text"]
    else:
        assert status == 201 and issue["severity"] == "information"


def test_auth_acceptance_alone_is_pending_not_prefilled(pki: HospitalPki, order_type: type[msgspec.Struct]) -> None:
    """With verdicts expected, auth's "forwarded" is not an acceptance: no verdict means 202, never 201."""

    class AuthOnly:
        desk: OrderDesk

        def forward(self, order: msgspec.Struct) -> bool:
            threading.Thread(target=self.desk.on_reply, args=(order.order_id, True, "ok")).start()  # type: ignore
            return True

    auth = AuthOnly()
    auth.desk = OrderDesk(order_type, auth.forward, lambda *a: None, reply_timeout_s=0.5, expect_verdict=True)
    status, body = _fhir(pki, auth.desk, "ORD-P-1", WITHIN)
    assert status == 202 and "drug-library check" in body["issue"][0]["diagnostics"]
