"""The one unit table: UCUM and MDC codes on the wire <-> the drug library's unit names.

FHIR quantities and HL7 CWE units carry UCUM codes (``ug`` for micrograms, ``U`` or ``[iU]`` for units);
IHE PCD messages prefer ISO/IEEE 11073-10101 (MDC) unit codes (``263762^MDC_DIM_MILLI_L^MDC``). The
model's ``InfusionOrder`` uses the names clinicians read on the pump. Anything not listed is an unknown
unit and the order is refused.

Case rule (UCUM's case-sensitive form, the one FHIR and HL7 ``UCUM`` mean): codes are compared exactly,
never case-folded, because case changes the meaning (``ML`` is megalitre, ``mL`` millilitre). UCUM
defines the litre with two case-sensitive symbols, ``l`` and ``L``, so ``ml/h`` and ``mL/h`` are the same
unit and both are listed; ``mcg``, ``hr`` and ``ML/H`` are not UCUM and are refused.
MDC codes are the partition-4 (dimension) codes: 4 * 65536 + the 11073-10101 term code.
"""

from __future__ import annotations

UCUM_SYSTEM = "http://unitsofmeasure.org"
HL7_UCUM = "UCUM"  # the coding system name in an HL7 v2 CWE (…^code^text^UCUM)
HL7_MDC = "MDC"


def _litre_spellings(table: dict[str, str]) -> dict[str, str]:
    """Add the ``l`` spelling of every code written with ``L`` (UCUM's two litre symbols)."""
    out = dict(table)
    for code, name in table.items():
        out.setdefault(code.replace("mL", "ml"), name)
    return out


# UCUM (case-sensitive) code -> library unit
RATE_UNITS: dict[str, str] = _litre_spellings({
    "mL/h": "mL/h",
    "mg/h": "mg/h",
    "U/h": "units/h",
    "[iU]/h": "units/h",
    "ug/kg/min": "mcg/kg/min",
})
CONCENTRATION_UNITS: dict[str, str] = _litre_spellings({
    "mg/mL": "mg/mL",
    "ug/mL": "mcg/mL",
    "U/mL": "units/mL",
    "[iU]/mL": "units/mL",
    "mL/mL": "mL/mL",
})
CONCENTRATION_UNITS.update({"ml/mL": "mL/mL", "mL/ml": "mL/mL"})
# an amount (the numerator of a strength given as amount per volume) -> the concentration it makes per mL
CONCENTRATION_NUMERATORS: dict[str, str] = {"mg": "mg/mL", "ug": "mcg/mL", "U": "units/mL", "[iU]": "units/mL",
                                            "mL": "mL/mL", "ml": "mL/mL"}
VOLUME_UNITS: dict[str, str] = {"mL": "mL", "ml": "mL"}
WEIGHT_UNITS: dict[str, str] = {"kg": "kg"}
VOLUME_UNIT = "mL"
WEIGHT_UNIT = "kg"

# MDC unit code -> (its reference id, library unit)
MDC_RATE_UNITS: dict[str, tuple[str, str]] = {
    "265266": ("MDC_DIM_MILLI_L_PER_HR", "mL/h"),
    "265522": ("MDC_DIM_MILLI_G_PER_HR", "mg/h"),
    "267840": ("MDC_DIM_INTL_UNIT_PER_HR", "units/h"),
    "265619": ("MDC_DIM_MICRO_G_PER_KG_PER_MIN", "mcg/kg/min"),
}
MDC_CONCENTRATION_UNITS: dict[str, tuple[str, str]] = {
    "264306": ("MDC_DIM_MILLI_G_PER_ML", "mg/mL"),
    "264307": ("MDC_DIM_MICRO_G_PER_ML", "mcg/mL"),
    "267744": ("MDC_DIM_INTL_UNIT_PER_ML", "units/mL"),
}
# amounts, as concentrations per mL (RXG-18 amount unit with RXG-24 volume)
MDC_CONCENTRATION_NUMERATORS: dict[str, tuple[str, str]] = {
    "263890": ("MDC_DIM_MILLI_G", "mg/mL"),
    "263891": ("MDC_DIM_MICRO_G", "mcg/mL"),
    "267616": ("MDC_DIM_INTL_UNIT", "units/mL"),
    "263762": ("MDC_DIM_MILLI_L", "mL/mL"),
}
MDC_VOLUME_UNITS: dict[str, tuple[str, str]] = {"263762": ("MDC_DIM_MILLI_L", "mL")}
MDC_WEIGHT_UNITS: dict[str, tuple[str, str]] = {"263875": ("MDC_DIM_KILO_G", "kg")}

# model name -> the preferred UCUM code (what the pump and the example client send)
RATE_TO_UCUM = {"mL/h": "mL/h", "mg/h": "mg/h", "units/h": "U/h", "mcg/kg/min": "ug/kg/min"}
CONCENTRATION_TO_UCUM = {"mg/mL": "mg/mL", "mcg/mL": "ug/mL", "units/mL": "U/mL", "mL/mL": "mL/mL"}
NUMERATOR_TO_UCUM = {"mg/mL": "mg", "mcg/mL": "ug", "units/mL": "U", "mL/mL": "mL"}

# codes accepted for a patient's body weight: LOINC (HL7 "LN") and the MDC attribute
BODY_WEIGHT_LOINC = frozenset({"29463-7", "3141-9"})
LOINC_SYSTEM = "http://loinc.org"
HL7_LOINC = "LN"
MDC_PATIENT_WEIGHT = ("68063", "MDC_ATTR_PT_WEIGHT")
