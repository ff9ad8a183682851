"""pump_control's check of a remote (hospital) order when it arrives: drug library and care area.

The network partition is not trusted, so it never decides whether an order is within the limits: it
forwards the order to auth, auth authenticates the hospital and forwards it to pump_control as a
``Command``, and here the order is checked against pump_control's own verified drug library, exactly as a
keypad program would be (``therapy.program.evaluate``), for the care area this pump is set up for. The
verdict goes back to the network partition on ``order_verdicts``, which only relays it to the hospital:

* ``refused``: unknown drug, a care area that is not this pump's, a dose or concentration unit the library
  does not use for the drug, a concentration it does not list, or any hard limit. Nothing is pre-filled.
* ``needs_override``: only soft-limit excesses. Pre-filled, marked so; the clinician who confirms it at
  the pump must override with a reason (and the safety monitor needs that clinician's approval).
* ``prefilled``: within every limit; pre-filled, waiting for a clinician's confirmation.

Nothing here programs the pump: the clinician's ``confirm_order`` re-checks the order as a program.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .therapy.drug_library import DrugLibrary
from .therapy.errors import TherapyError
from .therapy.program import Severity, evaluate
from .therapy.units import AmountUnit
from .therapy_io import program_request

# the model's InfusionOrder concentration units -> the amount unit per mL they name
CONCENTRATION_AMOUNT = {"mg/mL": AmountUnit.MG, "mcg/mL": AmountUnit.MCG, "units/mL": AmountUnit.UNITS,
                        "mL/mL": AmountUnit.ML}


class OrderVerdict(StrEnum):
    REFUSED = "refused"
    PREFILLED = "prefilled"
    NEEDS_OVERRIDE = "needs_override"


@dataclass(frozen=True)
class OrderCheck:
    verdict: OrderVerdict
    reason: str
    concentration: float = 0.0  # in the amount unit program_request uses for the drug (pre-fill value)

    @property
    def refused(self) -> bool:
        return self.verdict is OrderVerdict.REFUSED


def _refused(reason: str) -> OrderCheck:
    return OrderCheck(OrderVerdict.REFUSED, reason[:256])


def check_remote_order(library: DrugLibrary | None, pump_care_area: str, msg: Any) -> OrderCheck:
    """The verdict on an order ``Command`` (fields drug, care_area, dose_unit, concentration,
    concentration_unit, dose_rate, vtbi_ml, weight_kg). Never raises for a bad order."""
    if library is None:
        return _refused("the pump has no verified drug library: no order can be checked")
    care_area = str(msg.care_area or "")
    if care_area != pump_care_area:
        return _refused(f"care area: the order is for {care_area[:32]!r} but this pump is set up for "
                        f"{pump_care_area!r}")
    if care_area not in library.care_areas:
        return _refused(f"care area: {care_area[:32]!r} is not in drug library version {library.version}")
    drug = library.drugs.get(msg.drug)
    if drug is None:
        return _refused(f"drug: {str(msg.drug)[:64]!r} is not in drug library version {library.version}")
    if msg.dose_unit != drug.dose_unit.value:
        return _refused(f"dose_unit: ordered in {str(msg.dose_unit)[:16]!r}; drug library version "
                        f"{library.version} doses {msg.drug} in {drug.dose_unit.value}")
    ordered = CONCENTRATION_AMOUNT.get(msg.concentration_unit)
    # program_request reads a concentration in the unit of the library's first listed concentration
    lib_unit = drug.concentrations[0].unit if drug.concentrations else drug.amount_unit
    if ordered is None or ordered.dimension is not lib_unit.dimension:
        return _refused(f"concentration_unit: {str(msg.concentration_unit)[:16]!r} cannot be a concentration "
                        f"of {msg.drug} (library unit {lib_unit.value}/mL)")
    concentration = float(msg.concentration) * ordered.to_canonical / lib_unit.to_canonical
    try:
        request = program_request(library, drug=msg.drug, care_area=care_area, concentration=concentration,
                                  dose_rate=float(msg.dose_rate), vtbi_ml=float(msg.vtbi_ml),
                                  weight_kg=float(msg.weight_kg), principal=None)
    except TherapyError as exc:
        return _refused(f"request: {exc}")
    _, issues = evaluate(library, request)
    blocking = [i for i in issues if i.severity is not Severity.SOFT]
    where = f"(drug library version {library.version}, care area {care_area})"
    if blocking:
        hard = [i for i in blocking if i.severity is Severity.HARD]
        first = (hard or blocking)[0]
        kind = "hard limit" if hard else "not in the library"
        return _refused(f"{kind}: {first.field}: {first.message} {where}")
    if issues:
        text = "; ".join(f"{i.field}: {i.message}" for i in issues)
        return OrderCheck(OrderVerdict.NEEDS_OVERRIDE,
                          f"soft limit, override with a reason needed at the pump: {text} {where}"[:256],
                          concentration)
    return OrderCheck(OrderVerdict.PREFILLED, "within the drug library's limits; pre-filled, a clinician must "
                      "confirm it at the pump", concentration)
