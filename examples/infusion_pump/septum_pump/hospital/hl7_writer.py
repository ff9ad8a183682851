"""The HL7 v2 messages the pump writes (answers to orders, events to the hospital), built with python-hl7.

Segments, fields, repetitions and components are python-hl7 containers and the message text is theirs;
the delimiters in every value are escaped by python-hl7's ``escape``. Around it one rule is ours: a value
never carries a control character (the segment separator, the MLLP framing bytes 0x0B/0x1C), which is
replaced by a space before escaping, so no text a sender chose can end a segment or a frame.

python-hl7's ``escape`` writes every character outside printable ASCII as a ``\\Xhh\\`` escape of its code
point, which for a tab gives ``\\X 9\\`` (not hex) and for a character above U+00FF gives digits that are no
byte of any character set; so only runs of printable ASCII go through it, and a tab or non-ASCII text
(UTF-8, as the request was read) is written as it is.

Why python-hl7 and not hl7apy (which knows each message's structure): building one RRG^O16 with hl7apy
costs about 7.7 ms of CPU, several times the pump's whole rejection latency (1.3 ms p50,
benchmarks/hospital_orders.py); hl7apy stays the independent strict check of every answer in the tests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import hl7
from hl7.util import escape as _hl7_escape

from .hl7_orders import (
    ENCODING,
    SEGMENT_ID,
    UNKNOWN_CONTROL_ID,
    VERSIONS,
    Hl7Error,
    Hl7Message,
    component,
    field,
    unescape,
)

SEPARATORS = "\r|" + ENCODING[1] + ENCODING[0] + ENCODING[3]  # python-hl7's order: segment field rep comp sub
SENDING_APPLICATION = "SEPTUM_PUMP"
SENDING_FACILITY = "SEPTUM"
HD_LENGTHS = (20, 199, 6)  # HD.1 namespace id (IS), HD.2 universal id (ST), HD.3 its type (ID), v2.5
MAX_MSA_TEXT = 80  # MSA-3 (text message) in v2.5
MAX_REASON = 250  # ERR-8 (user message, TX): room for a reason that names the field and the value refused
_FACTORY = hl7.Message(separators=SEPARATORS, esc=ENCODING[2])  # makes containers with our delimiters
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # \t is kept; \r, VT, FS and the rest become spaces
_PRINTABLE_ASCII = re.compile(r"([\x20-\x7e]+)")
_SPECIAL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f|^~&\\]")  # what escape() changes

# A field as the builders take it: one text (a single component) or its components, unescaped
FieldValue = str | Sequence[str]


def escape(text: str) -> str:
    """One component's text as HL7: control characters dropped, delimiters escaped by python-hl7."""
    if not _SPECIAL.search(text):
        return text  # nothing to escape (most values): python-hl7 would return it unchanged, character by character
    parts = _PRINTABLE_ASCII.split(_CONTROL.sub(" ", text))
    # split() with a group alternates: even indexes are the text between printable-ASCII runs (tab, non-ASCII)
    return "".join(_hl7_escape(_FACTORY, part) if i % 2 else part for i, part in enumerate(parts))


def fit(text: str, limit: int) -> str:
    """The longest beginning of ``text`` whose escaped form has at most ``limit`` characters: a field's
    length is that of its escaped text (2.5 MSA-3 is 80), and a cut never splits an escape sequence."""
    if len(escape(text)) <= limit:
        return text
    used = 0
    for i, ch in enumerate(text):
        used += len(escape(ch))
        if used > limit:
            return text[:i]
    return text


def segment(seg_id: str, fields: Sequence[FieldValue], first: int = 1) -> hl7.Segment:
    """A segment whose field ``first + i`` is ``fields[i]``; trailing empty components are left out."""
    seg = _FACTORY.create_segment([_FACTORY.create_field([seg_id])])
    seg.extend(_FACTORY.create_field([""]) for _ in range(1, first))
    for value in fields:
        parts = [value] if isinstance(value, str) else list(value)
        while parts and not parts[-1]:
            parts.pop()
        if len(parts) <= 1:  # one component: the field holds its text, as python-hl7 parses it
            seg.append(_FACTORY.create_field([escape(parts[0]) if parts else ""]))
        else:
            seg.append(_FACTORY.create_field([_FACTORY.create_repetition([escape(p) for p in parts])]))
    return seg


def header(msg_type: tuple[str, str, str], control_id: str, timestamp: str, version: str,
           to: tuple[Sequence[str], Sequence[str]] = ((), ())) -> hl7.Segment:
    """MSH: the pump as MSH-3/4, ``to`` (application, facility; as HD components) as MSH-5/6."""
    msh = segment("MSH", [SENDING_APPLICATION, SENDING_FACILITY, to[0], to[1], timestamp, "", msg_type,
                          control_id, "P", version], first=3)
    # MSH-1 and MSH-2 are the delimiters themselves, never escaped
    msh.assign_field(SEPARATORS[1], 1)
    msh.assign_field(ENCODING, 2)
    return msh


def message(segments: Sequence[hl7.Segment]) -> bytes:
    """The message text (each segment ended by \\r, as python-hl7 writes it), UTF-8."""
    return str(_FACTORY.create_message(list(segments))).encode("utf-8")


def _hd(value: str) -> list[str]:
    """The sender's MSH-3/4 (an HD: namespace ^ universal id ^ id type) as its components, unescaped, so it
    is written back into our MSH-5/6 as the same identifier (not as one escaped text).

    An identifier longer than HL7 allows is not named back (MSH-5/6 are optional; the answer goes back on
    the sender's own connection): cut, it would name another application; whole, our answer would be
    invalid."""
    parts = [unescape(p) for p in value.split("~", 1)[0].split("^")[:3]]
    if any(len(escape(p)) > n for p, n in zip(parts, HD_LENGTHS, strict=False)):
        return []
    return parts


def _answer_version(request: Hl7Message | None) -> str:
    """Answer in the request's version when it is one we speak (hl7apy validates against it), else 2.5."""
    if request is None:
        return "2.5"
    version = component(field(request.segments[0][1], 12, "MSH"), 1)
    return version if version in VERSIONS else "2.5"


def _trigger(request: Hl7Message | None) -> str:
    """The trigger event a generic ACK answers (MSH-9.2 of the request), O15 if it cannot be read."""
    if request is None:
        return "O15"
    trigger = component(field(request.segments[0][1], 9, "MSH"), 2)
    return trigger if re.fullmatch(r"[A-Z0-9]{3}", trigger) else "O15"


def _error_location(where: str) -> list[str]:
    """ERR-2 (ERL): segment id ^ segment sequence ^ field position."""
    seg, _, pos = where.partition("-")
    if not SEGMENT_ID.fullmatch(seg):
        return []
    pos = pos.split(".")[0]
    return [seg, "1", pos] if pos.isdigit() else [seg]


def error_segment(error: Hl7Error) -> hl7.Segment:
    """ERR: location, the table-0357 condition, severity, the application error code, the reason."""
    code, name = error.hl7_code
    return segment("ERR", ["", _error_location(error.field), (code, name, "HL70357"), error.severity,
                           error.app_code or (), "", "", fit(error.reason, MAX_REASON)])


def reply(request: Hl7Message | None, *, ack: str, text: str, control_id: str, timestamp: str,
          error: Hl7Error | None = None, order_reply: bool = False, accept_ack: bool = False) -> bytes:
    """RRG^O16 for an RGV^O15 we could read (a generic ACK if not even the header was usable).

    ``ack``: AA accepted, AE refused for its content, AR refused as a message, CA received and forwarded
    but the authorisation answer is still pending (HL7 commit-accept). An AR is a generic ACK (the message
    was not a usable RGV^O15) unless ``order_reply``: a valid order refused for the pump's load (rate
    limit) still gets its RRG^O16. ``accept_ack``: an enhanced-mode accept acknowledgement (CA/CE/CR), always
    a generic ACK."""
    msh = request.segments[0][1] if request is not None else []
    to = (_hd(field(msh, 3, "MSH")), _hd(field(msh, 4, "MSH"))) if request is not None else ((), ())
    is_rgv = (request is not None and component(field(msh, 9, "MSH"), 1) == "RGV"
              and (ack != "AR" or order_reply) and not accept_ack)
    # v2.5/2.6 MSH-9 is message type ^ trigger event ^ message structure, also for the generic ACK
    msg_type = ("RRG", "O16", "RRG_O16") if is_rgv else ("ACK", _trigger(request), "ACK")
    # MSA-2 echoes the request's MSH-10 (as text: read unescaped, written escaped); it is required, so when
    # the request's MSH-10 could not be read (or is blank) it says so rather than stay empty
    request_id = unescape(field(msh, 10, "MSH")) if request is not None else ""
    segs = [header(msg_type, control_id, timestamp, _answer_version(request), to),
            segment("MSA", [ack, request_id if request_id.strip() else UNKNOWN_CONTROL_ID, fit(text, MAX_MSA_TEXT)])]
    if error is not None:
        segs.append(error_segment(error))
    return message(segs)
