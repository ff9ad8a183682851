"""The HL7 messages the pump writes (hl7_writer, python-hl7 containers): whatever text a sender or a reason
carries, the answer keeps its segments and fields, every value reads back as it was written (control
characters as spaces), the MLLP frame cannot be broken, and hl7apy in strict mode accepts the answer."""

from __future__ import annotations

import re

import hl7
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from septum_pump.hospital import hl7_orders, hl7_writer
from septum_pump.hospital.mllp import frame
from septum_pump.hospital.outbound import hl7_event

from .hl7_strict import assert_strict_hl7

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def _escape(text: str) -> str:
    """An escaper written here, independent of the one under test, to build requests."""
    return (text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
            .replace("~", "\\R\\"))


HOSTILE = st.sampled_from(list("ab09 |^~&\\FSTREHNX.\t\r\n\x0b\x1c\x00\x7féЖ€"))
# text as a sender or a reason may carry it: delimiters, escape-like sequences, control and non-ASCII characters
texts = st.one_of(st.text(HOSTILE, max_size=120), st.text(max_size=60))
# what a request's MSH may carry: no control characters (our parser refuses them), and escaped no longer
# than HL7 allows (an HD namespace id is 20 characters; the answer names the sender as the sender wrote it)
printable = st.text(st.sampled_from(list("ab09 |^~&\\FSTREX.éЖ")), min_size=1, max_size=12).filter(
    lambda s: len(_escape(s)) <= 20)


def _clean(text: str) -> str:
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", " ", text)


def _request(sender: list[str], control_id: str) -> hl7_orders.Hl7Message:
    msh = (f"MSH|^~\\&|{'^'.join(_escape(c) for c in sender)}|HOSPITAL|SEPTUM_PUMP|SEPTUM|20261202010000||"
           f"RGV^O15^RGV_O15|{_escape(control_id)}|P|2.6")
    return hl7_orders.parse((msh + "\rPID|||MRN-1\r").encode())


@PROPERTY
@given(sender=st.lists(printable, min_size=1, max_size=3), control_id=printable, text=texts, reason=texts,
       ack=st.sampled_from(["AA", "AE", "AR", "CA"]))
@example(sender=["CIS"], control_id=" ", text="|" * 30 + "w" * 50, reason="^" * 90, ack="AE")  # blank id, long escapes
def test_any_text_reads_back_and_keeps_the_answer_whole(sender: list[str], control_id: str, text: str, reason: str,
                                                        ack: str) -> None:
    reason += "."  # python-hl7 strips the end of a message, so the last field (ERR-8) must not end in a space
    err = hl7_orders.Hl7Error(reason, where="RXG-15", app_code=hl7_orders.APP_REFUSED)
    reply = hl7_writer.reply(_request(sender, control_id), ack=ack, text=text, control_id="SP1",
                             timestamp="20261202010000+0000", error=err)
    frame(reply)  # raises if a value carried an MLLP framing byte
    msg = hl7.parse(reply.decode("utf-8"))  # python-hl7's own reading, not ours
    assert [str(s[0]) for s in msg] == ["MSH", "MSA", "ERR"]
    assert len(msg.segment("MSA")) == 4 and len(msg.segment("ERR")) == 9  # no value added a field
    assert msg.extract_field("MSA", 1, 1) == ack
    # MSA-2 echoes the request's MSH-10 as text (a blank one names no message: UNKNOWN)
    assert msg.extract_field("MSA", 1, 2) == (control_id if control_id.strip() else hl7_orders.UNKNOWN_CONTROL_ID)
    # MSA-3 is at most 80 characters as written (escaped), cut before an escape sequence, never inside one
    msa_3 = msg.extract_field("MSA", 1, 3)
    assert len(str(msg.segment("MSA")[3])) <= 80 and _clean(text).startswith(msa_3)
    assert msa_3 == _clean(text) or len(_escape(_clean(text))) > 80
    err_8 = msg.extract_field("ERR", 1, 8)  # the reason, likewise at most 250 characters as written
    assert len(str(msg.segment("ERR")[8])) <= 250 and _clean(reason).startswith(err_8)
    assert err_8 == _clean(reason) or len(_escape(_clean(reason))) > 250
    # the sender's MSH-3 is our MSH-5, component by component (unless longer than an HD may be: not named)
    fits = all(len(_escape(p)) <= n for p, n in zip(sender, (20, 199, 6), strict=False))
    expected = list(sender) if fits else []
    while expected and not expected[-1]:
        expected.pop()
    assert [msg.extract_field("MSH", 1, 5, 1, c) for c in range(1, len(expected) + 1)] == expected
    assert fits or msg.extract_field("MSH", 1, 5) == ""
    assert msg.extract_field("MSH", 1, 3) == "SEPTUM_PUMP" and msg.extract_field("MSH", 1, 12) == "2.6"
    assert assert_strict_hl7(reply) == ("RRG_O16" if ack != "AR" else "ACK")


@PROPERTY
@given(text=texts, order_id=texts, unit=texts, kind=st.sampled_from(["alarm", "status", "security"]))
def test_event_values_read_back_and_keep_the_message_whole(text: str, order_id: str, unit: str, kind: str) -> None:
    payload = hl7_event({"kind": kind, "order_id": order_id, "text": text, "unit": unit, "value": 2.5,
                         "at_ms": 1_764_637_200_000}, control_id="SP2", timestamp="20261202010000+0000")
    frame(payload)
    msg = hl7.parse(payload.decode("utf-8"))
    assert [str(s[0]) for s in msg] == ["MSH", "OBR", "OBX", "OBX"]
    assert msg.extract_field("OBR", 1, 2) == _clean(order_id)
    assert msg.extract_field("OBX", 1, 6, 1, 1) == _clean(unit)
    assert msg.extract_field("OBX", 2, 5) == _clean(text)
    assert msg.extract_field("MSH", 1, 9, 1, 2) == ("R42" if kind == "alarm" else "R01")


def test_msa_2_echoes_an_escaped_control_id_as_sent() -> None:
    # the sender's MSH-10 "A&B" arrives as A\T\B; MSA-2 must carry the same text, not A\E\T\E\B ("A\T\B")
    request = _request(["CIS"], "A&B")
    reply = hl7_writer.reply(request, ack="AA", text="ok", control_id="SP3", timestamp="20261202010000+0000")
    assert b"\rMSA|AA|A\\T\\B|ok\r" in reply


def test_msh_1_and_2_are_the_delimiters_and_never_escaped() -> None:
    reply = hl7_writer.reply(None, ack="AR", text="frame refused", control_id="SP4", timestamp="T")
    assert reply.startswith(b"MSH|^~\\&|SEPTUM_PUMP|SEPTUM|||T||ACK^O15^ACK|SP4|P|2.5\r")
    escaped = "tab\tand é stay; \\F\\ \\S\\ \\R\\ \\T\\ \\E\\ do not"
    assert hl7_writer.escape("tab\tand é stay; | ^ ~ & \\ do not") == escaped


def test_a_sender_name_longer_than_hl7_allows_is_not_named_back() -> None:
    # HD.1 is at most 20 characters: cut, it would name another application; whole, the answer is invalid
    request = _request(["A" * 21, "1.2.3", "ISO"], "C1")
    reply = hl7_writer.reply(request, ack="AA", text="ok", control_id="SP5", timestamp="20261202010000+0000")
    msg = hl7.parse(reply.decode())
    assert msg.extract_field("MSH", 1, 5) == "" and msg.extract_field("MSH", 1, 6) == "HOSPITAL"
    assert assert_strict_hl7(reply) == "RRG_O16"
