"""HL7 v2.5 / v2.6 (IHE PCD PIV) infusion orders: ``RGV^O15`` in (the ``RRG^O16`` or ``ACK`` out is written
by ``hl7_writer``).

Fields are split by python-hl7 (the declared ``hl7`` package); around it the checks are ours and strict:
the message must start with ``MSH|^~\\&``, be UTF-8 without control characters
other than the segment separator, contain only the segments an RGV^O15 may carry (plus our signature
segment ``ZSG``) with one PID, ORC and RXG, at most one PV1, and every field we read must be well formed.
Anything else is an error answer that says what was wrong.

Fields read (IHE PCD-03 style):
  MSH-9 ``RGV^O15``, MSH-10 control id, MSH-12 version 2.5, 2.5.1 or 2.6, MSH-15/16 acknowledgement types
  PID-3.1 patient id            PV1-3.1 care area (point of care; PV1 is optional in the message, but an
                                order without a care area is refused: the drug library is per care area)
  ORC-1 ``NW``/``RE``, ORC-2.1 placer order number (order id)
  RXG-4.1 drug, RXG-5 volume to be infused with RXG-7 a volume unit
  RXG-15 rate with RXG-16 a rate unit; strength either as RXG-17 amount with RXG-18 an amount unit plus
  RXG-23 volume with RXG-24 a volume unit (concentration = amount / volume, the framework's form), or
  RXG-17 with RXG-18 a per-mL concentration unit
  Units are CWE: an MDC code (``263762^MDC_DIM_MILLI_L^MDC``) or a UCUM code (``mL^mL^UCUM``, ``^mL^UCUM``),
  in the primary or the alternate triple; when both triples are given they must mean the same unit
  OBX (LOINC 29463-7 / 3141-9 or ``68063^MDC_ATTR_PT_WEIGHT^MDC``, NM, kg): patient weight, when given
  ZSG-1 nonce, ZSG-2 sent_at_ms, ZSG-3 base64 signature, ZSG-4 ``ECDSA-P256-SHA256``
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hl7

from . import units
from .tls import SIGNATURE_ALGORITHM
from .validate import OrderRejected

ENCODING = "^~\\&"
UNKNOWN_CONTROL_ID = "UNKNOWN"  # MSA-2 when the refused message had no readable MSH-10
SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
ALLOWED_SEGMENTS = frozenset({"MSH", "SFT", "NTE", "PID", "PV1", "PV2", "AL1", "ORC", "TQ1", "TQ2", "RXG",
                              "RXR", "RXC", "OBX", "ZSG"})
ONCE = ("MSH", "PID", "ORC", "RXG", "ZSG")
AT_MOST_ONCE = ("PV1",)
VERSIONS = ("2.5", "2.5.1", "2.6")
ACK_TYPES = ("AL", "NE", "ER", "SU")  # HL7 table 0155, MSH-15 / MSH-16
MAX_SEGMENTS = 64
MAX_FIELD = 2048  # longer than any field we read may be (model bounds are <= 4 kB of base64 signature)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x0c\x0e-\x1f\x7f]")  # allows \t and the \r separator
_ESCAPES = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}

# HL7 table 0357 (message error condition codes) used in ERR-3
ERR_SEGMENT_SEQUENCE = ("100", "Segment sequence error")
ERR_REQUIRED = ("101", "Required field missing")
ERR_DATA_TYPE = ("102", "Data type error")
ERR_TABLE_VALUE = ("103", "Table value not found")
ERR_UNSUPPORTED_TYPE = ("200", "Unsupported message type")
ERR_REJECTED = ("207", "Application internal error")
# ERR-5 (application error code, a user-defined table) for the pump's drug-library verdict: table 0357
# has no business-rule condition, so ERR-3 stays 207 and ERR-5 says which rule
APP_REFUSED = ("DRUG-LIBRARY", "Refused by the pump's drug library", "SEPTUM")
APP_SOFT_LIMIT = ("SOFT-LIMIT", "Soft limit: override needed at the pump", "SEPTUM")


class Hl7Error(OrderRejected):
    """An HL7 message refused; ``hl7_code`` is its table-0357 condition, ``ack`` AE or AR."""

    def __init__(self, reason: str, *, where: str = "", hl7_code: tuple[str, str] = ERR_DATA_TYPE,
                 ack: str = "AE", severity: str = "E", app_code: tuple[str, str, str] | None = None) -> None:
        super().__init__(reason, field=where, code="structure" if ack == "AR" else "value")
        self.hl7_code = hl7_code
        self.ack = ack
        self.severity = severity  # ERR-4 (HL70516): E error, W warning (an AA that needs attention)
        self.app_code = app_code  # ERR-5


def unescape(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        return _ESCAPES.get(m.group(1), m.group(0))

    return re.sub(r"\\([FSTRE])\\", sub, text)


@dataclass
class Hl7Message:
    segments: list[tuple[str, list[str]]]  # (id, fields as in the standard: fields[n] is SEG-n)

    def all(self, seg_id: str) -> list[list[str]]:
        return [f for s, f in self.segments if s == seg_id]

    def one(self, seg_id: str) -> list[str]:
        found = self.all(seg_id)
        if len(found) != 1:
            what = "missing" if not found else f"repeated ({len(found)} times)"
            raise Hl7Error(f"segment {seg_id} is {what}; an RGV^O15 order needs exactly one",
                           where=seg_id, hl7_code=ERR_SEGMENT_SEQUENCE)
        return found[0]

    @property
    def control_id(self) -> str:
        return field(self.segments[0][1], 10, "MSH")

    @property
    def sender(self) -> tuple[str, str]:
        msh = self.segments[0][1]
        return field(msh, 3, "MSH"), field(msh, 4, "MSH")


def field(fields: Sequence[str], n: int, seg: str) -> str:
    return fields[n] if n < len(fields) else ""


def component(value: str, n: int) -> str:
    """Component n (1-based) of the first repetition, unescaped."""
    parts = value.split("~", 1)[0].split("^")
    return unescape(parts[n - 1]) if n <= len(parts) else ""


def parse(data: bytes) -> Hl7Message:
    """Split an HL7 v2 message (one MLLP payload) into segments; raises Hl7Error (ack AR) if malformed."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Hl7Error(f"message is not valid UTF-8 (byte {exc.start})", hl7_code=ERR_DATA_TYPE, ack="AR") from None
    if not text.startswith("MSH|" + ENCODING):
        raise Hl7Error("message must start with MSH|^~\\&", where="MSH", hl7_code=ERR_SEGMENT_SEQUENCE, ack="AR")
    bad = _CONTROL.search(text)
    if bad:
        raise Hl7Error(f"control character 0x{ord(bad.group()):02x} at offset {bad.start()}",
                       hl7_code=ERR_DATA_TYPE, ack="AR")
    raw = [s for s in text.split("\r") if s]
    if len(raw) > MAX_SEGMENTS:
        raise Hl7Error(f"more than {MAX_SEGMENTS} segments", hl7_code=ERR_SEGMENT_SEQUENCE, ack="AR")
    # our own checks first (python-hl7 is tolerant: it would read a second MSH or a bad segment id)
    for i, seg in enumerate(raw):
        seg_id = seg.split("|", 1)[0]
        if not SEGMENT_ID.fullmatch(seg_id):
            raise Hl7Error(f"segment {i + 1} has no valid segment id ({seg_id[:8]!r})",
                           hl7_code=ERR_SEGMENT_SEQUENCE, ack="AR")
        if seg_id == "MSH" and i != 0:
            raise Hl7Error("a second MSH segment", where="MSH", hl7_code=ERR_SEGMENT_SEQUENCE, ack="AR")
    try:
        parsed = hl7.parse("\r".join(raw))
    except Exception as exc:  # the library's errors on hostile input are refusals, never a traceback
        raise Hl7Error(f"not a parsable HL7 v2 message: {str(exc)[:120]}", hl7_code=ERR_DATA_TYPE, ack="AR") from None
    # python-hl7 numbers fields as the standard does (MSH-1 is the field separator itself); values stay
    # escaped text, unescaped component by component when read
    segments = [(str(seg[0]), [str(f) for f in seg]) for seg in parsed]
    if len(segments) != len(raw):
        raise Hl7Error("the message's segments could not be read one by one", hl7_code=ERR_SEGMENT_SEQUENCE,
                       ack="AR")
    for seg_id, fields in segments:
        for n, value in enumerate(fields):
            if len(value) > MAX_FIELD:
                raise Hl7Error(f"{seg_id}-{n} is longer than {MAX_FIELD} characters", where=f"{seg_id}-{n}",
                               hl7_code=ERR_DATA_TYPE, ack="AR")
    return Hl7Message(segments)


def _required(seg: list[str], n: int, seg_id: str, comp: int = 1, what: str = "") -> str:
    value = component(field(seg, n, seg_id), comp)
    if not value:
        where = f"{seg_id}-{n}" + (f".{comp}" if comp > 1 else "")
        raise Hl7Error(f"{where} ({what}) is required", where=where, hl7_code=ERR_REQUIRED)
    return value


def _number(seg: list[str], n: int, seg_id: str, what: str) -> float:
    value = _required(seg, n, seg_id, what=what)
    if not NUMBER.fullmatch(value):
        raise Hl7Error(f"{seg_id}-{n} ({what}) is not a number: {value[:20]!r}", where=f"{seg_id}-{n}")
    return float(value)


UnitTables = tuple[dict[str, str], dict[str, tuple[str, str]]]  # (UCUM code -> unit, MDC code -> (ref id, unit))
RATE = (units.RATE_UNITS, units.MDC_RATE_UNITS)
CONCENTRATION = (units.CONCENTRATION_UNITS, units.MDC_CONCENTRATION_UNITS)
AMOUNT = (units.CONCENTRATION_NUMERATORS, units.MDC_CONCENTRATION_NUMERATORS)
VOLUME = (units.VOLUME_UNITS, units.MDC_VOLUME_UNITS)
WEIGHT = (units.WEIGHT_UNITS, units.MDC_WEIGHT_UNITS)


def _coded_unit(ident: str, text: str, system: str, tables: UnitTables, where: str, what: str) -> str | None:
    """The library unit one CWE triple names; None if the triple is empty; Hl7Error if it names none."""
    ucum, mdc = tables
    if not (ident or text or system):
        return None
    if system == units.HL7_MDC:
        if ident not in mdc:
            raise Hl7Error(f"{where} ({what}) MDC code {ident[:20]!r} is not one of "
                           f"{', '.join(f'{c} {r}' for c, (r, _) in mdc.items())}", where=where,
                           hl7_code=ERR_TABLE_VALUE)
        ref, unit = mdc[ident]
        if text and text != ref:  # a code and a reference id that disagree: which one did the sender mean?
            raise Hl7Error(f"{where} ({what}) MDC code {ident} is {ref}, not {text[:32]!r}", where=where,
                           hl7_code=ERR_TABLE_VALUE)
        return unit
    if system not in ("", units.HL7_UCUM):
        raise Hl7Error(f"{where} ({what}) must be a UCUM code or an MDC code, not from {system[:20]!r}", where=where,
                       hl7_code=ERR_TABLE_VALUE)
    # UCUM: the code in component 1, or (as PIV senders write it) only in component 2
    codes = [c for c in (ident, text) if c]
    if not codes or (not system and not ident):
        raise Hl7Error(f"{where} ({what}) has no unit code", where=where, hl7_code=ERR_REQUIRED)
    if not system:
        codes = [ident]  # no coding system: component 2 is free text, only component 1 is a code
    found = set()
    for code in codes:
        if code not in ucum:
            raise Hl7Error(f"{where} ({what}) {code[:20]!r} is not one of {', '.join(ucum)} (UCUM, case-sensitive)",
                           where=where, hl7_code=ERR_TABLE_VALUE)
        found.add(ucum[code])
    if len(found) > 1:
        raise Hl7Error(f"{where} ({what}) components 1 and 2 name different units", where=where,
                       hl7_code=ERR_TABLE_VALUE)
    return found.pop()


def _unit(seg: list[str], n: int, seg_id: str, tables: UnitTables, what: str) -> str:
    value = field(seg, n, seg_id)
    where = f"{seg_id}-{n}"
    c = [component(value, i) for i in range(1, 7)]
    named = [u for u in (_coded_unit(c[0], c[1], c[2], tables, where, what),
                         _coded_unit(c[3], c[4], c[5], tables, where, what)) if u is not None]
    if not named:
        raise Hl7Error(f"{where} ({what}) is required", where=where, hl7_code=ERR_REQUIRED)
    if len(set(named)) > 1:
        raise Hl7Error(f"{where} ({what}): the primary unit ({named[0]}) and the alternate unit ({named[1]}) "
                       "differ", where=where, hl7_code=ERR_TABLE_VALUE)
    return named[0]


def ack_types(msg: Hl7Message) -> tuple[str, str] | None:
    """MSH-15 / MSH-16 (accept / application acknowledgement type), or None: the original mode.

    In the enhanced mode (either field valued) an empty one is read as AL, so the sender always hears
    about its order unless it explicitly asked not to."""
    msh = msg.segments[0][1]
    accept, application = component(field(msh, 15, "MSH"), 1), component(field(msh, 16, "MSH"), 1)
    if not accept and not application:
        return None
    for n, value in ((15, accept), (16, application)):
        if value and value not in ACK_TYPES:
            raise Hl7Error(f"MSH-{n} (acknowledgement type) {value[:8]!r} is not one of {', '.join(ACK_TYPES)}",
                           where=f"MSH-{n}", hl7_code=ERR_TABLE_VALUE, ack="AR")
    return accept or "AL", application or "AL"


def check_header(msg: Hl7Message) -> None:
    msh = msg.segments[0][1]
    mtype = field(msh, 9, "MSH")
    if component(mtype, 1) != "RGV" or component(mtype, 2) != "O15":
        raise Hl7Error(f"message type {mtype[:20]!r} is not accepted here (only RGV^O15)", where="MSH-9",
                       hl7_code=ERR_UNSUPPORTED_TYPE, ack="AR")
    if not msg.control_id.strip():  # blank is no id: the answer's MSA-2 could not name the message
        raise Hl7Error("MSH-10 (message control id) is required", where="MSH-10", hl7_code=ERR_REQUIRED, ack="AR")
    version = component(field(msh, 12, "MSH"), 1)
    if version not in VERSIONS:
        raise Hl7Error(f"MSH-12 version {version[:10]!r} is not 2.5 or 2.6 ({', '.join(VERSIONS)})", where="MSH-12",
                       hl7_code=ERR_TABLE_VALUE, ack="AR")
    ack_types(msg)
    if component(field(msh, 11, "MSH"), 1) not in ("P", "T"):
        raise Hl7Error("MSH-11 (processing id) must be P or T", where="MSH-11", hl7_code=ERR_TABLE_VALUE, ack="AR")
    for seg_id, _ in msg.segments:
        if seg_id not in ALLOWED_SEGMENTS:
            raise Hl7Error(f"segment {seg_id} does not belong in an RGV^O15 order", where=seg_id,
                           hl7_code=ERR_SEGMENT_SEQUENCE)


def _is_weight(code: str) -> bool:
    ident, text, system = (component(code, i) for i in (1, 2, 3))
    if system == units.HL7_MDC:
        return ident == units.MDC_PATIENT_WEIGHT[0] and text in ("", units.MDC_PATIENT_WEIGHT[1])
    return ident in units.BODY_WEIGHT_LOINC and system in ("", units.HL7_LOINC)


def _strength(rxg: list[str]) -> tuple[float, str]:
    """RXG-17/18 amount plus RXG-23/24 volume (the framework's form), or RXG-17/18 already per mL."""
    amount = _number(rxg, 17, "RXG", "give strength")
    has_volume = bool(field(rxg, 23, "RXG") or field(rxg, 24, "RXG"))
    if not has_volume:
        return amount, _unit(rxg, 18, "RXG", CONCENTRATION, "give strength units (per mL, as no RXG-23 volume)")
    unit = _unit(rxg, 18, "RXG", AMOUNT, "give strength units: an amount, as RXG-23 gives the volume")
    volume = _number(rxg, 23, "RXG", "give drug strength volume")
    _unit(rxg, 24, "RXG", VOLUME, "give drug strength volume units")
    if not volume > 0:
        raise Hl7Error("RXG-23 (give drug strength volume) must be greater than zero", where="RXG-23")
    return amount / volume, unit


def order_fields(msg: Hl7Message) -> dict[str, Any]:
    """The InfusionOrder fields an RGV^O15 carries (without principal/cert, which come from TLS)."""
    check_header(msg)
    for seg_id in ONCE:
        msg.one(seg_id)
    pid, orc, rxg, zsg = (msg.one(s) for s in ("PID", "ORC", "RXG", "ZSG"))
    pv1s = msg.all("PV1")
    if len(pv1s) > 1:
        raise Hl7Error(f"segment PV1 is repeated ({len(pv1s)} times); an RGV^O15 order has at most one", where="PV1",
                       hl7_code=ERR_SEGMENT_SEQUENCE)
    care_area = component(field(pv1s[0], 3, "PV1"), 1) if pv1s else ""
    if not care_area:
        raise Hl7Error("no care area: PV1-3.1 (point of care) is required by this pump, whose drug library is "
                       "per care area", where="PV1-3", hl7_code=ERR_REQUIRED)
    control = component(field(orc, 1, "ORC"), 1)
    if control not in ("NW", "RE"):
        raise Hl7Error(f"ORC-1 order control {control[:8]!r} is not NW or RE", where="ORC-1",
                       hl7_code=ERR_TABLE_VALUE)
    _unit(rxg, 7, "RXG", VOLUME, "give units: RXG-5 is the volume to be infused")
    concentration, concentration_unit = _strength(rxg)
    weight = 0.0
    weights = [o for o in msg.all("OBX") if _is_weight(field(o, 3, "OBX"))]
    if len(weights) > 1:
        raise Hl7Error("more than one body weight OBX", where="OBX", hl7_code=ERR_SEGMENT_SEQUENCE)
    if weights:
        obx = weights[0]
        if component(field(obx, 2, "OBX"), 1) != "NM":
            raise Hl7Error("OBX-2 of the body weight must be NM", where="OBX-2")
        weight = _number(obx, 5, "OBX", "body weight")
        _unit(obx, 6, "OBX", WEIGHT, "weight unit")
    algorithm = component(field(zsg, 4, "ZSG"), 1)
    if algorithm != SIGNATURE_ALGORITHM:
        raise Hl7Error(f"ZSG-4 signature algorithm {algorithm[:24]!r} is not {SIGNATURE_ALGORITHM}",
                       where="ZSG-4", hl7_code=ERR_TABLE_VALUE)
    sent = _required(zsg, 2, "ZSG", what="sent_at_ms")
    if not sent.isdigit() or len(sent) > 16:
        raise Hl7Error("ZSG-2 (sent_at_ms) must be milliseconds since the Unix epoch", where="ZSG-2")
    try:
        signature = base64.b64decode(_required(zsg, 3, "ZSG", what="signature"), validate=True)
    except (binascii.Error, ValueError):
        raise Hl7Error("ZSG-3 (signature) is not base64", where="ZSG-3") from None
    return {
        "order_id": _required(orc, 2, "ORC", what="placer order number"),
        "patient_id": _required(pid, 3, "PID", what="patient id"),
        "care_area": care_area,
        "drug": _required(rxg, 4, "RXG", what="give code"),
        "vtbi_ml": _number(rxg, 5, "RXG", "volume to be infused"),
        "dose_rate": _number(rxg, 15, "RXG", "give rate amount"),
        "dose_unit": _unit(rxg, 16, "RXG", RATE, "give rate units"),
        "concentration": concentration,
        "concentration_unit": concentration_unit,
        "weight_kg": weight,
        "source": "hl7v2",
        "nonce": _required(zsg, 1, "ZSG", what="nonce"),
        "sent_at_ms": int(sent),
        "signature": signature,
    }
