"""IHE PCD PIV (RGV^O15 in, RRG^O16 out) as the pump's role in the framework needs it.

The fixtures are our own messages, written field by field to the framework's RGV^O15 table: v2.6 and v2.5,
no PV1, MDC units, UCUM in component 2, strength as amount plus volume, MDC weight, MSH-15/16. Every answer
is validated by hl7apy in strict mode, an HL7 parser that is not ours.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hospital_client import orders
from hospital_client.client import read_frame
from septum_pump.hospital import answers, hl7_orders
from septum_pump.hospital.mllp import frame
from septum_pump.hospital.pki import HospitalPki

from .hl7_strict import assert_strict_hl7, split_answers
from .intake_helpers import make_desk, oracle_valid, peer_of

HEPARIN: dict[str, Any] = dict(order_id="PIV-1", patient_id="MRN-9", drug="heparin", concentration=100.0,
                               concentration_unit="units/mL", dose_rate=1000.0, dose_unit="units/h",
                               vtbi_ml=250.0, care_area="icu")
DOPAMINE: dict[str, Any] = dict(order_id="PIV-2", patient_id="MRN-9", drug="dopamine", concentration=1600.0,
                                concentration_unit="mcg/mL", dose_rate=5.0, dose_unit="mcg/kg/min",
                                vtbi_ml=250.0, care_area="icu", weight_kg=70.0)
MDC_ML = "263762^MDC_DIM_MILLI_L^MDC"


def _order(pki: HospitalPki, base: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    order = orders.make_order(principal="hospital.example", source="hl7v2", **base)
    return order, orders.sign(order, pki.hospital_client.key)


def rgv(order: dict[str, Any], sig: bytes, *, version: str = "2.6", pv1: bool = True, vtbi_unit: str = MDC_ML,
        rate_unit: str = "267840^MDC_DIM_INTL_UNIT_PER_HR^MDC", strength: tuple[str, str, str, str] | None = None,
        weight_code: str = "68063^MDC_ATTR_PT_WEIGHT^MDC", weight_unit: str = "263875^MDC_DIM_KILO_G^MDC",
        acks: tuple[str, str] = ("", ""), sender: str = "CIS_PIV^1.2.3.4^ISO") -> bytes:
    """An RGV^O15 written to the framework's segment table (MSH PID [PV1] ORC RXG [RXR] [OBX] + our ZSG)."""
    if strength is None:  # amount in RXG-17/18 and volume in RXG-23/24: 25000 units in 250 mL
        strength = ("25000", "267616^MDC_DIM_INTL_UNIT^MDC", "250", MDC_ML)
    msh = ["MSH", "^~\\&", sender, "HOSPITAL^2.16.840.1.113883.3.72^ISO", "SEPTUM_PUMP", "SEPTUM",
           "20261202010000+0000", "", "RGV^O15^RGV_O15", "PIVCTL01", "P", version, "", "", acks[0], acks[1]]
    rxg = [""] * 25
    rxg[0] = "RXG"
    rxg[1] = "1"
    rxg[4] = f"{order['drug']}^{order['drug']}^SEPTUM"
    rxg[5] = repr(order["vtbi_ml"])
    rxg[7] = vtbi_unit
    rxg[15] = repr(order["dose_rate"])
    rxg[16] = rate_unit
    rxg[17], rxg[18], rxg[23], rxg[24] = strength
    segs = ["|".join(msh).rstrip("|"), f"PID|||{order['patient_id']}^^^HOSPITAL^MR"]
    if pv1:
        segs.append(f"PV1||I|{order['care_area']}^^^HOSPITAL")
    segs += [f"ORC|NW|{order['order_id']}^CIS_PIV", "|".join(rxg).rstrip("|"), "RXR|IV^Intravenous^HL70162"]
    if order["weight_kg"]:
        segs.append(f"OBX|1|NM|{weight_code}||{order['weight_kg']!r}|{weight_unit}|||||F")
    segs.append(f"ZSG|{order['nonce']}|{order['sent_at_ms']}|{base64.b64encode(sig).decode()}|"
                f"{orders.ALGORITHM}")
    return ("\r".join(segs) + "\r").encode()


def answer(pki: HospitalPki, order_type: Any, payload: bytes) -> tuple[list[hl7_orders.Hl7Message], list[Any]]:
    desk, rec = make_desk(order_type)
    replies, _ = answers.answer_hl7_all(payload, peer_of(pki), desk)
    for r in replies:
        assert_strict_hl7(r)
    return [hl7_orders.parse(r) for r in replies], rec.orders


def msa_of(msg: hl7_orders.Hl7Message) -> tuple[str, str]:
    msa = msg.one("MSA")
    err = msg.all("ERR")
    return msa[1], hl7_orders.unescape(err[0][8]) if err else msa[3]


@pytest.mark.parametrize("version", ["2.6", "2.5", "2.5.1"])
def test_framework_order_in_mdc_units_is_accepted(pki, order_type, version: str) -> None:
    order, sig = _order(pki, HEPARIN)
    (reply,), fwd = answer(pki, order_type, rgv(order, sig, version=version))
    assert msa_of(reply)[0] == "AA" and len(fwd) == 1 and oracle_valid(fwd[0], pki)
    # amount + volume made the per-mL concentration the hospital signed
    assert (fwd[0].concentration, fwd[0].concentration_unit, fwd[0].dose_unit) == (100.0, "units/mL", "units/h")
    assert hl7_orders.field(reply.segments[0][1], 12, "MSH") == version  # answered in the request's version


def test_weight_based_order_with_mdc_weight_and_mg_amount(pki, order_type) -> None:
    order, sig = _order(pki, DOPAMINE)
    payload = rgv(order, sig, rate_unit="265619^MDC_DIM_MICRO_G_PER_KG_PER_MIN^MDC",
                  strength=("400000", "ug^ug^UCUM", "250", "mL^mL^UCUM"))
    (reply,), fwd = answer(pki, order_type, payload)
    assert msa_of(reply)[0] == "AA" and fwd[0].weight_kg == 70.0 and fwd[0].concentration == 1600.0
    # the same order with the weight as LOINC (HL7 "LN") is the same order
    (reply,), fwd = answer(pki, order_type, rgv(order, sig, rate_unit="265619^MDC_DIM_MICRO_G_PER_KG_PER_MIN^MDC",
                                                strength=("400000", "ug^ug^UCUM", "250", "mL^mL^UCUM"),
                                                weight_code="29463-7^Body weight^LN", weight_unit="kg^kg^UCUM"))
    assert msa_of(reply)[0] == "AA" and fwd[0].weight_kg == 70.0


@pytest.mark.parametrize(("rate_unit", "strength"), [
    ("^U/h^UCUM", ("100", "^U/mL^UCUM", "", "")),  # UCUM only in component 2, strength per mL
    ("U/h^U/h^UCUM", ("100", "U/mL^^UCUM", "", "")),
    ("267840^MDC_DIM_INTL_UNIT_PER_HR^MDC^U/h^U/h^UCUM", ("25000", "U^U^UCUM", "250", "ml^ml^UCUM")),
    ("[iU]/h^^UCUM", ("100", "267744^MDC_DIM_INTL_UNIT_PER_ML^MDC", "", "")),
])
def test_unit_forms_the_framework_allows(pki, order_type, rate_unit: str, strength: tuple[str, ...]) -> None:
    order, sig = _order(pki, HEPARIN)
    (reply,), fwd = answer(pki, order_type, rgv(order, sig, rate_unit=rate_unit, strength=strength))  # type: ignore[arg-type]
    assert msa_of(reply)[0] == "AA" and (fwd[0].dose_unit, fwd[0].concentration) == ("units/h", 100.0)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"rate_unit": "265266^MDC_DIM_MILLI_G_PER_HR^MDC"}, "MDC code 265266 is MDC_DIM_MILLI_L_PER_HR"),
    ({"rate_unit": "999999^MDC_DIM_X^MDC"}, "MDC code '999999' is not one of"),
    ({"rate_unit": "267840^MDC_DIM_INTL_UNIT_PER_HR^MDC^mL/h^^UCUM"}, "the primary unit (units/h) and the alternate"),
    ({"rate_unit": "U/H^^UCUM"}, "(UCUM, case-sensitive)"),
    ({"rate_unit": "U/h^mL/h^UCUM"}, "components 1 and 2 name different units"),
    ({"vtbi_unit": "ML^^UCUM"}, "'ML' is not one of"),  # megalitre, not millilitre: case is meaning
    ({"strength": ("25000", "267744^MDC_DIM_INTL_UNIT_PER_ML^MDC", "250", MDC_ML)}, "an amount, as RXG-23"),
    ({"strength": ("25000", "267616^MDC_DIM_INTL_UNIT^MDC", "0", MDC_ML)}, "RXG-23 (give drug strength volume) must"),
    ({"strength": ("25000", "267616^MDC_DIM_INTL_UNIT^MDC", "250", "")}, "RXG-24"),
    ({"strength": ("25000", "267616^MDC_DIM_INTL_UNIT^MDC", "", "")}, "per mL, as no RXG-23"),
    ({"pv1": False}, "no care area: PV1-3.1"),
    ({"version": "2.7"}, "is not 2.5 or 2.6"),
    ({"acks": ("XX", "AL")}, "MSH-15 (acknowledgement type) 'XX'"),
])
def test_piv_refusals_keep_their_reasons(pki, order_type, changes: dict[str, Any], reason: str) -> None:
    order, sig = _order(pki, HEPARIN)
    replies, fwd = answer(pki, order_type, rgv(order, sig, **changes))
    assert fwd == [] and len(replies) == 1
    code, text = msa_of(replies[0])
    assert code in ("AE", "AR") and reason in text, text


def test_answer_names_the_sender_as_hd_components(pki, order_type) -> None:
    order, sig = _order(pki, HEPARIN)
    for payload in (rgv(order, sig), rgv(order, sig, version="2.7")):  # an RRG^O16 and a generic ACK
        (reply,), _ = answer(pki, order_type, payload)
        msh = reply.segments[0][1]
        assert (msh[3], msh[4]) == ("SEPTUM_PUMP", "SEPTUM")
        assert (msh[5], msh[6]) == ("CIS_PIV^1.2.3.4^ISO", "HOSPITAL^2.16.840.1.113883.3.72^ISO")
    assert msh[9] == "ACK^O15^ACK"  # the generic ACK says which trigger it answers, and its structure


@pytest.mark.parametrize(("acks", "changes", "expect"), [
    (("AL", "AL"), {}, ["CA", "AA"]),
    (("NE", "AL"), {}, ["AA"]),
    (("AL", "NE"), {}, ["CA"]),
    (("NE", "NE"), {}, []),
    (("ER", "ER"), {}, []),  # success: neither asked for
    (("SU", "SU"), {}, ["CA", "AA"]),
    (("ER", "ER"), {"rate_unit": "mL/h^^UCUM"}, ["AE"]),  # received (no CA asked on success), refused content
    (("SU", "SU"), {"rate_unit": "mL/h^^UCUM"}, ["CA"]),
    (("AL", "AL"), {"version": "2.7"}, ["CR"]),  # the message itself is refused: a commit reject, no RRG
    (("NE", "AL"), {"version": "2.7"}, []),
])
def test_msh15_msh16_decide_which_answers_are_sent(pki, order_type, acks: tuple[str, str], changes: dict[str, Any],
                                                   expect: list[str]) -> None:
    order, sig = _order(pki, HEPARIN)
    replies, fwd = answer(pki, order_type, rgv(order, sig, acks=acks, **changes))
    assert [msa_of(r)[0] for r in replies] == expect
    for r in replies:
        kind = hl7_orders.field(r.segments[0][1], 9, "MSH")
        assert kind == ("ACK^O15^ACK" if msa_of(r)[0].startswith("C") else "RRG^O16^RRG_O16")
    assert len(fwd) == (0 if changes else 1)


def test_enhanced_mode_answers_arrive_as_separate_messages(pki, order_type) -> None:
    order, sig = _order(pki, HEPARIN)
    desk, _ = make_desk(order_type)
    joined, _ = answers.answer_hl7(rgv(order, sig, acks=("AL", "AL")), peer_of(pki), desk)
    assert [assert_strict_hl7(m) for m in split_answers(joined)] == ["ACK", "RRG_O16"]


def test_framing_error_answer_is_strict_hl7() -> None:
    assert assert_strict_hl7(answers.answer_framing_error("frame longer than 65536 bytes")) == "ACK"


def test_enhanced_mode_over_mllp_two_frames_or_none(make_link, client_for, pki: HospitalPki) -> None:
    """Through the real listener: AL/AL gives two frames, NE/NE none, and the connection goes on."""
    h = make_link()
    c = client_for(h)
    order, sig = _order(pki, HEPARIN)
    first = c.send_hl7_raw(rgv(order, sig, acks=("AL", "AL"))).encode()
    second = read_frame(c._mllp, c._mllp_buf)
    assert [assert_strict_hl7(m) for m in (first, second)] == ["ACK", "RRG_O16"]
    assert [msa_of(hl7_orders.parse(m))[0] for m in (first, second)] == ["CA", "AA"]
    quiet, sig2 = _order(pki, {**HEPARIN, "order_id": "PIV-QUIET"})
    loud, sig3 = _order(pki, {**HEPARIN, "order_id": "PIV-LOUD"})
    quiet_msg = rgv(quiet, sig2, acks=("NE", "NE")).replace(b"PIVCTL01", b"PIVQUIET")
    # no answer to the NE/NE order: the next frame on the connection answers the original-mode one
    c._mllp.sendall(frame(quiet_msg))
    reply = c.send_hl7_raw(rgv(loud, sig3).replace(b"PIVCTL01", b"PIVLOUD1")).encode()
    assert hl7_orders.parse(reply).one("MSA")[2] == "PIVLOUD1"
    assert [o.order_id for o in h.auth.orders] == ["PIV-1", "PIV-QUIET", "PIV-LOUD"]


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda m: m + b"MSH|^~\\&|X|Y|Z|W|1||RGV^O15^RGV_O15|2|P|2.6\r", "a second MSH segment"),  # python-hl7 reads it
    (lambda m: m + b"zsg|1\r", "has no valid segment id"),
    (lambda m: m.replace(b"RXR|IV", b"RXR|" + b"I" * 2100), "RXR-1 is longer than 2048"),
])
def test_checks_around_the_hl7_library_keep_their_reasons(pki, order_type, edit: Any, reason: str) -> None:
    order, sig = _order(pki, HEPARIN)
    (reply,), fwd = answer(pki, order_type, edit(rgv(order, sig)))
    assert fwd == [] and msa_of(reply)[0] == "AR" and reason in msa_of(reply)[1]
