"""From a received HL7 message or HTTP request to the bytes of the answer (no sockets here).

Each function takes what a transport read, runs it through the parser and the order desk, and returns
the reply: an ``RRG^O16``/``ACK`` for HL7, an HTTP response with an ``OperationOutcome`` for FHIR.
Every refusal is audited by the desk with its reason.
"""

from __future__ import annotations

import itertools
import time

from . import fhir_orders, hl7_orders, hl7_writer, httpio
from .hl7_orders import Hl7Error
from .intake import OrderDesk, Outcome, Peer
from .validate import OrderRejected

ORDER_PATHS = ("/fhir/MedicationRequest", "/MedicationRequest")
FHIR_TYPES = ("application/fhir+json", "application/json")
_control_ids = itertools.count(1)


def hl7_timestamp() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "+0000"


def next_control_id() -> str:
    return f"SP{next(_control_ids):010d}"


# ------------------------------------------------------------------------------------------ HL7 v2
# rate_limited is AR, not AE: the order's content is fine and the refusal is about the pump's load, which
# is what AR means (HL7 v2.5 2.9.2: "a problem unrelated to content"); interface engines resend on AR
HL7_ACKS = {"accepted": "AA", "rejected": "AE", "pending": "CA", "busy": "AE", "rate_limited": "AR"}


# Enhanced acknowledgement mode (MSH-15 accept / MSH-16 application acknowledgement type, HL7 table 0155):
# AL always, NE never, ER only on an error or refusal, SU only on success
def _wanted(ack_type: str, success: bool) -> bool:
    return ack_type == "AL" or (ack_type == "ER" and not success) or (ack_type == "SU" and success)


def _enhanced(msg: hl7_orders.Hl7Message, modes: tuple[str, str], accept: str, application: str | None,
              text: str, error: Hl7Error | None, order_reply: bool) -> list[bytes]:
    """The accept ACK (CA/CE/CR) and the application RRG^O16 (AA/AE/AR) that MSH-15/16 ask for.

    The pump decides at once (the desk waits for the verdict), so both answers go out together; a
    pending order (forwarded, verdict not yet known) gets only its accept acknowledgement."""
    out = []
    accept_type, application_type = modes
    if _wanted(accept_type, accept == "CA"):
        out.append(hl7_writer.reply(msg, ack=accept, text=text if accept != "CA" else "order received",
                                    control_id=next_control_id(), timestamp=hl7_timestamp(),
                                    error=error if accept != "CA" else None, accept_ack=True))
    if application is not None and _wanted(application_type, application == "AA"):
        out.append(hl7_writer.reply(msg, ack=application, text=text, control_id=next_control_id(),
                                    timestamp=hl7_timestamp(), error=error, order_reply=order_reply))
    return out


def _modes(msg: hl7_orders.Hl7Message | None) -> tuple[str, str] | None:
    if msg is None:
        return None
    try:
        return hl7_orders.ack_types(msg)
    except Hl7Error:
        return None  # an unreadable MSH-15/16 is refused in the original mode, which needs no reading of them


def answer_hl7(payload: bytes, peer: Peer, desk: OrderDesk) -> tuple[bytes, Outcome]:
    """Every answer for one MLLP payload, concatenated (none if MSH-15/16 ask for none)."""
    messages, outcome = answer_hl7_all(payload, peer, desk)
    return b"".join(messages), outcome


def answer_hl7_all(payload: bytes, peer: Peer, desk: OrderDesk) -> tuple[list[bytes], Outcome]:
    """The answers for one MLLP payload, each to be framed on its own: in the original mode (no MSH-15/16)
    exactly one RRG^O16 (or generic ACK); in the enhanced mode what MSH-15/16 ask for."""
    msg: hl7_orders.Hl7Message | None = None
    try:
        msg = hl7_orders.parse(payload)
        fields = hl7_orders.order_fields(msg)
    except Hl7Error as exc:
        order_id = ""
        if msg is not None:
            orc = msg.all("ORC")
            order_id = hl7_orders.component(hl7_orders.field(orc[0], 2, "ORC"), 1)[:64] if orc else ""
        outcome = desk.reject(exc, peer, "hl7v2", order_id)
        modes = _modes(msg)
        if msg is not None and modes is not None:
            # AR: the message itself is refused (commit reject); AE: received, its content refused
            if exc.ack == "AR":
                return _enhanced(msg, modes, "CR", None, "order refused", exc, False), outcome
            return _enhanced(msg, modes, "CA", exc.ack, "order refused", exc, False), outcome
        return [hl7_writer.reply(msg, ack=exc.ack, text="order refused", control_id=next_control_id(),
                                 timestamp=hl7_timestamp(), error=exc)], outcome
    outcome = desk.submit(fields, peer)
    error = None
    if outcome.status != "accepted" and outcome.status != "pending":
        code = hl7_orders.ERR_REJECTED if outcome.stage != "validation" else hl7_orders.ERR_DATA_TYPE
        app = hl7_orders.APP_REFUSED if outcome.stage == "library" else None
        error = Hl7Error(outcome.reason, where=outcome.field, hl7_code=code, app_code=app)
    elif outcome.needs_override:
        # accepted (pre-filled) but not runnable as ordered: AA with a warning ERR naming the soft limit
        error = Hl7Error(outcome.reason, hl7_code=hl7_orders.ERR_REJECTED, severity="W",
                         app_code=hl7_orders.APP_SOFT_LIMIT)
    modes = hl7_orders.ack_types(msg)  # valid: order_fields checked them
    if modes is not None:
        if outcome.status in ("busy", "rate_limited"):
            # not taken in (the pump's load): a commit error, the sender may resend
            load = Hl7Error(outcome.reason, hl7_code=hl7_orders.ERR_REJECTED)
            return _enhanced(msg, modes, "CE", None, outcome.reason, load, False), outcome
        application = None if outcome.status == "pending" else HL7_ACKS[outcome.status]
        return _enhanced(msg, modes, "CA", application, outcome.reason, error, False), outcome
    # a rate-limited order was a usable RGV^O15, so it gets its RRG^O16 even though the ack is AR
    return [hl7_writer.reply(msg, ack=HL7_ACKS[outcome.status], text=outcome.reason, control_id=next_control_id(),
                             timestamp=hl7_timestamp(), error=error,
                             order_reply=outcome.status == "rate_limited")], outcome


def answer_framing_error(reason: str) -> bytes:
    err = Hl7Error(reason, hl7_code=hl7_orders.ERR_SEGMENT_SEQUENCE, ack="AR")
    return hl7_writer.reply(None, ack="AR", text="frame refused", control_id=next_control_id(),
                            timestamp=hl7_timestamp(), error=err)


# ------------------------------------------------------------------------------------------ FHIR
FHIR_STATUS = {"accepted": 201, "pending": 202, "busy": 503, "rate_limited": 429}


def _outcome_response(status: int, severity: str, code: str, text: str, expression: str = "",
                      close: bool = False, headers: dict[str, str] | None = None) -> bytes:
    return httpio.response(status, fhir_orders.operation_outcome(severity, code, text, expression=expression),
                           headers=headers, close=close)


def answer_http_error(exc: httpio.HttpError) -> bytes:
    code = "structure" if exc.status < 413 else "too-costly" if exc.status < 500 else "exception"
    return _outcome_response(exc.status, "error", code, exc.reason, close=True)


def answer_fhir(req: httpio.Request, peer: Peer, desk: OrderDesk) -> tuple[bytes, Outcome | None]:
    close = not req.keep_alive
    if req.path.split("?", 1)[0] not in ORDER_PATHS:
        return _outcome_response(404, "error", "not-supported", f"no such endpoint; POST orders to "
                                 f"{ORDER_PATHS[0]}", close=close), None
    if req.method != "POST":
        return _outcome_response(405, "error", "not-supported", "only POST is accepted", close=close), None
    ctype = req.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in FHIR_TYPES:
        exc = OrderRejected(f"Content-Type must be {FHIR_TYPES[0]}", code="structure")
        outcome = desk.reject(exc, peer, "fhir")
        return _outcome_response(415, "error", "structure", exc.reason, close=close), outcome
    try:
        fields = fhir_orders.order_fields(req.body, req.headers)
    except OrderRejected as exc:
        outcome = desk.reject(exc, peer, "fhir")
        status = 400 if exc.code in ("structure", "too-costly") else 422
        return _outcome_response(status, "error", exc.code, exc.reason, exc.field, close=close), outcome
    outcome = desk.submit(fields, peer)
    if outcome.status == "rejected" and outcome.stage == "library":
        # the pump's drug library refused it: a business rule, not a malformed or unauthorised request
        return _outcome_response(422, "error", "business-rule", outcome.reason, close=close), outcome
    if outcome.needs_override:
        return _outcome_response(201, "warning", "business-rule", outcome.reason, close=close), outcome
    if outcome.status == "rejected":
        status = 403 if outcome.stage == "auth" or outcome.code == "security" else 422
        return _outcome_response(status, "error", outcome.code or "invalid", outcome.reason, outcome.field,
                                 close=close), outcome
    if outcome.status == "rate_limited":
        return _outcome_response(429, "error", "throttled", outcome.reason, close=close,
                                 headers={"Retry-After": str(outcome.retry_after_s)}), outcome
    severity = "information" if outcome.status == "accepted" else "warning"
    code = {"accepted": "informational", "busy": "transient"}.get(outcome.status, "incomplete")
    return _outcome_response(FHIR_STATUS[outcome.status], severity, code, outcome.reason, close=close), outcome
