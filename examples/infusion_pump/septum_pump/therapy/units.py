"""Dose units, concentrations and conversions.

The motor only knows volume: everything the clinician programs is converted to mL/h (rates) and mL
(amounts) through the concentration and, for weight-based units, the patient's weight. Conversions are
written out factor by factor so that a reviewer can check each one.

Drug amounts are held in a *canonical* unit per dimension: mass in mg, activity in units, plain fluid in
mL. A "mcg/kg/min" rate is therefore converted as
    mL/h = dose [mcg/kg/min] x weight [kg] x 60 [min/h] x 0.001 [mg/mcg] / concentration [mg/mL].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from .errors import TherapyError, require_finite

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_MINUTE = 60.0

# Relative tolerance used when two quantities written differently must be "the same" (for example a
# concentration of 400 mg / 250 mL against 1.6 mg/mL). It is far below any clinically meaningful
# difference and far above float rounding.
MATCH_REL_TOL = 1e-6


class Dimension(StrEnum):
    """What a drug amount measures; amounts of different dimensions never convert into each other."""

    MASS = "mass"
    ACTIVITY = "activity"  # international units (heparin, insulin)
    VOLUME = "volume"  # plain fluids: the "amount" is the volume itself


class AmountUnit(StrEnum):
    G = "g"
    MG = "mg"
    MCG = "mcg"
    UNITS = "units"
    ML = "mL"

    @property
    def dimension(self) -> Dimension:
        return _AMOUNT_DIMENSION[self]

    @property
    def to_canonical(self) -> float:
        """Factor that converts one of this unit into the canonical unit of its dimension."""
        return _AMOUNT_TO_CANONICAL[self]


_AMOUNT_DIMENSION = {
    AmountUnit.G: Dimension.MASS,
    AmountUnit.MG: Dimension.MASS,
    AmountUnit.MCG: Dimension.MASS,
    AmountUnit.UNITS: Dimension.ACTIVITY,
    AmountUnit.ML: Dimension.VOLUME,
}
# canonical: mg for mass, units for activity, mL for volume
_AMOUNT_TO_CANONICAL = {
    AmountUnit.G: 1000.0,
    AmountUnit.MG: 1.0,
    AmountUnit.MCG: 0.001,
    AmountUnit.UNITS: 1.0,
    AmountUnit.ML: 1.0,
}


@dataclass(frozen=True)
class _DoseUnitParts:
    amount: AmountUnit
    per_kg: bool
    seconds_per_time_unit: float


class DoseUnit(StrEnum):
    """A dose *rate* unit as programmed by a clinician."""

    ML_H = "mL/h"
    MG_H = "mg/h"
    MCG_H = "mcg/h"
    UNITS_H = "units/h"
    MCG_KG_MIN = "mcg/kg/min"
    UNITS_KG_H = "units/kg/h"

    @property
    def amount_unit(self) -> AmountUnit:
        """Unit of a single dose (bolus, 1 h limit...) for a drug programmed in this rate unit."""
        return _DOSE_UNIT_PARTS[self].amount

    @property
    def weight_based(self) -> bool:
        return _DOSE_UNIT_PARTS[self].per_kg

    @property
    def dimension(self) -> Dimension:
        return self.amount_unit.dimension

    @property
    def plain_hourly(self) -> bool:
        """An amount per hour, not per kg (the only kind of unit PCA dose windows are defined for)."""
        parts = _DOSE_UNIT_PARTS[self]
        return not parts.per_kg and parts.seconds_per_time_unit == SECONDS_PER_HOUR


_DOSE_UNIT_PARTS = {
    DoseUnit.ML_H: _DoseUnitParts(AmountUnit.ML, False, SECONDS_PER_HOUR),
    DoseUnit.MG_H: _DoseUnitParts(AmountUnit.MG, False, SECONDS_PER_HOUR),
    DoseUnit.MCG_H: _DoseUnitParts(AmountUnit.MCG, False, SECONDS_PER_HOUR),
    DoseUnit.UNITS_H: _DoseUnitParts(AmountUnit.UNITS, False, SECONDS_PER_HOUR),
    DoseUnit.MCG_KG_MIN: _DoseUnitParts(AmountUnit.MCG, True, SECONDS_PER_MINUTE),
    DoseUnit.UNITS_KG_H: _DoseUnitParts(AmountUnit.UNITS, True, SECONDS_PER_HOUR),
}


@dataclass(frozen=True)
class Concentration:
    """``amount`` of drug (in ``unit``) dissolved in ``volume_ml`` mL, e.g. 400 mg in 250 mL."""

    amount: float
    unit: AmountUnit
    volume_ml: float = 1.0

    def __post_init__(self) -> None:
        amount = require_finite(self.amount, "concentration amount")
        volume = require_finite(self.volume_ml, "concentration volume")
        if not isinstance(self.unit, AmountUnit):
            raise TherapyError(f"concentration unit must be an AmountUnit, got {self.unit!r}")
        if amount <= 0 or volume <= 0:
            raise TherapyError("concentration amount and volume must both be greater than zero")
        if self.unit is AmountUnit.ML and not math.isclose(amount, volume, rel_tol=MATCH_REL_TOL):
            raise TherapyError("a plain fluid's concentration must be 1 mL per mL")

    @property
    def dimension(self) -> Dimension:
        return self.unit.dimension

    @property
    def canonical_per_ml(self) -> float:
        """Canonical amount (mg, units or mL) per mL of solution."""
        return self.amount * self.unit.to_canonical / self.volume_ml

    def matches(self, other: Concentration) -> bool:
        """Same dimension and the same amount per mL, whatever way each was written."""
        return self.dimension is other.dimension and math.isclose(
            self.canonical_per_ml, other.canonical_per_ml, rel_tol=MATCH_REL_TOL
        )

    def describe(self) -> str:
        if self.volume_ml == 1.0:
            return f"{self.amount:g} {self.unit}/mL"
        return f"{self.amount:g} {self.unit} in {self.volume_ml:g} mL"


PLAIN_FLUID = Concentration(1.0, AmountUnit.ML, 1.0)


def _check_compatible(dose_unit: DoseUnit, concentration: Concentration) -> None:
    if dose_unit.dimension is not concentration.dimension:
        raise TherapyError(f"dose unit {dose_unit} cannot be used with a concentration in {concentration.unit}")


def _weight_factor(dose_unit: DoseUnit, weight_kg: float | None) -> float:
    if not dose_unit.weight_based:
        return 1.0
    if weight_kg is None:
        raise TherapyError(f"dose unit {dose_unit} needs the patient's weight")
    weight = require_finite(weight_kg, "weight")
    if weight <= 0:
        raise TherapyError("weight must be greater than zero")
    return weight


def dose_rate_to_ml_h(
    rate: float, dose_unit: DoseUnit, concentration: Concentration, weight_kg: float | None = None
) -> float:
    """Convert a dose rate in ``dose_unit`` to a pump rate in mL/h."""
    value = require_finite(rate, "rate")
    _check_compatible(dose_unit, concentration)
    parts = _DOSE_UNIT_PARTS[dose_unit]
    canonical_per_time_unit = value * parts.amount.to_canonical * _weight_factor(dose_unit, weight_kg)
    canonical_per_hour = canonical_per_time_unit * (SECONDS_PER_HOUR / parts.seconds_per_time_unit)
    return canonical_per_hour / concentration.canonical_per_ml


def ml_h_to_dose_rate(
    rate_ml_h: float, dose_unit: DoseUnit, concentration: Concentration, weight_kg: float | None = None
) -> float:
    """Inverse of :func:`dose_rate_to_ml_h`: what a pump rate in mL/h means in ``dose_unit``."""
    value = require_finite(rate_ml_h, "rate in mL/h")
    _check_compatible(dose_unit, concentration)
    parts = _DOSE_UNIT_PARTS[dose_unit]
    canonical_per_hour = value * concentration.canonical_per_ml
    canonical_per_time_unit = canonical_per_hour * (parts.seconds_per_time_unit / SECONDS_PER_HOUR)
    return canonical_per_time_unit / (parts.amount.to_canonical * _weight_factor(dose_unit, weight_kg))


def amount_to_ml(amount: float, unit: AmountUnit, concentration: Concentration) -> float:
    """Volume in mL that holds ``amount`` of drug (a bolus, a 1 h limit, a total dose)."""
    value = require_finite(amount, "amount")
    if unit.dimension is not concentration.dimension:
        raise TherapyError(f"an amount in {unit} cannot be used with a concentration in {concentration.unit}")
    return value * unit.to_canonical / concentration.canonical_per_ml


def ml_to_amount(volume_ml: float, unit: AmountUnit, concentration: Concentration) -> float:
    """Amount of drug (in ``unit``) held in ``volume_ml`` mL."""
    value = require_finite(volume_ml, "volume")
    if unit.dimension is not concentration.dimension:
        raise TherapyError(f"an amount in {unit} cannot be used with a concentration in {concentration.unit}")
    return value * concentration.canonical_per_ml / unit.to_canonical
