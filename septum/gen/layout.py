"""Lay a model out for seL4: which protection domains, regions, ids and addresses it becomes.

Both generators (Microkit and CAmkES) and the round-trip check start from this plan, so they agree on
names and sizes. The layout is deterministic: partitions and channels keep the model's order, channel
ids are handed out per partition in that order, and addresses come from a fixed address plan, so the
same model always yields byte-identical output.

The model has no physical addresses or interrupt numbers for hardware interfaces yet; until it does, a
documented placeholder scheme assigns them (``AddressPlan``), and a plan file can override them per
interface.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

from septum.errors import SeptumError
from septum.model import Model, SourceMap
from septum.model.errors import Location
from septum.model.schema import MessageField

from .schedule import Reservation, ScheduleError, build
from .sdf_model import MAX_ID, MAX_PDS, PAGE_SIZES

PAGE = PAGE_SIZES[0]
RING_HEADER = 64  # bytes before the first slot: magic, version, sizes, fingerprint, write index (septum.sel4.wire)
SLOT_HEADER = 8  # per slot: payload length (4 bytes) and sequence number (4 bytes)


class MappingIssue(msgspec.Struct, frozen=True):
    location: Location | None
    message: str

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}error: {self.message}"


class MappingError(SeptumError):
    """The model cannot be laid out on Microkit/CAmkES (limits, unbounded messages, name clashes)."""

    def __init__(self, issues: list[MappingIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class DeviceOverride(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    phys_addr: int | None = None
    size: int | None = None
    irq: int | None = None


class AddressPlan(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where things go. Defaults are placeholders for a board without a real device tree."""

    channel_vaddr_base: int = 0x2000_0000
    device_vaddr_base: int = 0x3000_0000
    device_phys_base: int = 0x1000_0000
    device_phys_stride: int = 0x1_0000
    device_size: int = PAGE
    irq_base: int = 32
    default_slot_us: int = 1000  # domain-schedule slot for a partition without a budget
    devices: dict[str, DeviceOverride] = {}


def load_address_plan(path: str | Path) -> AddressPlan:
    """Read an address plan YAML file; raises ValueError with the file name and the offending key."""
    try:
        return msgspec.yaml.decode(Path(path).read_bytes(), type=AddressPlan)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: error: {exc}") from None
    except (msgspec.DecodeError, OSError) as exc:
        raise ValueError(f"{path}: error: cannot read address plan: {exc}") from None


@dataclass(frozen=True)
class RegionPlan:
    name: str
    size: int
    kind: Literal["channel", "device"]
    element: str  # the model element it stands for, e.g. "channel orders_in"
    phys_addr: int | None = None
    page_size: int = PAGE


@dataclass(frozen=True)
class MapPlan:
    region: str
    vaddr: int
    perms: Literal["r", "rw"]
    cached: bool


@dataclass(frozen=True)
class IrqPlan:
    interface: str
    irq: int
    id: int


@dataclass(frozen=True)
class ChannelPlan:
    name: str
    src: str
    dst: str
    message: str
    region: str
    src_id: int
    dst_id: int
    slot_size: int
    slots: int


@dataclass(frozen=True)
class DevicePlan:
    interface: str
    kind: str
    owner: str
    region: str
    irq: int


@dataclass
class PdPlan:
    name: str
    priority: int
    budget_us: int | None
    period_us: int | None
    domain: str | None
    image: str
    maps: list[MapPlan] = field(default_factory=list)
    irqs: list[IrqPlan] = field(default_factory=list)


@dataclass
class SystemPlan:
    device: str
    pds: list[PdPlan]
    regions: list[RegionPlan]
    channels: list[ChannelPlan]
    devices: list[DevicePlan]
    schedule: list[tuple[str, int]] | None  # (domain, duration in microseconds), in order
    notes: list[str]
    # what the schedule must give each partition; the generator checks the emitted table against it
    reservations: list[Reservation] = field(default_factory=list)
    frame_us: int | None = None

    def pd(self, name: str) -> PdPlan:
        return next(p for p in self.pds if p.name == name)


def channel_region(name: str) -> str:
    return f"ch_{name}"


def device_region(interface: str) -> str:
    return f"dev_{interface}"


def domain_name(pd: str) -> str:
    return f"dom_{pd}"


def c_ident(name: str) -> str:
    """A model name as an upper-case C identifier fragment (``hospital-net`` -> ``HOSPITAL_NET``)."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def round_up(value: int, to: int) -> int:
    return -(-value // to) * to


# -- message sizing ----------------------------------------------------------------------------------
_SCALAR = {"int": 8, "float": 8, "bool": 1, "enum": 4}


def _field_size(message: str, fname: str, f: MessageField, item: str | None = None) -> int:
    kind = item or f.type
    if kind in _SCALAR:
        return _SCALAR[kind]
    if kind in ("str", "bytes"):
        if f.max_len is None:
            raise ValueError(f"field '{fname}' of message '{message}' is a {kind} without max_len")
        # str max_len counts characters; UTF-8 needs at most 4 bytes per character
        return 4 + f.max_len * (4 if kind == "str" else 1)
    if kind == "list":
        if item is not None:
            raise ValueError(f"field '{fname}' of message '{message}' nests lists, which cannot be sized")
        if f.max_items is None or f.items is None:
            raise ValueError(f"field '{fname}' of message '{message}' is a list without items and max_items")
        return 4 + f.max_items * _field_size(message, fname, f, f.items)
    raise ValueError(f"field '{fname}' of message '{message}' has type '{kind}', which cannot be sized")


def message_size(model: Model, message: str) -> int:
    """Upper bound of one encoded message in bytes. ValueError if a field is unbounded."""
    total = 0
    for fname, f in model.message_fields(message).items():
        total += _field_size(message, fname, f) + (1 if f.optional else 0)
    return total


# -- layout --------------------------------------------------------------------------------------------
def plan_system(model: Model, source: SourceMap | None = None, plan: AddressPlan | None = None) -> SystemPlan:
    """Lay the model out, or raise MappingError naming every element that cannot be mapped."""
    ap = plan or AddressPlan()
    issues: list[MappingIssue] = []

    def issue(kind: str, name: str, message: str) -> None:
        issues.append(MappingIssue(source.element(kind, name) if source else None, message))

    parts = model.partitions
    if not parts:
        issues.append(MappingIssue(source.locate(("partitions",)) if source else None,
                                   "the model has no partitions; a Microkit system needs at least one"))
    if len(parts) > MAX_PDS:
        issues.append(MappingIssue(
            source.locate(("partitions",)) if source else None,
            f"the model has {len(parts)} partitions; Microkit supports at most {MAX_PDS} protection domains"))

    # Names become C identifiers in headers; two names that differ only in '-' vs '_' would collide.
    for kind, names in (("partition", list(parts)), ("channel", [c.name for c in model.channels]),
                        ("interface", list(model.interfaces))):
        seen: dict[str, str] = {}
        for n in names:
            other = seen.setdefault(c_ident(n), n)
            if other != n:
                issue(kind, n, f"{kind} names '{other}' and '{n}' both become the C name {c_ident(n)}")

    periodic = any(p.resources.period_ms or p.resources.budget_ms for p in parts.values())
    pds: dict[str, PdPlan] = {}
    for name, part in parts.items():
        r = part.resources
        budget = r.budget_ms * 1000 if r.budget_ms else None
        period = r.period_ms * 1000 if r.period_ms else None
        if budget is not None and period is not None and budget > period:
            issue("partition", name,
                  f"partition '{name}' has budget_ms {r.budget_ms} greater than period_ms {r.period_ms}")
        if budget is None and period is not None:
            budget = period  # a full budget: round-robin with a time slice of one period
        if period is None and budget is not None:
            period = budget
        pds[name] = PdPlan(name, r.priority, budget, period, domain_name(name) if periodic else None,
                           f"{name}.elf")

    regions: list[RegionPlan] = []
    channels: list[ChannelPlan] = []
    next_id: dict[str, int] = dict.fromkeys(parts, 0)
    next_vaddr: dict[str, int] = dict.fromkeys(parts, ap.channel_vaddr_base)
    dev_vaddr: dict[str, int] = dict.fromkeys(parts, ap.device_vaddr_base)

    def add_map(pd: str, region: RegionPlan, perms: Literal["r", "rw"], cached: bool, device: bool) -> None:
        base = next_vaddr if not device else dev_vaddr
        vaddr = base[pd]
        pds[pd].maps.append(MapPlan(region.name, vaddr, perms, cached))
        # one unmapped guard page after every region catches a run past its end
        base[pd] = round_up(vaddr + region.size + PAGE, region.page_size)

    for ch in model.channels:
        if ch.src not in parts or ch.dst not in parts:
            issue("channel", ch.name, f"channel '{ch.name}' does not connect two partitions")
            continue
        if ch.src == ch.dst:
            issue("channel", ch.name, f"channel '{ch.name}' goes from '{ch.src}' to itself")
            continue
        try:
            payload = message_size(model, ch.message)
        except (ValueError, KeyError) as exc:
            issue("channel", ch.name, f"channel '{ch.name}' cannot be given a fixed-size region: {exc}")
            continue
        slot = round_up(SLOT_HEADER + payload, 8)
        size = round_up(RING_HEADER + ch.queue * slot, PAGE)
        region = RegionPlan(channel_region(ch.name), size, "channel",
                            f"channel {ch.name} ({ch.src} -> {ch.dst}, {ch.message})")
        regions.append(region)
        src_id, dst_id = next_id[ch.src], next_id[ch.dst]
        next_id[ch.src] += 1
        next_id[ch.dst] += 1
        channels.append(ChannelPlan(ch.name, ch.src, ch.dst, ch.message, region.name, src_id, dst_id, slot,
                                    ch.queue))
        add_map(ch.src, region, "rw", True, device=False)
        add_map(ch.dst, region, "r", True, device=False)

    devices: list[DevicePlan] = []
    owners: dict[str, list[str]] = {}
    for pname, part in parts.items():
        for owned in part.owns:
            owners.setdefault(owned, []).append(pname)
    for index, (iname, iface) in enumerate(model.interfaces.items()):
        owned_by = owners.get(iname, [])
        if len(owned_by) > 1:
            issue("interface", iname, f"interface '{iname}' is owned by more than one partition: "
                  + ", ".join(owned_by))
            continue
        if not owned_by or not iface.enabled:
            continue  # no owner, or disabled (e.g. a debug port in production): no device access at all
        owner = owned_by[0]
        over = ap.devices.get(iname, DeviceOverride())
        phys = over.phys_addr if over.phys_addr is not None else ap.device_phys_base + index * ap.device_phys_stride
        size = over.size if over.size is not None else ap.device_size
        irq = over.irq if over.irq is not None else ap.irq_base + index
        if size % PAGE or phys % PAGE or size == 0:
            issue("interface", iname, f"device window of '{iname}' ({phys:#x}, size {size:#x}) is not "
                  f"page-aligned ({PAGE:#x})")
            continue
        region = RegionPlan(device_region(iname), size, "device", f"interface {iname} ({iface.kind})", phys)
        regions.append(region)
        devices.append(DevicePlan(iname, iface.kind, owner, region.name, irq))
        add_map(owner, region, "rw", False, device=True)
        pds[owner].irqs.append(IrqPlan(iname, irq, next_id[owner]))
        next_id[owner] += 1

    for pname, used in next_id.items():
        if used > MAX_ID + 1:
            issue("partition", pname, f"partition '{pname}' needs {used} channel and interrupt ids; Microkit "
                  f"allows {MAX_ID + 1} per protection domain (ids 0..{MAX_ID})")
        if next_vaddr[pname] > ap.device_vaddr_base:
            issue("partition", pname, f"the channel regions of partition '{pname}' do not fit below the device "
                  f"window at {ap.device_vaddr_base:#x}")
    if issues:
        raise MappingError(issues)

    notes: list[str] = []
    schedule: list[tuple[str, int]] | None = None
    reservations: list[Reservation] = []
    frame_us: int | None = None
    if periodic:
        # The reservation follows the model, not the PD's MCS attributes: a partition that gives no
        # period_ms has no window to honour, so it is owed its slot once per frame, not once per budget.
        for name, part in parts.items():
            pd = pds[name]
            windowed = part.resources.period_ms is not None
            reservations.append(Reservation(name, domain_name(name),
                                            pd.budget_us if pd.budget_us is not None else ap.default_slot_us,
                                            pd.period_us if windowed else None))
        try:
            built = build(reservations)
        except ScheduleError as exc:
            raise MappingError([MappingIssue(source.locate(("partitions",)) if source else None,
                                             f"no domain schedule can honour the partitions' periods: {exc}")]
                               ) from None
        schedule, frame_us = built.entries, built.frame_us
    return SystemPlan(model.device.name, list(pds.values()), regions, channels, devices, schedule, notes,
                      reservations, frame_us)
