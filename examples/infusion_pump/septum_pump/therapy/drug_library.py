"""The drug library (DERS: dose error reduction system).

The library is data, loaded strictly from bytes: unknown keys, duplicate keys, YAML aliases, wrong types,
non-finite numbers, limits out of order and references to unknown care areas are all errors that name the
offending path (``drugs.morphine.care_areas.icu.rate.hard_max``). A library with any error is refused as a
whole; the caller keeps the library it had. Checking the signature and the anti-rollback version belongs to
the update service: this module only parses and validates.

Shape (see examples/infusion_pump/drug_library.yaml and docs/pump-therapy.md)::

    format: 1
    version: 3
    name: ...
    device: {max_rate_ml_h: 999, kvo_rate_ml_h: 1}
    care_areas:
      icu: {label: ..., max_rate_ml_h: 999, weight_kg: {hard_min: .., hard_max: ..}}
    drugs:
      morphine:
        label: Morphine
        dose_unit: mg/h
        concentrations: [{amount: 1, unit: mg, volume_ml: 1}]
        limits: {rate: {...}, dose: {...}, bolus: {...}, weight_kg: {...}}   # every care area
        care_areas:
          icu: {rate: {...}, dose: {...}, bolus: {...}, weight_kg: {...}, kvo_rate_ml_h: .., pca: {...}}

For each (drug, care area) the applicable limits are combined with :meth:`Limits.most_restrictive`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import yaml

from .errors import DrugLibraryError, TherapyError
from .limits import Limits
from .titration import TitrationRule, default_rule
from .units import AmountUnit, Concentration, DoseUnit

LIBRARY_FORMAT = 1
MAX_LIBRARY_BYTES = 1 << 20  # a real library is tens of kB; refuse anything absurd before parsing
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class CareArea:
    id: str
    label: str
    max_rate_ml_h: float
    weight_kg: Limits


@dataclass(frozen=True)
class PcaRules:
    """PCA parameters a clinician may program, each with soft/hard bounds (amounts in the drug's unit)."""

    demand_dose: Limits
    lockout_min: Limits
    max_boluses_per_hour: Limits
    limit_1h: Limits
    limit_4h: Limits
    bolus_rate_ml_h: float
    # patient boluses one prescription may give in all (optional: ``None`` means no per-prescription count)
    boluses_per_program: Limits | None = None


@dataclass(frozen=True)
class DrugRules:
    """Limits from one level of the library (drug-wide, or drug within a care area)."""

    rate: Limits
    dose: Limits
    bolus: Limits
    weight_kg: Limits
    kvo_rate_ml_h: float | None
    pca: PcaRules | None
    titration: TitrationRule | None = None


@dataclass(frozen=True)
class Drug:
    id: str
    label: str
    dose_unit: DoseUnit
    concentrations: tuple[Concentration, ...]
    general: DrugRules
    care_areas: Mapping[str, DrugRules]

    @property
    def amount_unit(self) -> AmountUnit:
        return self.dose_unit.amount_unit


@dataclass(frozen=True)
class DrugEntry:
    """Everything that applies to one drug in one care area, already combined (most restrictive wins).

    ``rate`` is in the drug's dose unit; ``dose`` (total amount to infuse) and ``bolus`` are in the drug's
    amount unit; ``max_rate_ml_h`` is the pump-rate ceiling from the device and the care area.
    """

    drug: Drug
    care_area: CareArea
    library_version: int
    rate: Limits
    dose: Limits
    bolus: Limits
    weight_kg: Limits
    max_rate_ml_h: float
    kvo_rate_ml_h: float
    pca: PcaRules | None
    titration: TitrationRule | None = None  # always set by ``DrugLibrary.entry`` (the default when not given)

    def concentration_allowed(self, concentration: Concentration) -> bool:
        return any(c.matches(concentration) for c in self.drug.concentrations)


@dataclass(frozen=True)
class DrugLibrary:
    version: int
    name: str
    device_max_rate_ml_h: float
    kvo_rate_ml_h: float
    care_areas: Mapping[str, CareArea]
    drugs: Mapping[str, Drug]

    def entry(self, drug_id: str, care_area_id: str) -> DrugEntry:
        """The combined rules for ``drug_id`` in ``care_area_id``; ``TherapyError`` if not in the library."""
        drug = self.drugs.get(drug_id)
        if drug is None:
            raise TherapyError(f"drug {drug_id!r} is not in drug library version {self.version}")
        area = self.care_areas.get(care_area_id)
        if area is None:
            raise TherapyError(f"care area {care_area_id!r} is not in drug library version {self.version}")
        local = drug.care_areas.get(care_area_id)
        if local is None:
            raise TherapyError(f"drug {drug_id!r} is not available in care area {care_area_id!r}")
        return _combine(self, drug, area, local)


def _combine(library: DrugLibrary, drug: Drug, area: CareArea, local: DrugRules) -> DrugEntry:
    general = drug.general
    bolus = general.bolus.most_restrictive(local.bolus)
    pca = local.pca
    if pca is not None:
        # A PCA demand dose is a bolus: the bolus limits apply to it as well.
        pca = PcaRules(
            demand_dose=pca.demand_dose.most_restrictive(bolus),
            lockout_min=pca.lockout_min,
            max_boluses_per_hour=pca.max_boluses_per_hour,
            limit_1h=pca.limit_1h,
            limit_4h=pca.limit_4h,
            bolus_rate_ml_h=min(pca.bolus_rate_ml_h, area.max_rate_ml_h, library.device_max_rate_ml_h),
            boluses_per_program=pca.boluses_per_program,
        )
    kvo = local.kvo_rate_ml_h if local.kvo_rate_ml_h is not None else library.kvo_rate_ml_h
    rate = general.rate.most_restrictive(local.rate)
    titration = local.titration or general.titration
    if titration is None and rate.hard_max is not None:
        titration = default_rule(rate.hard_max)
    return DrugEntry(
        drug=drug,
        care_area=area,
        library_version=library.version,
        rate=rate,
        dose=general.dose.most_restrictive(local.dose),
        bolus=bolus,
        weight_kg=area.weight_kg.most_restrictive(general.weight_kg).most_restrictive(local.weight_kg),
        max_rate_ml_h=min(area.max_rate_ml_h, library.device_max_rate_ml_h),
        kvo_rate_ml_h=kvo,
        pca=pca,
        titration=titration,
    )


# --------------------------------------------------------------------------------------------- loading


MAX_NESTING = 32  # the library is a few levels deep; more is refused before anything is built


class _NoDuplicates:
    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[attr-defined]
            if key in seen:
                raise DrugLibraryError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


class _StrictLoader(_NoDuplicates, yaml.SafeLoader):
    """A safe YAML loader that also refuses duplicate keys and aliases (no silent overrides, no bombs)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise DrugLibraryError(f"line {event.start_mark.line + 1}: YAML aliases are not allowed")
        return super().compose_node(parent, index)


# libyaml parses the library ~30x faster than the pure-Python loader (about 1 ms instead of 40 ms): the
# safety monitor verifies it on its event loop, and a 50 ms heartbeat leaves no room for 40 ms of parsing
# on a busy host. Its composer is C code, so aliases and nesting are refused from the event stream first.
_FastLoader: type | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _StrictCLoader(_NoDuplicates, yaml.CSafeLoader):  # type: ignore[misc, name-defined]
        pass

    _FastLoader = _StrictCLoader


def _check_events(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):  # type: ignore[attr-defined]
        if isinstance(event, yaml.AliasEvent):
            raise DrugLibraryError(f"line {event.start_mark.line + 1}: YAML aliases are not allowed")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                raise DrugLibraryError(f"line {event.start_mark.line + 1}: the drug library is nested too deeply")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _load_yaml(text: str) -> Any:
    if _FastLoader is None:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    _check_events(text)
    return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a CSafeLoader that also refuses duplicates


def load_drug_library(data: bytes) -> DrugLibrary:
    """Parse and validate a drug library. Raises ``DrugLibraryError`` naming the first problem found."""
    if not isinstance(data, bytes | bytearray):
        raise DrugLibraryError("the drug library must be given as bytes")
    if len(data) > MAX_LIBRARY_BYTES:
        raise DrugLibraryError(f"the drug library is larger than {MAX_LIBRARY_BYTES} bytes")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DrugLibraryError(f"the drug library is not valid UTF-8 (byte {exc.start})") from None
    try:
        raw = _load_yaml(text)
    except yaml.YAMLError as exc:
        raise DrugLibraryError(f"the drug library is not valid YAML: {exc}") from None
    except RecursionError:
        raise DrugLibraryError("the drug library is nested too deeply") from None
    try:
        return _parse_library(raw)
    except TherapyError as exc:
        if isinstance(exc, DrugLibraryError):
            raise
        raise DrugLibraryError(str(exc)) from None


def _mapping(value: Any, path: str, required: set[str], optional: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DrugLibraryError(f"{path}: must be a mapping")
    for key in value:
        if not isinstance(key, str):
            raise DrugLibraryError(f"{path}: keys must be text, got {key!r}")
    unknown = sorted(set(value) - required - (optional or set()))
    if unknown:
        raise DrugLibraryError(f"{path}: unknown key {unknown[0]!r}")
    missing = sorted(required - set(value))
    if missing:
        raise DrugLibraryError(f"{path}: missing key {missing[0]!r}")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _number(value: Any, path: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DrugLibraryError(f"{path}: must be a number, got {value!r}")
    result = float(value)
    if result != result or result in (float("inf"), float("-inf")):
        raise DrugLibraryError(f"{path}: must be a finite number")
    if result < 0 or (positive and result == 0):
        raise DrugLibraryError(f"{path}: must be {'greater than' if positive else 'at least'} zero")
    return result


def _text(value: Any, path: str, max_len: int = 120) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise DrugLibraryError(f"{path}: must be non-empty text of at most {max_len} characters")
    return value


def _identifier(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise DrugLibraryError(f"{path}: {value!r} is not a valid id (lower-case letters, digits, '-')")
    return value


def _limits(value: Any, path: str) -> Limits:
    keys = {"hard_min", "soft_min", "soft_max", "hard_max"}
    raw = _mapping(value, path, set(), keys)
    if not raw:
        raise DrugLibraryError(f"{path}: give at least one of {', '.join(sorted(keys))}")
    limits = Limits(**{k: _number(v, _join(path, k)) for k, v in raw.items()})
    if not limits.ordered():
        raise DrugLibraryError(f"{path}: limits must satisfy hard_min <= soft_min <= soft_max <= hard_max")
    return limits


def _parse_library(raw: Any) -> DrugLibrary:
    top = _mapping(raw, "library", {"format", "version", "name", "device", "care_areas", "drugs"})
    if top["format"] != LIBRARY_FORMAT or isinstance(top["format"], bool):
        raise DrugLibraryError(f"format: only format {LIBRARY_FORMAT} is understood, got {top['format']!r}")
    version = top["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DrugLibraryError("version: must be a whole number of at least 1")
    name = _text(top["name"], "name")
    device = _mapping(top["device"], "device", {"max_rate_ml_h", "kvo_rate_ml_h"})
    device_max = _number(device["max_rate_ml_h"], "device.max_rate_ml_h", positive=True)
    kvo = _number(device["kvo_rate_ml_h"], "device.kvo_rate_ml_h")
    if kvo > device_max:
        raise DrugLibraryError("device.kvo_rate_ml_h: must not exceed device.max_rate_ml_h")

    areas_raw = top["care_areas"]
    if not isinstance(areas_raw, dict) or not areas_raw:
        raise DrugLibraryError("care_areas: must be a non-empty mapping")
    areas = {}
    for area_id, body in areas_raw.items():
        path = f"care_areas.{area_id}"
        _identifier(area_id, path)
        fields = _mapping(body, path, {"label", "max_rate_ml_h", "weight_kg"})
        weight = _limits(fields["weight_kg"], f"{path}.weight_kg")
        if weight.hard_min is None or weight.hard_max is None or weight.hard_min <= 0:
            raise DrugLibraryError(f"{path}.weight_kg: needs a hard_min above zero and a hard_max")
        areas[area_id] = CareArea(
            id=area_id,
            label=_text(fields["label"], f"{path}.label"),
            max_rate_ml_h=_number(fields["max_rate_ml_h"], f"{path}.max_rate_ml_h", positive=True),
            weight_kg=weight,
        )

    drugs_raw = top["drugs"]
    if not isinstance(drugs_raw, dict) or not drugs_raw:
        raise DrugLibraryError("drugs: must be a non-empty mapping")
    library = DrugLibrary(
        version=version,
        name=name,
        device_max_rate_ml_h=device_max,
        kvo_rate_ml_h=kvo,
        care_areas=MappingProxyType(areas),
        drugs=MappingProxyType({}),
    )
    drugs = {drug_id: _parse_drug(drug_id, body, library) for drug_id, body in drugs_raw.items()}
    return DrugLibrary(
        version=version,
        name=name,
        device_max_rate_ml_h=device_max,
        kvo_rate_ml_h=kvo,
        care_areas=MappingProxyType(areas),
        drugs=MappingProxyType(drugs),
    )


def _parse_drug(drug_id: Any, body: Any, library: DrugLibrary) -> Drug:
    path = f"drugs.{drug_id}"
    _identifier(drug_id, path)
    fields = _mapping(body, path, {"label", "dose_unit", "concentrations", "care_areas"}, {"limits"})
    try:
        dose_unit = DoseUnit(fields["dose_unit"])
    except ValueError:
        known = ", ".join(u.value for u in DoseUnit)
        raise DrugLibraryError(f"{path}.dose_unit: {fields['dose_unit']!r} is not one of {known}") from None

    conc_raw = fields["concentrations"]
    if not isinstance(conc_raw, list) or not conc_raw:
        raise DrugLibraryError(f"{path}.concentrations: must be a non-empty list")
    concentrations = []
    for i, item in enumerate(conc_raw):
        cpath = f"{path}.concentrations[{i}]"
        c = _mapping(item, cpath, {"amount", "unit"}, {"volume_ml"})
        try:
            unit = AmountUnit(c["unit"])
        except ValueError:
            known = ", ".join(u.value for u in AmountUnit)
            raise DrugLibraryError(f"{cpath}.unit: {c['unit']!r} is not one of {known}") from None
        try:
            conc = Concentration(
                _number(c["amount"], f"{cpath}.amount", positive=True),
                unit,
                _number(c.get("volume_ml", 1), f"{cpath}.volume_ml", positive=True),
            )
        except DrugLibraryError:
            raise
        except TherapyError as exc:  # e.g. a plain fluid written as 2 mL per mL
            raise DrugLibraryError(f"{cpath}: {exc}") from None
        if conc.dimension is not dose_unit.dimension:
            raise DrugLibraryError(f"{cpath}: a concentration in {unit} cannot be used with {dose_unit}")
        concentrations.append(conc)

    general = _parse_rules(fields.get("limits", {}), f"{path}.limits", library, allow_pca=False)
    local_raw = fields["care_areas"]
    if not isinstance(local_raw, dict) or not local_raw:
        raise DrugLibraryError(f"{path}.care_areas: must be a non-empty mapping")
    local = {}
    for area_id, rules in local_raw.items():
        apath = f"{path}.care_areas.{area_id}"
        if area_id not in library.care_areas:
            raise DrugLibraryError(f"{apath}: care area {area_id!r} is not defined under care_areas")
        local[area_id] = _parse_rules(rules, apath, library, allow_pca=True)
    drug = Drug(
        id=drug_id,
        label=_text(fields["label"], f"{path}.label"),
        dose_unit=dose_unit,
        concentrations=tuple(concentrations),
        general=general,
        care_areas=MappingProxyType(local),
    )
    # Every combination must end with a hard maximum rate, or the pump could be programmed to anything
    # up to the device ceiling without a drug-specific stop.
    for area_id in local:
        entry = _entry_unchecked(library, drug, area_id)
        if entry.rate.hard_max is None:
            raise DrugLibraryError(f"{path}.care_areas.{area_id}.rate: no hard_max applies (drug or area)")
        if entry.rate.hard_min is not None and entry.rate.hard_min > entry.rate.hard_max:
            raise DrugLibraryError(f"{path}.care_areas.{area_id}.rate: combined limits leave no valid rate")
    return drug


def _entry_unchecked(library: DrugLibrary, drug: Drug, area_id: str) -> DrugEntry:
    return _combine(library, drug, library.care_areas[area_id], drug.care_areas[area_id])


def _parse_rules(raw: Any, path: str, library: DrugLibrary, *, allow_pca: bool) -> DrugRules:
    optional = {"rate", "dose", "bolus", "weight_kg", "titration"}
    if allow_pca:
        optional |= {"pca", "kvo_rate_ml_h"}
    fields = _mapping(raw, path, set(), optional)
    kvo = None
    if "kvo_rate_ml_h" in fields:
        kvo = _number(fields["kvo_rate_ml_h"], f"{path}.kvo_rate_ml_h")
        if kvo > library.device_max_rate_ml_h:
            raise DrugLibraryError(f"{path}.kvo_rate_ml_h: must not exceed device.max_rate_ml_h")
    return DrugRules(
        rate=_limits(fields["rate"], f"{path}.rate") if "rate" in fields else Limits(),
        dose=_limits(fields["dose"], f"{path}.dose") if "dose" in fields else Limits(),
        bolus=_limits(fields["bolus"], f"{path}.bolus") if "bolus" in fields else Limits(),
        weight_kg=_limits(fields["weight_kg"], f"{path}.weight_kg") if "weight_kg" in fields else Limits(),
        kvo_rate_ml_h=kvo,
        pca=_parse_pca(fields["pca"], f"{path}.pca") if "pca" in fields else None,
        titration=_parse_titration(fields["titration"], f"{path}.titration") if "titration" in fields else None,
    )


def _parse_titration(raw: Any, path: str) -> TitrationRule:
    fields = _mapping(raw, path, {"max_increase", "period_min"})
    return TitrationRule(_number(fields["max_increase"], f"{path}.max_increase"),
                         60.0 * _number(fields["period_min"], f"{path}.period_min", positive=True))


def _parse_pca(raw: Any, path: str) -> PcaRules:
    keys = {"demand_dose", "lockout_min", "max_boluses_per_hour", "limit_1h", "limit_4h", "bolus_rate_ml_h"}
    fields = _mapping(raw, path, keys, {"boluses_per_program"})
    rules = PcaRules(
        demand_dose=_limits(fields["demand_dose"], f"{path}.demand_dose"),
        lockout_min=_limits(fields["lockout_min"], f"{path}.lockout_min"),
        max_boluses_per_hour=_limits(fields["max_boluses_per_hour"], f"{path}.max_boluses_per_hour"),
        limit_1h=_limits(fields["limit_1h"], f"{path}.limit_1h"),
        limit_4h=_limits(fields["limit_4h"], f"{path}.limit_4h"),
        bolus_rate_ml_h=_number(fields["bolus_rate_ml_h"], f"{path}.bolus_rate_ml_h", positive=True),
        boluses_per_program=(_limits(fields["boluses_per_program"], f"{path}.boluses_per_program")
                             if "boluses_per_program" in fields else None),
    )
    # Each PCA setting needs the bound that makes it safe: a ceiling on doses and counts, a floor on the
    # lockout. Without it the setting would only be limited by the clinician's typing.
    if rules.boluses_per_program is not None and rules.boluses_per_program.hard_max is None:
        raise DrugLibraryError(f"{path}.boluses_per_program: needs a hard_max")
    for name in ("demand_dose", "max_boluses_per_hour", "limit_1h", "limit_4h"):
        if getattr(rules, name).hard_max is None:
            raise DrugLibraryError(f"{path}.{name}: needs a hard_max")
    if rules.lockout_min.hard_min is None or rules.lockout_min.hard_min <= 0:
        raise DrugLibraryError(f"{path}.lockout_min: needs a hard_min above zero")
    return rules
