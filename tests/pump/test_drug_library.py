import pytest
from septum_pump.therapy.drug_library import MAX_LIBRARY_BYTES, load_drug_library
from septum_pump.therapy.errors import DrugLibraryError, TherapyError
from septum_pump.therapy.limits import LimitOutcome, Limits

MINIMAL = """\
format: 1
version: 2
name: test
device: {max_rate_ml_h: 999, kvo_rate_ml_h: 1}
care_areas:
  ward: {label: Ward, max_rate_ml_h: 500, weight_kg: {hard_min: 30, hard_max: 250}}
drugs:
  saline:
    label: Saline
    dose_unit: mL/h
    concentrations: [{amount: 1, unit: mL}]
    limits: {rate: {soft_max: 300, hard_max: 400}}
    care_areas:
      ward: {rate: {soft_max: 200}}
"""


def test_shipped_library_loads(library):
    assert library.version >= 1
    assert {"morphine-pca", "hydromorphone-pca", "heparin", "dopamine", "normal-saline"} <= set(library.drugs)
    assert {"adult-med-surg", "icu"} <= set(library.care_areas)


def test_most_restrictive_limit_wins():
    lib = load_drug_library(MINIMAL.encode())
    entry = lib.entry("saline", "ward")
    # the drug-wide hard 400 applies in the area; the area's soft 200 beats the drug-wide 300
    assert entry.rate == Limits(soft_max=200, hard_max=400)
    stricter = load_drug_library(MINIMAL.replace("{soft_max: 200}", "{hard_min: 5, hard_max: 350}").encode())
    assert stricter.entry("saline", "ward").rate == Limits(hard_min=5, soft_max=300, hard_max=350)
    assert entry.max_rate_ml_h == 500


def test_shipped_library_combines_weight_limits(library):
    assert library.entry("dopamine", "icu").weight_kg.hard_min == 35  # drug's 35 beats the area's 30


def test_limits_combination_keeps_soft_inside_hard():
    combined = Limits(soft_max=10).most_restrictive(Limits(hard_max=8))
    assert combined == Limits(soft_max=8, hard_max=8)
    assert combined.check(9) is LimitOutcome.HARD_HIGH


def test_drug_not_offered_in_a_care_area(library):
    with pytest.raises(TherapyError, match="not available in care area"):
        library.entry("dopamine", "adult-med-surg")
    with pytest.raises(TherapyError, match="not in drug library"):
        library.entry("fentanyl", "icu")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("version: 2", "version: 0", "version"),
        ("version: 2", "version: '2'", "version"),
        ("format: 1", "format: 2", "format"),
        ("label: Saline", "label: Saline\n    colour: blue", "unknown key 'colour'"),
        ("    label: Saline\n", "", "missing key 'label'"),
        ("hard_max: 400}", "hard_max: 100}", "hard_min <= soft_min <= soft_max <= hard_max"),
        ("hard_max: 400}", "hard_max: .nan}", "finite"),
        ("hard_max: 400}", "hard_max: yes}", "must be a number"),
        ("hard_max: 400}", "hard_max: -1}", "at least zero"),
        ("      ward: {rate", "      icu: {rate", "not defined under care_areas"),
        ("dose_unit: mL/h", "dose_unit: drops/min", "not one of"),
        ("dose_unit: mL/h", "dose_unit: mg/h", "cannot be used with mg/h"),
        ("{amount: 1, unit: mL}", "{amount: 1, unit: grains}", "not one of"),
        ("{amount: 1, unit: mL}", "{amount: 2, unit: mL}", "1 mL per mL"),
        ("  saline:", "  Saline!:", "not a valid id"),
        (
            "    limits: {rate: {soft_max: 300, hard_max: 400}}\n",
            "    limits: {rate: {soft_max: 300}}\n",
            "no hard_max",
        ),
        ("weight_kg: {hard_min: 30, hard_max: 250}", "weight_kg: {hard_max: 250}", "hard_min above zero"),
        ("kvo_rate_ml_h: 1}", "kvo_rate_ml_h: 1000}", "must not exceed"),
    ],
)
def test_bad_library_is_refused_with_a_path(old, new, message):
    assert old in MINIMAL
    with pytest.raises(DrugLibraryError, match=message):
        load_drug_library(MINIMAL.replace(old, new, 1).encode())


def test_duplicate_keys_are_refused():
    text = MINIMAL.replace("version: 2", "version: 2\nversion: 3")
    with pytest.raises(DrugLibraryError, match="duplicate key 'version'"):
        load_drug_library(text.encode())


def test_aliases_are_refused():
    text = MINIMAL.replace("weight_kg: {hard_min: 30, hard_max: 250}}", "weight_kg: &w {hard_min: 30, hard_max: 250}}")
    text += "  other:\n    label: Other\n    dose_unit: mL/h\n    concentrations: [{amount: 1, unit: mL}]\n"
    text += "    care_areas: {ward: {rate: *w}}\n"
    with pytest.raises(DrugLibraryError, match="aliases"):
        load_drug_library(text.encode())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"format: [1", "not valid YAML"),
        (b"- a list", "must be a mapping"),
        (b"", "must be a mapping"),
        (b"!!python/object:os.system {}", "not valid YAML"),
        (b"x" * (MAX_LIBRARY_BYTES + 1), "larger than"),
    ],
)
def test_garbage_is_refused_cleanly(data, message):
    with pytest.raises(DrugLibraryError, match=message):
        load_drug_library(data)


def test_text_instead_of_bytes_is_refused():
    with pytest.raises(DrugLibraryError, match="bytes"):
        load_drug_library(MINIMAL)  # type: ignore[arg-type]


def test_pca_section_needs_its_safety_bounds():
    pca = (
        "      ward:\n        rate: {hard_max: 2}\n        pca:\n"
        "          demand_dose: {soft_max: 2}\n          lockout_min: {hard_min: 5}\n"
        "          max_boluses_per_hour: {hard_max: 6}\n          limit_1h: {hard_max: 10}\n"
        "          limit_4h: {hard_max: 30}\n          bolus_rate_ml_h: 60\n"
    )
    text = MINIMAL.split("  saline:")[0] + (
        "  morphine:\n    label: M\n    dose_unit: mg/h\n    concentrations: [{amount: 1, unit: mg}]\n"
        "    care_areas:\n" + pca
    )
    with pytest.raises(DrugLibraryError, match="demand_dose: needs a hard_max"):
        load_drug_library(text.encode())
    fixed = text.replace("demand_dose: {soft_max: 2}", "demand_dose: {hard_max: 2}")
    assert load_drug_library(fixed.encode()).entry("morphine", "ward").pca is not None
