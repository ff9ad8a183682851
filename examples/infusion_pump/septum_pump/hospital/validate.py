"""Our own checks on an infusion order, whatever format it arrived in.

The FHIR library (and a tolerant HL7 parser) accept nonsense: a status of "bogus", a rate of -3 in a
unit nobody knows, a 100 kB drug name. Before anything is forwarded to auth, an order must be an
``InfusionOrder`` within the model's bounds (lengths, ranges: checked by converting to the message type
the runtime generated from the model, so the bounds live in one place) *and* make clinical sense as a
request: known dose and concentration units that fit together, positive rates and volumes, a plausible
weight where the dose is weight-based, identifiers made of printable characters. The drug itself and its
limits are the drug library's business (pump_control and safety_monitor); the network partition only
refuses what cannot be a well-formed order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

# Model enum value -> the concentration units it can be given with. A mass rate needs a mass
# concentration (else the pump cannot turn it into mL/h); a volume rate works with any concentration.
DOSE_UNITS: dict[str, frozenset[str]] = {
    "mL/h": frozenset({"mg/mL", "mcg/mL", "units/mL", "mL/mL"}),
    "mg/h": frozenset({"mg/mL", "mcg/mL"}),
    "units/h": frozenset({"units/mL"}),
    "mcg/kg/min": frozenset({"mg/mL", "mcg/mL"}),
}
CONCENTRATION_UNITS = frozenset({"mg/mL", "mcg/mL", "units/mL", "mL/mL"})
WEIGHT_BASED = frozenset({"mcg/kg/min"})
# Plausible patient weight for a weight-based dose (a premature neonate to a very heavy adult).
WEIGHT_RANGE_KG = (0.3, 350.0)
MIN_NONCE_LEN = 16

# Identifiers: printable ASCII without HL7 delimiters or control characters (no escape tricks, no
# format strings reaching a log line unquoted, no look-alike Unicode).
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@#+-]*")
# Free text (drug names, care areas): letters, digits, space and a few punctuation marks.
_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()%+/-]*")


class OrderRejected(Exception):
    """The order is refused; ``reason`` is what the hospital is told (and what is audited)."""

    def __init__(self, reason: str, *, field: str = "", code: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.code = code  # FHIR issue type: invalid, structure, required, value, code-invalid, security


def _text(fields: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> None:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise OrderRejected(f"{name} is required", field=name, code="required")
    if not pattern.fullmatch(value):
        raise OrderRejected(f"{name} contains characters that are not allowed", field=name, code="value")


def check_order(fields: Mapping[str, Any], order_type: type[msgspec.Struct]) -> msgspec.Struct:
    """Return the order as the model's ``InfusionOrder`` type, or raise ``OrderRejected`` with the reason."""
    for name in ("order_id", "patient_id", "principal", "nonce"):
        _text(fields, name, _IDENT)
    for name in ("drug", "care_area"):
        _text(fields, name, _TEXT)
    dose_unit = fields.get("dose_unit")
    conc_unit = fields.get("concentration_unit")
    if dose_unit not in DOSE_UNITS:
        raise OrderRejected(f"dose rate unit {str(dose_unit)[:32]!r} is not one of {', '.join(DOSE_UNITS)}",
                            field="dose_unit", code="code-invalid")
    if conc_unit not in CONCENTRATION_UNITS:
        raise OrderRejected(f"concentration unit {str(conc_unit)[:32]!r} is not one of "
                            f"{', '.join(sorted(CONCENTRATION_UNITS))}", field="concentration_unit",
                            code="code-invalid")
    if conc_unit not in DOSE_UNITS[dose_unit]:
        raise OrderRejected(f"a dose in {dose_unit} cannot be given from a concentration in {conc_unit}",
                            field="concentration_unit", code="value")
    for name in ("dose_rate", "concentration", "vtbi_ml"):
        value = fields.get(name)
        if isinstance(value, bool) or not isinstance(value, float | int):
            raise OrderRejected(f"{name} must be a number", field=name, code="value")
        if not value > 0:  # also false for NaN
            raise OrderRejected(f"{name} must be greater than zero", field=name, code="value")
    weight = fields.get("weight_kg")
    if isinstance(weight, bool) or not isinstance(weight, float | int) or weight != weight:
        raise OrderRejected("weight_kg must be a number (0 when not given)", field="weight_kg", code="value")
    if dose_unit in WEIGHT_BASED:
        lo, hi = WEIGHT_RANGE_KG
        if not lo <= weight <= hi:
            raise OrderRejected(f"a dose in {dose_unit} needs a patient weight between {lo:g} and {hi:g} kg",
                                field="weight_kg", code="value")
    elif weight != 0 and not WEIGHT_RANGE_KG[0] <= weight <= WEIGHT_RANGE_KG[1]:
        raise OrderRejected("weight_kg is not a plausible patient weight", field="weight_kg", code="value")
    nonce = fields["nonce"]
    if len(nonce) < MIN_NONCE_LEN:
        raise OrderRejected(f"nonce must have at least {MIN_NONCE_LEN} characters", field="nonce", code="value")
    sent = fields.get("sent_at_ms")
    if isinstance(sent, bool) or not isinstance(sent, int) or sent <= 0:
        raise OrderRejected("sent_at_ms must be a positive integer (ms since the Unix epoch)",
                            field="sent_at_ms", code="value")
    for name in ("cert", "signature"):
        if not isinstance(fields.get(name), bytes) or not fields[name]:
            raise OrderRejected(f"the order is not signed ({name} missing)", field=name, code="security")
    try:
        # The model's bounds (lengths, ranges, enums) and strict types, exactly as the receiver will decode.
        # (the generated types are array-like and frozen: build, then decode exactly as a receiver would)
        return msgspec.msgpack.decode(msgspec.msgpack.encode(order_type(**fields)), type=order_type)
    except (msgspec.ValidationError, ValueError, TypeError) as exc:
        raise OrderRejected(f"outside the model's bounds: {str(exc)[:200]}", code="value") from None


def order_type_from_model(model_path: str) -> type[msgspec.Struct]:
    """The ``InfusionOrder`` type the runtime builds from a model file (tests, benchmark, client)."""
    from septum.model import load
    from septum.runtime.codec import field_spec, message_type

    model, _ = load(model_path)
    msg = model.messages["InfusionOrder"]
    return message_type("InfusionOrder", {n: field_spec(f) for n, f in msg.items()})
