"""Errors raised by the therapy logic.

Every error a user, a clinician, a peer partition or an attacker can cause is a ``TherapyError`` with a
message meant to be shown or audited; nothing here lets a raw ``KeyError``/``TypeError`` escape for bad
input.
"""

from __future__ import annotations

import math


class TherapyError(Exception):
    """Base class for every rejected input in the therapy package."""


class DrugLibraryError(TherapyError):
    """The drug library text is malformed or inconsistent; the library is refused as a whole."""


class ClockError(TherapyError):
    """A time argument is not finite or goes backwards."""


def require_finite(value: object, what: str) -> float:
    """Return ``value`` as a float, or raise ``TherapyError`` if it is not a finite real number.

    ``bool`` is refused on purpose: ``True`` is an ``int`` in Python, and "rate: yes" must not mean 1 mL/h.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TherapyError(f"{what} must be a number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise TherapyError(f"{what} must be a finite number, got {value!r}")
    return result


def require_positive_fields(obj: object, *names: str) -> None:
    """Raise ``TherapyError`` unless each named attribute of ``obj`` is a finite number above zero
    (the period and timeout settings of the controller and of the monitor)."""
    for name in names:
        if require_finite(getattr(obj, name), name) <= 0:
            raise TherapyError(f"{name} must be greater than zero")


def require_time(now: object, previous: float | None, what: str = "time") -> float:
    """Validate a clock reading: finite and never earlier than the previous one seen."""
    try:
        value = require_finite(now, what)
    except TherapyError as exc:
        raise ClockError(str(exc)) from None
    if previous is not None and value < previous:
        raise ClockError(f"{what} went backwards: {value} s after {previous} s")
    return value
