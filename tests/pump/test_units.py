import math

import pytest
from septum_pump.therapy.errors import TherapyError
from septum_pump.therapy.units import (
    AmountUnit,
    Concentration,
    DoseUnit,
    amount_to_ml,
    dose_rate_to_ml_h,
    ml_h_to_dose_rate,
    ml_to_amount,
)

DOPAMINE = Concentration(400, AmountUnit.MG, 250)  # 1600 mcg/mL
HEPARIN = Concentration(25000, AmountUnit.UNITS, 250)  # 100 units/mL


def test_weight_based_rate_converts_factor_by_factor():
    # 5 mcg/kg/min x 80 kg x 60 min/h = 24000 mcg/h; / 1600 mcg/mL = 15 mL/h
    assert dose_rate_to_ml_h(5, DoseUnit.MCG_KG_MIN, DOPAMINE, 80) == pytest.approx(15.0)


def test_activity_and_mass_rates():
    assert dose_rate_to_ml_h(1000, DoseUnit.UNITS_H, HEPARIN) == pytest.approx(10.0)
    assert dose_rate_to_ml_h(2, DoseUnit.MG_H, Concentration(1, AmountUnit.MG)) == pytest.approx(2.0)
    assert dose_rate_to_ml_h(500, DoseUnit.MCG_H, Concentration(1, AmountUnit.MG)) == pytest.approx(0.5)
    assert dose_rate_to_ml_h(18, DoseUnit.UNITS_KG_H, HEPARIN, 70) == pytest.approx(12.6)


@pytest.mark.parametrize("unit", list(DoseUnit))
def test_round_trip(unit):
    conc = {
        "mass": DOPAMINE,
        "activity": HEPARIN,
        "volume": Concentration(1, AmountUnit.ML, 1),
    }[unit.dimension.value]
    rate_ml_h = dose_rate_to_ml_h(3.7, unit, conc, 72.5)
    assert ml_h_to_dose_rate(rate_ml_h, unit, conc, 72.5) == pytest.approx(3.7)


def test_amounts_and_volumes():
    assert amount_to_ml(2, AmountUnit.MG, Concentration(0.2, AmountUnit.MG)) == pytest.approx(10.0)
    assert ml_to_amount(10, AmountUnit.MCG, DOPAMINE) == pytest.approx(16000.0)


def test_concentrations_match_whatever_way_they_are_written():
    assert DOPAMINE.matches(Concentration(1.6, AmountUnit.MG, 1))
    assert DOPAMINE.matches(Concentration(1600, AmountUnit.MCG, 1))
    assert not DOPAMINE.matches(Concentration(3.2, AmountUnit.MG, 1))
    assert not HEPARIN.matches(Concentration(100, AmountUnit.MG, 1))  # units are not milligrams


def test_incompatible_units_and_missing_weight_are_errors():
    with pytest.raises(TherapyError, match="cannot be used"):
        dose_rate_to_ml_h(10, DoseUnit.UNITS_H, DOPAMINE)
    with pytest.raises(TherapyError, match="weight"):
        dose_rate_to_ml_h(5, DoseUnit.MCG_KG_MIN, DOPAMINE)
    with pytest.raises(TherapyError, match="greater than zero"):
        dose_rate_to_ml_h(5, DoseUnit.MCG_KG_MIN, DOPAMINE, 0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, "5", True, None])
def test_non_numbers_are_refused(bad):
    with pytest.raises(TherapyError):
        dose_rate_to_ml_h(bad, DoseUnit.MG_H, DOPAMINE)


@pytest.mark.parametrize(
    ("amount", "unit", "volume"),
    [(0, AmountUnit.MG, 1), (1, AmountUnit.MG, 0), (-1, AmountUnit.MG, 1), (2, AmountUnit.ML, 1)],
)
def test_bad_concentrations(amount, unit, volume):
    with pytest.raises(TherapyError):
        Concentration(amount, unit, volume)
