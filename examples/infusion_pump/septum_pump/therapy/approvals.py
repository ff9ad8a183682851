"""Clinicians' soft-limit approvals as the safety monitor holds them.

A soft-limit excess runs only when an authenticated clinician approved *that* prescription. The approval
comes from the auth service on its own channel (the runtime guarantees that only auth holds its sending
end), names the clinician auth authenticated, the prescription as entered at the keypad and the reason.
The monitor matches it against the program pump_control sends; the controller's own claim that a clinician
confirmed (``soft_limit_confirmed``) is never enough. An approval is good for one program and for
``ttl_s`` of device time after it arrived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .program import CLINICIAN_ROLE, MAX_ID_LEN, MAX_REASON_LEN

DEFAULT_TTL_S = 120.0  # device seconds: the clinician approves what is being programmed now, not later
MAX_HELD = 4  # approvals kept at once (the oldest goes first): a flood cannot grow the monitor
_REL_TOL = 1e-9  # the same decimal value through two float paths; never a clinical difference


@dataclass(frozen=True)
class Prescription:
    """The values a program is made from, as entered (concentration is amount per mL)."""

    drug: str
    concentration: float
    dose_rate: float
    vtbi_ml: float
    weight_kg: float
    pca: tuple[float, ...] = (0.0,) * 6  # the per-patient PCA fields as entered (therapy_io.PCA_FIELDS)

    def matches(self, other: Prescription) -> bool:
        if self.drug != other.drug or len(self.pca) != len(other.pca):
            return False
        pairs = ((self.concentration, other.concentration), (self.dose_rate, other.dose_rate),
                 (self.vtbi_ml, other.vtbi_ml), (self.weight_kg, other.weight_kg),
                 *zip(self.pca, other.pca, strict=True))
        return all(math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=0.0) for a, b in pairs)

    def describe(self) -> str:
        return (f"{self.drug} {self.concentration:g}/mL rate {self.dose_rate:g} vtbi {self.vtbi_ml:g} mL"
                + (f" weight {self.weight_kg:g} kg" if self.weight_kg > 0 else "")
                + (" pca " + "/".join(f"{v:g}" for v in self.pca) if any(self.pca) else ""))


@dataclass(frozen=True)
class Approval:
    principal: str
    reason: str
    prescription: Prescription
    received_at: float  # device time at the monitor


class ApprovalRefused(ValueError):
    """An approval the monitor will not hold (the message says why)."""


class ApprovalBook:
    def __init__(self, ttl_s: float = DEFAULT_TTL_S) -> None:
        if not (math.isfinite(ttl_s) and ttl_s > 0):
            raise ValueError("the approval lifetime must be a positive number of seconds")
        self.ttl_s = ttl_s
        self._held: list[Approval] = []

    def add(self, *, principal: str, role: str, reason: str, prescription: Prescription, now: float) -> Approval:
        """Check what auth forwarded and hold it. Auth only forwards a clinician's approval; the monitor
        checks again what it can check itself (role, who, a printable reason, plausible values)."""
        if role != CLINICIAN_ROLE:
            raise ApprovalRefused(f"role {role!r} may not approve a soft-limit excess")
        if not principal or len(principal) > MAX_ID_LEN or not principal.isprintable():
            raise ApprovalRefused("the approval names no authenticated clinician")
        why = reason.strip()
        if not why:
            raise ApprovalRefused("a soft-limit approval needs a reason")
        if len(why) > MAX_REASON_LEN or not why.isprintable():
            raise ApprovalRefused(f"the reason must be printable and at most {MAX_REASON_LEN} characters")
        rx = prescription
        if not rx.drug or not all(math.isfinite(v) and v >= 0 for v in (rx.concentration, rx.dose_rate,
                                                                        rx.vtbi_ml, rx.weight_kg, *rx.pca)):
            raise ApprovalRefused("the approval names no valid prescription")
        self.expire(now)
        self._held = [a for a in self._held if not a.prescription.matches(rx)]  # the newest decision counts
        approval = Approval(principal, why, rx, now)
        self._held.append(approval)
        del self._held[:-MAX_HELD]
        return approval

    def expire(self, now: float) -> None:
        self._held = [a for a in self._held if self.valid(a, now)]

    def valid(self, approval: Approval, now: float) -> bool:
        # an approval from the future (clock stepped back) is not trusted either
        return approval.received_at <= now <= approval.received_at + self.ttl_s

    def find(self, prescription: Prescription, now: float) -> Approval | None:
        """The newest unexpired approval of exactly this prescription."""
        self.expire(now)
        for a in reversed(self._held):
            if a.prescription.matches(prescription):
                return a
        return None

    def consume(self, approval: Approval) -> None:
        """An approval is good for one program."""
        self._held = [a for a in self._held if a is not approval]

    def __len__(self) -> int:
        return len(self._held)
