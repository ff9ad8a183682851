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
MONITOR_DOMAIN = 0  # the Microkit monitor runs in domain 0: a domain id no partition should share
# Above a PD's stack Microkit 2.3-dev keeps 0x2000 bytes for itself: its fixture sys_map_too_high gives the
# highest map address on AArch64 (user top 0x10000000000, default 0x2000 stack) as 0xffffffc000.
ABOVE_STACK = 0x2000

Severity = Literal["error", "warning"]
Arch = Literal["aarch64", "riscv64", "x86_64"]
ARCHES: tuple[Arch, ...] = ("aarch64", "riscv64", "x86_64")
_USER_TOP: dict[Arch, int] = {
    # seL4's user address-space top as Microkit reads it (AArch64 with the hypervisor and 40-bit physical
    # addresses, the configuration Microkit's boards and its own tests use)
    "aarch64": 0x10000000000,
    "riscv64": 0x3FFFFFF000,
    "x86_64": 0x7FFFFFFFF000,
}


@dataclass(frozen=True)
class Target:
    """The kernel configuration a system description is checked against (Microkit reads it from the SDK).

    The defaults are those of Microkit's own SDF tests (``DEFAULT_AARCH64_KERNEL_CONFIG``): AArch64, one core,
    16 scheduling domains (seL4's default ``KernelNumDomains``), 100 domain-schedule slots, IOMMU and
    hypervisor support built in.
    """

    arch: Arch = "aarch64"
    cores: int = 1
    max_domains: int = 16
    domain_schedules: int = 100
    iommu: bool = True
    hypervisor: bool = True

    @property
    def user_top(self) -> int:
        return _USER_TOP[self.arch]

    @property
    def io_top(self) -> int:
        """The end of a device's I/O address space: x86's IOMMU page tables have three 9-bit levels."""
        return 1 << 39

    def max_map_vaddr(self, stack_size: int) -> int:
        """The highest address a PD's map may reach: the stack sits at the very top of the address space."""
        return self.user_top - stack_size - ABOVE_STACK


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
    prefilled: bool = False  # filled from a file or boot information: its size may be left to the tool


@dataclass
class Map:
    mr: str
    vaddr: int
    perms: str  # normalised subset of "rwx", in that order
    cached: bool
    loc: Loc
    setvar_vaddr: str | None = None
    setvar_prefill_size: str | None = None

    @property
    def readable(self) -> bool:
        return "r" in self.perms

    @property
    def writable(self) -> bool:
        return "w" in self.perms


@dataclass
class Irq:
    irq: int | None  # the ARM/RISC-V interrupt number; None for an x86 I/O APIC or MSI interrupt
    id: int
    trigger: str
    loc: Loc
    kind: Literal["arm", "ioapic", "msi"] = "arm"


@dataclass
class IoPort:
    """An x86 I/O port range granted to a protection domain."""

    id: int
    addr: int
    size: int
    loc: Loc


@dataclass
class VirtualMachine:
    name: str
    vcpus: list[tuple[int, int, Loc]]  # (id, cpu, where)
    maps: list[Map]
    loc: Loc
    priority_loc: Loc | None = None  # where a priority was given (x86 takes none: the vCPU runs at its VMM's)


@dataclass
class IoMap:
    mr: str
    iovaddr: int
    perms: str
    loc: Loc


@dataclass
class IoAddressSpace:
    """A PCI device's IOMMU address space: the regions it may reach by DMA, and where."""

    name: str
    pci: tuple[int, int, int] | None  # bus, device, function; None if it did not parse
    domain_id: int | None
    maps: list[IoMap]
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
    cpu: int = 0
    parent: str | None = None  # a child PD names its parent and has an id in the parent's id space
    child_id: int | None = None
    vm: VirtualMachine | None = None
    ioports: list[IoPort] = field(default_factory=list)


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
    start_index: int = 0
    index_shift: int = 0
    schedule_loc: Loc | None = None


@dataclass
class System:
    file: str
    loc: Loc
    pds: list[ProtectionDomain] = field(default_factory=list)
    regions: list[MemoryRegion] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    domains: Domains | None = None
    paddr_setvars: list[tuple[str, str, Loc]] = field(default_factory=list)  # (pd, region, where)
    io_spaces: list[IoAddressSpace] = field(default_factory=list)

    def pd(self, name: str) -> ProtectionDomain | None:
        return next((p for p in self.pds if p.name == name), None)

    def region(self, name: str) -> MemoryRegion | None:
        return next((r for r in self.regions if r.name == name), None)
