"""Every HL7 answer the pump produces, checked by an independent strict parser (hl7apy)."""

from __future__ import annotations

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message


def assert_strict_hl7(reply: bytes) -> str:
    """Parse and validate one answer in hl7apy's strict mode; return its structure name (RRG_O16, ACK)."""
    text = reply.decode("utf-8")
    msg = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert msg.validate(), text
    return str(msg.name)


def split_answers(data: bytes) -> list[bytes]:
    """Several answers concatenated (enhanced acknowledgement mode) -> one message each."""
    parts = data.split(b"MSH|")
    return [b"MSH|" + p for p in parts[1:]]
