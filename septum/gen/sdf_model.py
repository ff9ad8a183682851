"""A Microkit system description (SDF) as typed objects, each remembering where it was written.

The parser (``sdf_parse``) fills these; the validator (``sdf_validate``) and the round-trip check
(``roundtrip``) read them. Numbers are already decoded; every element keeps its ``Loc`` so that a
problem found later can still name ``file:line:col``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Facts about Microkit 2.x that the validator and the generator share.
MAX_PDS = 63
MAX_ID = 61  # channel and irq ids are 0..61 (62 badge bits are left for ids)
MAX_PRIORITY = 254
DEFAULT_BUDGET_US = 1000
PAGE_SIZES = (0x1000, 0x200000)
MIN_STACK = 0x1000
MAX_STACK = 16 * 1024 * 1024

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Loc:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, order=True)
class Diagnostic:
    loc: Loc
    severity: Severity
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.severity}: {self.message} [{self.rule}]"


@dataclass
class MemoryRegion:
    name: str
    size: int | None
    page_size: int
    phys_addr: int | None
    loc: Loc


@dataclass
class Map:
    mr: str
    vaddr: int
    perms: str  # normalised subset of "rwx", in that order
    cached: bool
    loc: Loc
    setvar_vaddr: str | None = None

    @property
    def readable(self) -> bool:
        return "r" in self.perms

    @property
    def writable(self) -> bool:
        return "w" in self.perms


@dataclass
class Irq:
    irq: int
    id: int
    trigger: str
    loc: Loc


@dataclass
class ProtectionDomain:
    name: str
    priority: int
    budget: int
    period: int
    passive: bool
    stack_size: int
    domain: str | None
    program_image: str | None
    loc: Loc
    maps: list[Map] = field(default_factory=list)
    irqs: list[Irq] = field(default_factory=list)


@dataclass
class ChannelEnd:
    pd: str
    id: int
    notify: bool  # this end may notify the other
    pp: bool  # this end may make protected calls to the other
    loc: Loc


@dataclass
class Channel:
    ends: list[ChannelEnd]
    loc: Loc


@dataclass
class Domain:
    name: str
    id: int | None
    loc: Loc


@dataclass
class ScheduleEntry:
    domain: str
    duration: int
    unit: Literal["us", "ticks"]
    loc: Loc


@dataclass
class Domains:
    domains: list[Domain]
    schedule: list[ScheduleEntry]
    has_schedule: bool
    loc: Loc


@dataclass
class System:
    file: str
    loc: Loc
    pds: list[ProtectionDomain] = field(default_factory=list)
    regions: list[MemoryRegion] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    domains: Domains | None = None

    def pd(self, name: str) -> ProtectionDomain | None:
        return next((p for p in self.pds if p.name == name), None)

    def region(self, name: str) -> MemoryRegion | None:
        return next((r for r in self.regions if r.name == name), None)
