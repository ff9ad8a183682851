"""Shared fixtures for the pump therapy tests: the shipped drug library and typical requests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from septum_pump.therapy.drug_library import DrugLibrary, load_drug_library
from septum_pump.therapy.program import Origin, PcaRequest, Principal, ProgramRequest
from septum_pump.therapy.units import AmountUnit, Concentration, DoseUnit

LIBRARY_PATH = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump" / "drug_library.yaml"
NURSE = Principal(id="nurse-7", role="clinician", authenticated=True)


@pytest.fixture(scope="session")
def library_bytes() -> bytes:
    return LIBRARY_PATH.read_bytes()


@pytest.fixture(scope="session")
def library(library_bytes: bytes) -> DrugLibrary:
    return load_drug_library(library_bytes)


def morphine_pca(**changes: object) -> ProgramRequest:
    """Morphine 1 mg/mL on adult-med-surg: basal 0.5 mg/h, 1 mg demand, 10 min lockout, 8 mg/h, 25 mg/4 h."""
    base = ProgramRequest(
        drug_id="morphine-pca",
        care_area="adult-med-surg",
        concentration=Concentration(1, AmountUnit.MG, 1),
        dose_unit=DoseUnit.MG_H,
        rate=0.5,
        vtbi_ml=50,
        pca=PcaRequest(demand_dose=1, lockout_min=10, max_boluses_per_hour=4, limit_1h=8, limit_4h=25),
        origin=Origin.LOCAL_KEYPAD,
        principal=NURSE,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def heparin(**changes: object) -> ProgramRequest:
    base = ProgramRequest(
        drug_id="heparin",
        care_area="adult-med-surg",
        concentration=Concentration(25000, AmountUnit.UNITS, 250),
        dose_unit=DoseUnit.UNITS_H,
        rate=1000,
        vtbi_ml=250,
        principal=NURSE,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def dopamine(**changes: object) -> ProgramRequest:
    base = ProgramRequest(
        drug_id="dopamine",
        care_area="icu",
        concentration=Concentration(400, AmountUnit.MG, 250),
        dose_unit=DoseUnit.MCG_KG_MIN,
        rate=5,
        vtbi_ml=250,
        weight_kg=80,
        principal=NURSE,
    )
    return replace(base, **changes)  # type: ignore[arg-type]
