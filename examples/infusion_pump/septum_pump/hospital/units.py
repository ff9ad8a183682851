"""UCUM codes on the wire <-> the model's unit names.

FHIR quantities and HL7 CWE units carry UCUM codes (``ug`` for micrograms, ``U`` or ``[iU]`` for
units); the model's ``InfusionOrder`` uses the names clinicians read on the pump. Anything not listed
here is an unknown unit and the order is refused.
"""

from __future__ import annotations

UCUM_SYSTEM = "http://unitsofmeasure.org"
HL7_UCUM = "UCUM"  # the coding system name in an HL7 v2 CWE (…^code^text^UCUM)

RATE_UNITS: dict[str, str] = {
    "mL/h": "mL/h",
    "mg/h": "mg/h",
    "U/h": "units/h",
    "[iU]/h": "units/h",
    "ug/kg/min": "mcg/kg/min",
}
CONCENTRATION_UNITS: dict[str, str] = {
    "mg/mL": "mg/mL",
    "ug/mL": "mcg/mL",
    "U/mL": "units/mL",
    "[iU]/mL": "units/mL",
    "mL/mL": "mL/mL",
}
# For a FHIR Ratio (numerator quantity per 1 mL): the numerator's code gives the concentration unit.
CONCENTRATION_NUMERATORS: dict[str, str] = {"mg": "mg/mL", "ug": "mcg/mL", "U": "units/mL", "[iU]": "units/mL",
                                            "mL": "mL/mL"}
VOLUME_UNIT = "mL"
WEIGHT_UNIT = "kg"

# model name -> the preferred UCUM code (what the pump and the example client send)
RATE_TO_UCUM = {"mL/h": "mL/h", "mg/h": "mg/h", "units/h": "U/h", "mcg/kg/min": "ug/kg/min"}
CONCENTRATION_TO_UCUM = {"mg/mL": "mg/mL", "mcg/mL": "ug/mL", "units/mL": "U/mL", "mL/mL": "mL/mL"}
NUMERATOR_TO_UCUM = {"mg/mL": "mg", "mcg/mL": "ug", "units/mL": "U", "mL/mL": "mL"}

# LOINC codes accepted for a patient's body weight
BODY_WEIGHT_LOINC = frozenset({"29463-7", "3141-9"})
LOINC_SYSTEM = "http://loinc.org"
