"""Glue shared by pump_control and safety_monitor: control timing, verified drug libraries, and turning the
fields of a message into a therapy ``ProgramRequest``. Each partition runs this code on its own data (its
own library, its own key file); nothing here is shared at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .therapy.drug_library import DrugLibrary, load_drug_library
from .therapy.errors import TherapyError
from .therapy.limits import Limits
from .therapy.program import PcaRequest, Principal, ProgramRequest, SoftLimitOverride
from .therapy.units import Concentration

# Control timing. The model's periods (safety_monitor 10 ms, pump_control 50 ms) hold at time scale 1.
# With a time scale the periods stretch in device time so that they never run faster than these floors of
# real time: Python cannot close a 10 ms device-time loop every 0.17 ms when an hour runs in a minute.
MONITOR_PERIOD_S = 0.010
CONTROL_PERIOD_S = 0.050
MONITOR_REAL_FLOOR_S = 0.010
# the control loop never runs faster than its real period: a compressed loop left two missed heartbeats
# only 40 ms of real time, and a busy 2-core host tripped the monitor's silent-controller fault falsely
CONTROL_REAL_FLOOR_S = 0.050
HEARTBEATS_MISSED = 2  # pc_heartbeat silent this many control periods: latched fault
LEASE_PERIODS = 1.5  # a motor grant lasts this many control periods (covers the next command's jitter)
DEFAULT_CARE_AREA = "adult-med-surg"
MANUFACTURER_KEY = "manufacturer.pub"


def monitor_period(scale: float) -> float:
    return max(MONITOR_PERIOD_S, MONITOR_REAL_FLOOR_S * scale)


def control_period(scale: float) -> float:
    return max(CONTROL_PERIOD_S, CONTROL_REAL_FLOOR_S * scale)


class LibraryRefused(Exception):
    """A drug library that must not be used (unsigned, tampered, wrong key, older, or malformed)."""


def load_manufacturer_key(data_dir: Path) -> Ed25519PublicKey | None:
    path = data_dir / MANUFACTURER_KEY
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError):
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


def verify_library(
    key: Ed25519PublicKey | None, version: int, data: bytes, signature: bytes, current: DrugLibrary | None
) -> DrugLibrary:
    """The library in ``data`` if its signature verifies and it is newer than (or as new as) ``current``."""
    if key is None:
        raise LibraryRefused(f"no manufacturer key ({MANUFACTURER_KEY}) was provisioned: no library can be trusted")
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise LibraryRefused("drug library signature does not verify") from None
    try:
        library = load_drug_library(data)
    except TherapyError as exc:
        raise LibraryRefused(f"drug library does not load: {exc}") from None
    if library.version != version:
        raise LibraryRefused(f"drug library says version {library.version}, its envelope {version}")
    if current is not None and library.version < current.version:
        raise LibraryRefused(f"drug library version {library.version} is older than {current.version} (rollback)")
    return library


def install_library(key: Ed25519PublicKey | None, msg: Any, current: DrugLibrary | None,
                    record: Callable[..., None], install: Callable[[DrugLibrary], None]) -> DrugLibrary | None:
    """A drug library message as pump_control and safety_monitor take it: verified (``verify_library``),
    handed to ``install`` (what the partition does with it), and recorded. A refusal installs nothing and is
    recorded as ``drug_library_refused`` (warning, with the reason); the library in use stays."""
    try:
        library = verify_library(key, msg.version, msg.data, msg.signature, current)
    except LibraryRefused as exc:
        record("drug_library_refused", "warning", version=msg.version, reason=str(exc))
        return None
    install(library)
    record("drug_library_installed", version=library.version)
    return library


def _standard(limits: Limits, *, prefer_high: bool) -> float:
    """The library's standard value for a PCA parameter: the conservative end of its soft range."""
    order = (limits.soft_max, limits.hard_max, limits.soft_min, limits.hard_min) if prefer_high else (
        limits.soft_min, limits.hard_min, limits.soft_max, limits.hard_max)
    for v in order:
        if v is not None:
            return v
    raise TherapyError("the drug library gives no bound for a PCA parameter")


def standard_pca(library: DrugLibrary, drug_id: str, care_area: str) -> PcaRequest | None:
    """The PCA protocol for a PCA drug. The model's messages carry no per-patient PCA fields yet, so both
    partitions derive the same protocol from their own verified library: the soft-minimum demand dose and
    lockout, the soft-maximum bolus count and 1 h / 4 h limits (falling back to hard bounds)."""
    entry = library.entry(drug_id, care_area)
    rules = entry.pca
    if rules is None:
        return None
    return PcaRequest(
        demand_dose=_standard(rules.demand_dose, prefer_high=False),
        lockout_min=_standard(rules.lockout_min, prefer_high=False),
        max_boluses_per_hour=int(_standard(rules.max_boluses_per_hour, prefer_high=True)),
        limit_1h=_standard(rules.limit_1h, prefer_high=True),
        limit_4h=_standard(rules.limit_4h, prefer_high=True),
        boluses_per_program=_standard_count(rules.boluses_per_program),
    )


def _standard_count(limits: Limits | None) -> int | None:
    return None if limits is None else int(_standard(limits, prefer_high=True))


PCA_FIELDS = ("pca_demand_dose", "pca_lockout_min", "pca_max_per_hour", "pca_limit_1h", "pca_limit_4h",
              "pca_bolus_count")


def pca_fields(msg: Any) -> tuple[float, ...]:
    """The per-patient PCA prescription carried by a message (zeros: none; a message without the fields, e.g. a
    remote order, has none)."""
    return tuple(float(getattr(msg, name, 0) or 0) for name in PCA_FIELDS)


def prescribed_pca(library: DrugLibrary, drug_id: str, care_area: str, fields: tuple[float, ...]) -> PcaRequest | None:
    """The PCA settings of a program: the clinician's prescription when one was entered, else the library's
    standard protocol. A partial prescription is refused (a forgotten field must not silently become a
    default); the per-prescription bolus count may be left out (the library's standard applies)."""
    if not any(fields):
        return standard_pca(library, drug_id, care_area)
    entry = library.entry(drug_id, care_area)
    if entry.pca is None:
        raise TherapyError(f"{entry.drug.label} is not set up for PCA in care area {care_area!r}")
    demand, lockout, per_hour, limit_1h, limit_4h, count = fields
    missing = [name for name, v in zip(PCA_FIELDS[:5], fields[:5], strict=True) if not v > 0]
    if missing:
        raise TherapyError("the PCA prescription is incomplete: " + ", ".join(missing) + " must be above zero")
    if per_hour != int(per_hour) or count != int(count):
        raise TherapyError("boluses per hour and the bolus count must be whole numbers")
    return PcaRequest(demand_dose=demand, lockout_min=lockout, max_boluses_per_hour=int(per_hour),
                      limit_1h=limit_1h, limit_4h=limit_4h,
                      boluses_per_program=int(count) if count else _standard_count(entry.pca.boluses_per_program))


def program_request(
    library: DrugLibrary,
    *,
    drug: str,
    care_area: str,
    concentration: float,
    dose_rate: float,
    vtbi_ml: float,
    weight_kg: float,
    principal: Principal | None,
    override_reason: str = "",
    pca: tuple[float, ...] = (),
) -> ProgramRequest:
    """A ProgramRequest from message fields. ``concentration`` is amount per mL in the drug's amount unit
    (1 for morphine 1 mg/mL, 100 for heparin 100 units/mL); ``weight_kg`` 0 means not given."""
    d = library.drugs.get(drug)
    if d is None:
        raise TherapyError(f"drug {drug!r} is not in drug library version {library.version}")
    unit = d.concentrations[0].unit if d.concentrations else d.amount_unit
    if not concentration > 0:
        raise TherapyError("concentration must be greater than zero")
    override = None
    if override_reason and principal is not None:
        override = SoftLimitOverride(reason=override_reason, confirmed_by=principal.id)
    return ProgramRequest(
        drug_id=drug,
        care_area=care_area,
        concentration=Concentration(concentration, unit, 1.0),
        dose_unit=d.dose_unit,
        rate=dose_rate,
        vtbi_ml=vtbi_ml,
        weight_kg=weight_kg if weight_kg > 0 else None,
        pca=prescribed_pca(library, drug, care_area, pca) if pca else standard_pca(library, drug, care_area),
        principal=principal,
        override=override,
    )


def _zero(t: Any) -> Any:
    from msgspec import inspect as mi

    if isinstance(t, mi.StrType):
        return ""
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, mi.IntType):
        return max(0, t.ge or 0) if t.ge is not None else 0
    if isinstance(t, mi.FloatType):
        return float(t.ge or 0.0) if t.ge is not None else 0.0
    if isinstance(t, mi.BytesType):
        return b""
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    raise TypeError(f"no neutral value for a field of type {t}")


def send_message(p: Any, channel: str, **fields: Any) -> bool:
    """Send on ``channel`` with every field the caller leaves out set to its neutral value ("" / 0 / False /
    the first enum value). The channel's schema still validates the result."""
    from msgspec import inspect as mi

    info = mi.type_info(p.message_type(channel))
    full = {f.name: fields[f.name] if f.name in fields else _zero(f.type) for f in info.fields}
    unknown = set(fields) - set(full)
    if unknown:
        raise KeyError(f"{channel}: no field(s) {sorted(unknown)}")
    return bool(p.send(channel, **full))
