"""Parse a Microkit system description file into ``sdf_model`` objects, with located diagnostics.

Two steps: expat reads the XML into a small element tree that keeps each element's line and column
(the standard library's pyexpat reports them, so no dependency is needed); then each element is
checked against the element and attribute vocabulary and its values are decoded. Problems are
collected rather than raised, so one run names every mistake it can.

What is accepted is the Microkit 2.x format (see docs/sel4.md): ``system`` with ``domains``,
``protection_domain`` (and child protection domains inside one), ``virtual_machine`` with its ``vcpu`` and
``map``, x86 ``ioport`` and I/O APIC / MSI ``irq`` forms, ``io_address_space`` with ``iomap`` (IOMMU),
prefilled ``memory_region``, ``channel``. The few real Microkit features it does not check (``cspace``
capability sharing, ``prefill_bootinfo``) are refused as *not supported by this validator* (rules
``unsupported_element`` and ``unsupported_attribute``), never as unknown, and never silently accepted unchecked.

The ``"1.2"`` dialect reads what Microkit 1.2.6 (the last release with a Python tool) accepts: no
``<domains>`` and no ``domain=``, ``pp`` on the protection domain instead of on a channel end, no
``notify`` (in 1.2 both ends of every channel may notify), ids 0..62, numbers as Python's ``int(x, 0)``
reads them (channel-end ids in decimal only) and booleans in any case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from xml.parsers import expat

from septum.errors import InvariantBroken, SeptumError

from .sdf_model import (
    DEFAULT_BUDGET_US,
    PAGE_SIZES,
    Channel,
    ChannelEnd,
    Diagnostic,
    Domain,
    Domains,
    IoAddressSpace,
    IoMap,
    IoPort,
    Irq,
    Loc,
    Map,
    MemoryRegion,
    ProtectionDomain,
    ScheduleEntry,
    System,
    VirtualMachine,
)

# element -> allowed attributes; required ones listed separately
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "system": (),
    "domains": (),
    "domain": ("name", "id"),
    "domain_schedule": ("start_index", "index_shift"),
    "schedule_entry": ("domain", "duration"),
    "schedule_end_marker": (),
    "protection_domain": (
        "name", "priority", "budget", "period", "passive", "stack_size", "smc", "cpu", "domain", "fpu",
    ),
    # a child protection domain: the same, plus its id in the parent's id space
    "child_protection_domain": (
        "name", "priority", "budget", "period", "passive", "stack_size", "smc", "cpu", "domain", "fpu", "id",
    ),
    "program_image": ("path", "path_for_symbols"),
    "map": ("mr", "vaddr", "perms", "cached", "setvar_vaddr", "setvar_size", "setvar_prefill_size"),
    "irq": ("irq", "id", "trigger", "setvar_id", "ioapic", "pin", "polarity", "vector", "pcidev", "handle"),
    "setvar": ("symbol", "region_paddr"),
    "memory_region": ("name", "size", "page_size", "phys_addr", "prefill_path"),
    "channel": (),
    "end": ("pd", "id", "notify", "pp", "setvar_id"),
    "virtual_machine": ("name", "priority", "budget", "period"),
    "vcpu": ("id", "cpu"),
    "ioport": ("id", "addr", "size", "setvar_id", "setvar_addr"),
    "io_address_space": ("name", "peripheral_id", "domain_id"),
    "iomap": ("mr", "iovaddr", "perms"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "domain": ("name",),
    "schedule_entry": ("domain", "duration"),
    "protection_domain": ("name",),
    "child_protection_domain": ("name", "id"),
    "program_image": ("path",),
    "map": ("mr", "vaddr"),
    "irq": ("id",),  # and the attributes of one of the three forms, checked in irq()
    "setvar": ("symbol", "region_paddr"),
    "memory_region": ("name",),  # and 'size' unless prefilled, checked in memory_region()
    "end": ("pd", "id"),
    "virtual_machine": ("name",),
    "vcpu": ("id",),
    "ioport": ("id", "addr", "size"),
    "io_address_space": ("name", "peripheral_id", "domain_id"),
    "iomap": ("mr", "iovaddr"),
}
CHILDREN: dict[str, tuple[str, ...]] = {
    "system": ("domains", "protection_domain", "memory_region", "channel", "io_address_space"),
    "domains": ("domain", "domain_schedule"),
    "domain_schedule": ("schedule_entry", "schedule_end_marker"),
    "protection_domain": ("program_image", "map", "irq", "setvar", "protection_domain", "virtual_machine",
                          "ioport"),
    "virtual_machine": ("vcpu", "map"),
    "io_address_space": ("iomap",),
    "channel": ("end",),
}
Dialect = Literal["current", "1.2"]
DIALECTS: tuple[Dialect, ...] = ("current", "1.2")

# Microkit 1.2.6 (tool/microkit/sysxml.py): its element and attribute vocabulary.
ATTRIBUTES_1_2: dict[str, tuple[str, ...]] = {
    "system": (),
    "protection_domain": ("name", "priority", "pp", "budget", "period", "passive"),
    "program_image": ("path",),
    "map": ("mr", "vaddr", "perms", "cached", "setvar_vaddr"),
    "irq": ("irq", "id", "trigger"),
    "setvar": ("symbol", "region_paddr"),
    "memory_region": ("name", "size", "page_size", "phys_addr"),
    "channel": (),
    # 1.2.6 does not check the attributes of <end> at all (it checks the <channel>'s twice), so a 'notify' or
    # 'pp' there is silently ignored: refused here, since a restriction that is ignored is worse than none.
    "end": ("pd", "id"),
}
CHILDREN_1_2: dict[str, tuple[str, ...]] = {
    "system": ("protection_domain", "memory_region", "channel"),
    "protection_domain": ("program_image", "map", "irq", "setvar"),
    "channel": ("end",),
}
_NOT_IN_1_2 = {
    "domains": "Microkit 1.2 has no domain scheduler; time isolation is by each PD's budget and period",
    "domain": "Microkit 1.2 has no domain scheduler; time isolation is by each PD's budget and period",
    "notify": "in Microkit 1.2 both ends of a channel may always notify",
    "pp": "in Microkit 1.2 'pp' is an attribute of the protection domain that is called",
}
MAX_ID_1_2 = 62  # 1.2.6: "id must be < 63"

# Real Microkit vocabulary this validator does not check: refused as "not supported by this validator" (the
# file may well be right), never as "unknown" (the file is wrong), and never accepted unchecked.
UNSUPPORTED = frozenset({"cspace", "cap_sc", "cap_tcb"})
UNSUPPORTED_ATTRIBUTES: dict[str, frozenset[str]] = {"memory_region": frozenset({"prefill_bootinfo"})}
_NOT_CHECKED = "septum validate-sdf does not check it, so the file is refused rather than passed unchecked"
# 1.2.6 knew none of these elements either; reported there as not part of Microkit 1.2.
_LATER_THAN_1_2 = frozenset({"virtual_machine", "vcpu", "ioport", "io_address_space", "iomap", *UNSUPPORTED})


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    loc: Loc
    children: list[Element] = field(default_factory=list)
    text_loc: Loc | None = None  # where non-whitespace text inside (or after a child of) it starts


class SdfSyntaxError(SeptumError):
    """The file is not well-formed XML; carries the one located diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic
        super().__init__(str(diagnostic))


def read_tree(text: str | bytes, filename: str) -> Element:
    """Well-formed XML -> element tree with 1-based line/column per element."""
    parser = expat.ParserCreate()
    root: list[Element] = []
    stack: list[Element] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        el = Element(tag, dict(attrs), Loc(filename, parser.CurrentLineNumber, parser.CurrentColumnNumber + 1))
        (stack[-1].children if stack else root).append(el)
        stack.append(el)

    def end(_tag: str) -> None:
        stack.pop()

    def on_text(data: str) -> None:
        if data.strip() and stack and stack[-1].text_loc is None:
            stack[-1].text_loc = Loc(filename, parser.CurrentLineNumber, parser.CurrentColumnNumber + 1)

    def refuse_entities(*_args: object) -> None:
        # An SDF never needs entity declarations; refusing them closes the "billion laughs" door.
        raise expat.ExpatError("entity declarations are not allowed in a system description")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = on_text
    parser.EntityDeclHandler = refuse_entities
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        line = getattr(exc, "lineno", None) or parser.ErrorLineNumber
        col = (getattr(exc, "offset", None) or parser.ErrorColumnNumber) + 1
        reason = expat.ErrorString(exc.code) if getattr(exc, "code", None) else str(exc)
        raise SdfSyntaxError(
            Diagnostic(Loc(filename, line, col), "error", "xml_malformed", f"not well-formed XML: {reason}")
        ) from None
    return root[0]


def parse_number(text: str) -> int | None:
    """Microkit numbers: decimal or ``0x`` hexadecimal, ``_`` allowed as a separator; never negative."""
    s = text.replace("_", "")
    if _HEX.fullmatch(s):
        return int(s[2:], 16)
    if _DEC.fullmatch(s):
        return int(s, 10)
    return None


def parse_number_1_2(text: str, *, decimal_only: bool = False) -> int | None:
    """Numbers as Microkit 1.2.6 reads them (Python's ``int(text, 0)``; ``int(text)`` for channel-end ids).

    That admits ``0o``/``0b`` prefixes, a sign and surrounding blanks, and refuses leading zeros ("010").
    Negative values are still refused here: no attribute of a system description can be negative.
    """
    try:
        value = int(text, 10 if decimal_only else 0)
    except ValueError:
        return None
    return value if value >= 0 else None


_HEX = re.compile(r"0x[0-9a-fA-F]+")
_DEC = re.compile(r"[0-9]+")
_PCI = re.compile(r"([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-9a-fA-F]+)")
_IRQ_FORMS: dict[str, tuple[str, ...]] = {
    "arm": ("irq",), "ioapic": ("ioapic", "pin", "polarity"), "msi": ("pcidev", "handle"),
}
_IRQ_REQUIRED: dict[str, tuple[str, ...]] = {
    "arm": ("irq",), "ioapic": ("ioapic", "pin", "vector"), "msi": ("pcidev", "handle", "vector"),
}


class _Reader:
    def __init__(self, filename: str, dialect: Dialect = "current", prefill_dirs: tuple[Path, ...] = ()) -> None:
        self.filename = filename
        self.prefill_dirs = prefill_dirs
        self.diags: list[Diagnostic] = []
        self.dialect = dialect
        self.attributes = ATTRIBUTES_1_2 if dialect == "1.2" else ATTRIBUTES
        self.child_tags = CHILDREN_1_2 if dialect == "1.2" else CHILDREN
        self.pp_pds: set[str] = set()  # 1.2: protection domains with pp="true" (others may call them)
        self.setvars: list[tuple[str, str, Loc]] = []  # (pd, region named by region_paddr, where)

    def error(self, loc: Loc, rule: str, message: str) -> None:
        self.diags.append(Diagnostic(loc, "error", rule, message))

    # -- attribute helpers ------------------------------------------------------------------------
    def check_element(self, el: Element, kind: str | None = None) -> bool:
        """Unknown attributes and missing required ones. True if the element is usable.

        ``kind`` names the vocabulary when it is not the tag's own (a child protection domain).
        """
        ok = True
        kind = kind or el.tag
        allowed = self.attributes[kind]
        for name in el.attrs:
            if self.dialect == "current" and name in UNSUPPORTED_ATTRIBUTES.get(el.tag, ()):
                self.error(el.loc, "unsupported_attribute",
                           f"attribute '{name}' of <{el.tag}> is a Microkit feature not supported by this "
                           f"validator: {_NOT_CHECKED}")
                ok = False
            elif name not in allowed:
                why = f" ({_NOT_IN_1_2[name]})" if self.dialect == "1.2" and name in _NOT_IN_1_2 else ""
                self.error(el.loc, "unknown_attribute",
                           f"unknown attribute '{name}' on <{el.tag}>; allowed: {', '.join(allowed) or 'none'}{why}")
        if el.text_loc is not None:
            # Microkit (1.2.6 and current) refuses any non-whitespace text ("unexpected text found in element").
            self.error(el.text_loc, "text_content", f"unexpected text inside <{el.tag}>")
        for name in REQUIRED.get(kind, ()):
            if name not in el.attrs:
                self.error(el.loc, "missing_attribute", f"<{el.tag}> is missing required attribute '{name}'")
                ok = False
        return ok

    def number(self, el: Element, name: str, default: int | None = None) -> int | None:
        raw = el.attrs.get(name)
        if raw is None:
            return default
        if self.dialect == "1.2":
            value = parse_number_1_2(raw, decimal_only=el.tag == "end" and name == "id")
        else:
            value = parse_number(raw)
        if value is None:
            self.error(el.loc, "bad_number",
                       f"attribute '{name}' of <{el.tag}> is not a number: '{raw}' "
                       "(use a decimal or 0x-prefixed hexadecimal integer)")
            return default
        return value

    def boolean(self, el: Element, name: str, default: bool) -> bool:
        raw = el.attrs.get(name)
        if raw is None:
            return default
        value = raw.lower() if self.dialect == "1.2" else raw  # 1.2.6 compares case-insensitively
        if value not in ("true", "false"):
            self.error(el.loc, "bad_bool", f"attribute '{name}' of <{el.tag}> must be 'true' or 'false', not '{raw}'")
            return default
        return value == "true"

    def children(self, el: Element) -> list[Element]:
        allowed = self.child_tags.get(el.tag, ())
        out = []
        for child in el.children:
            if child.tag in allowed:
                out.append(child)
            elif self.dialect == "1.2" and (child.tag in _NOT_IN_1_2 or child.tag in _LATER_THAN_1_2):
                why = _NOT_IN_1_2.get(child.tag, "it came in a later Microkit")
                self.error(child.loc, "unknown_element", f"<{child.tag}> is not part of Microkit 1.2: {why}")
            elif child.tag in UNSUPPORTED:
                self.error(child.loc, "unsupported_element",
                           f"<{child.tag}> is a Microkit feature not supported by this validator: {_NOT_CHECKED}")
            elif child.tag == "virtual_machine" and el.tag == "system":
                self.error(child.loc, "vm_not_child", "a <virtual_machine> must be a child of a <protection_domain>")
            else:
                where = f"inside <{el.tag}>"
                hint = f"; allowed: {', '.join(allowed)}" if allowed else "; it takes no child elements"
                self.error(child.loc, "unknown_element", f"unknown element <{child.tag}> {where}{hint}")
        return out

    # -- elements ---------------------------------------------------------------------------------
    def system(self, root: Element) -> System:
        sys_ = System(self.filename, root.loc)
        if root.tag != "system":
            self.error(root.loc, "root_not_system", f"the root element must be <system>, not <{root.tag}>")
            return sys_
        self.check_element(root)
        seen_pd = False
        for child in self.children(root):
            if child.tag == "domains":
                if seen_pd:
                    self.error(child.loc, "domains_after_pd",
                               "<domains> must come before any <protection_domain>")
                if sys_.domains is not None:
                    self.error(child.loc, "duplicate_domains", "<domains> may appear only once")
                    continue
                sys_.domains = self.domains(child)
            elif child.tag == "protection_domain":
                seen_pd = True
                sys_.pds.extend(self.protection_domain(child))
            elif child.tag == "memory_region":
                mr = self.memory_region(child)
                if mr is not None:
                    sys_.regions.append(mr)
            elif child.tag == "channel":
                ch = self.channel(child)
                if ch is not None:
                    sys_.channels.append(ch)
            elif child.tag == "io_address_space":
                space = self.io_address_space(child)
                if space is not None:
                    sys_.io_spaces.append(space)
        sys_.paddr_setvars = list(self.setvars)
        for pd_name, region, loc in self.setvars:
            if sys_.region(region) is None:  # the 1.2.6 tool crashes on this ("can't find region")
                self.error(loc, "setvar_unknown_mr",
                           f"<setvar> in '{pd_name}' takes the physical address of memory region '{region}', "
                           "which does not exist")
        if not seen_pd:  # both 1.2.6 and current Microkit refuse a system without protection domains
            self.error(sys_.loc, "no_pds", "at least one protection domain must be defined")
        if self.dialect == "1.2":
            self._apply_1_2_channel_rights(sys_)
        return sys_

    def _apply_1_2_channel_rights(self, sys_: System) -> None:
        """What a 1.2 channel grants, in the terms of the current format the checks and round trip use.

        Every end may notify the other (1.2 has no ``notify``), and an end may call the other end when that
        protection domain has ``pp="true"``.
        """
        for ch in sys_.channels:
            a, b = ch.ends
            a.notify = b.notify = True
            a.pp = b.pd in self.pp_pds
            b.pp = a.pd in self.pp_pds

    def domains(self, el: Element) -> Domains:
        self.check_element(el)
        out = Domains([], [], False, el.loc)
        for child in self.children(el):
            if child.tag == "domain":
                if self.check_element(child):
                    out.domains.append(Domain(child.attrs["name"], self.number(child, "id"), child.loc))
            elif child.tag == "domain_schedule":
                if out.has_schedule:
                    self.error(child.loc, "duplicate_schedule", "<domain_schedule> may appear only once")
                    continue
                out.has_schedule = True
                out.schedule_loc = child.loc
                self.check_element(child)
                out.start_index = self.number(child, "start_index", 0) or 0
                out.index_shift = self.number(child, "index_shift", 0) or 0
                entries = self.children(child)
                if not any(e.tag == "schedule_entry" for e in entries):
                    self.error(child.loc, "empty_schedule", "<domain_schedule> has no <schedule_entry>")
                for entry in entries:
                    if entry.tag == "schedule_end_marker":
                        self.check_element(entry)
                    elif self.check_element(entry):
                        parsed = self.schedule_entry(entry)
                        if parsed is not None:
                            out.schedule.append(parsed)
        if not out.has_schedule:
            self.error(el.loc, "missing_schedule", "<domains> must contain one <domain_schedule>")
        return out

    def schedule_entry(self, el: Element) -> ScheduleEntry | None:
        raw = el.attrs["duration"]
        value, _, unit = raw.partition(" ")
        number = parse_number(value)
        if number is None or unit not in ("us", "ticks"):
            self.error(el.loc, "bad_duration",
                       f"duration '{raw}' must be a number and a unit, 'us' or 'ticks' (e.g. '1000 us')")
            return None
        if number == 0:
            self.error(el.loc, "bad_duration", f"duration '{raw}' must be non-zero")
            return None
        return ScheduleEntry(el.attrs["domain"], number, unit, el.loc)  # type: ignore[arg-type]

    def protection_domain(self, el: Element, parent: ProtectionDomain | None = None) -> list[ProtectionDomain]:
        """The PD and, after it, its children (flattened: each child names its parent)."""
        if not self.check_element(el, "child_protection_domain" if parent else None):
            return []
        budget = self.number(el, "budget", DEFAULT_BUDGET_US)
        if budget is None:
            raise InvariantBroken("internal invariant broken: budget is not None")
        period = self.number(el, "period", budget)
        pd = ProtectionDomain(
            name=el.attrs["name"],
            priority=self.number(el, "priority", 0) or 0,
            budget=budget,
            period=period if period is not None else budget,
            passive=self.boolean(el, "passive", False),
            stack_size=self.number(el, "stack_size", 0x2000) or 0,
            domain=el.attrs.get("domain"),
            program_image=None,
            loc=el.loc,
            cpu=self.number(el, "cpu", 0) or 0,
            parent=parent.name if parent else None,
            child_id=self.number(el, "id") if parent else None,
        )
        self.boolean(el, "smc", False)
        self.boolean(el, "fpu", True)
        if self.dialect == "1.2" and self.boolean(el, "pp", False):
            self.pp_pds.add(pd.name)
        out = [pd]
        symbols: dict[str, Loc] = {}  # setvar symbols of this PD: each may be patched only once
        for child in self.children(el):
            if child.tag == "protection_domain":
                out.extend(self.protection_domain(child, pd))
                continue
            if child.tag == "virtual_machine":
                if pd.vm is not None:
                    self.error(child.loc, "duplicate_vm", f"protection domain '{pd.name}' has more than one "
                               "<virtual_machine>")
                pd.vm = self.virtual_machine(child) or pd.vm
                continue
            ok = self.check_element(child)
            for attr in ("symbol", "setvar_vaddr", "setvar_size", "setvar_prefill_size", "setvar_id", "setvar_addr"):
                symbol = child.attrs.get(attr)
                if symbol is None:
                    continue
                if symbol in symbols:
                    self.error(child.loc, "duplicate_setvar",
                               f"setvar on symbol '{symbol}' in '{pd.name}' is already set at {symbols[symbol]}; "
                               "a symbol can be patched only once")
                else:
                    symbols[symbol] = child.loc
            if child.tag == "ioport" and ok:
                port = self.ioport(child)
                if port is not None:
                    pd.ioports.append(port)
            elif child.tag == "program_image":
                if pd.program_image is not None:
                    self.error(child.loc, "duplicate_program_image",
                               f"protection domain '{pd.name}' has more than one <program_image>")
                elif ok:
                    pd.program_image = child.attrs["path"]
            elif child.tag == "map" and ok:
                m = self.map(child)
                if m is not None:
                    pd.maps.append(m)
            elif child.tag == "setvar" and ok:
                self.setvars.append((pd.name, child.attrs["region_paddr"], child.loc))
            elif child.tag == "irq" and ok:
                irq = self.irq(child)
                if irq is not None:
                    pd.irqs.append(irq)
        if pd.program_image is None and not any(c.tag == "program_image" for c in el.children):
            self.error(el.loc, "missing_program_image",
                       f"protection domain '{pd.name}' needs exactly one <program_image>")
        return out

    def virtual_machine(self, el: Element) -> VirtualMachine | None:
        if not self.check_element(el):
            return None
        self.number(el, "priority")
        self.number(el, "budget")
        self.number(el, "period")
        vm = VirtualMachine(el.attrs["name"], [], [], el.loc, el.loc if "priority" in el.attrs else None)
        for child in self.children(el):
            if not self.check_element(child):
                continue
            if child.tag == "vcpu":
                ident = self.number(child, "id")
                cpu = self.number(child, "cpu", 0) or 0
                if ident is not None:
                    vm.vcpus.append((ident, cpu, child.loc))
            elif child.tag == "map":
                m = self.map(child)
                if m is not None:
                    vm.maps.append(m)
        if not any(c.tag == "vcpu" for c in el.children):
            self.error(el.loc, "vm_missing_vcpu", f"virtual machine '{vm.name}' needs at least one <vcpu>")
        return vm

    def io_address_space(self, el: Element) -> IoAddressSpace | None:
        if not self.check_element(el):
            return None
        space = IoAddressSpace(el.attrs["name"], self.pci_address(el, "peripheral_id"), self.number(el, "domain_id"),
                               [], el.loc)
        for child in self.children(el):
            if not self.check_element(child):
                continue
            iovaddr = self.number(child, "iovaddr")
            perms = child.attrs.get("perms", "rw")
            if not perms or any(c not in "rw" for c in perms):
                self.error(child.loc, "iomap_perms",
                           f"perms '{perms}' of an <iomap> must be a combination of 'r' and 'w' (a device never "
                           "executes)")
                continue
            if iovaddr is not None:
                space.maps.append(IoMap(child.attrs["mr"], iovaddr, "".join(c for c in "rw" if c in perms), child.loc))
        return space

    def ioport(self, el: Element) -> IoPort | None:
        ident, addr, size = self.number(el, "id"), self.number(el, "addr"), self.number(el, "size")
        if ident is None or addr is None or size is None:
            return None
        return IoPort(ident, addr, size, el.loc)

    def map(self, el: Element) -> Map | None:
        vaddr = self.number(el, "vaddr")
        raw_perms = el.attrs.get("perms", "rw")
        perms_ok = bool(raw_perms) and all(c in "rwx" for c in raw_perms)
        if not perms_ok:
            self.error(el.loc, "bad_perms",
                       f"perms '{raw_perms}' must be a combination of 'r', 'w' and 'x'")
        perms = "".join(c for c in "rwx" if c in raw_perms)
        if perms_ok and "w" in perms and "r" not in perms:
            self.error(el.loc, "write_only_map",
                       f"perms '{raw_perms}' is write-only; the kernel does not allow write-only mappings")
        cached = self.boolean(el, "cached", True)
        if vaddr is None or not perms_ok:
            return None
        return Map(el.attrs["mr"], vaddr, perms, cached, el.loc, el.attrs.get("setvar_vaddr"),
                   el.attrs.get("setvar_prefill_size"))

    def irq(self, el: Element) -> Irq | None:
        """One of three forms: ARM/RISC-V (``irq``), x86 I/O APIC (``ioapic``, ``pin``, ``vector``; ``polarity``)
        or x86 MSI (``pcidev`` bus:device.function, ``handle``, ``vector``). Whether the form suits the
        architecture is the validator's check."""
        kind: Literal["arm", "ioapic", "msi"]
        forms = [k for k, names in _IRQ_FORMS.items() if any(n in el.attrs for n in names)]
        kind = forms[0] if len(forms) == 1 else "arm"  # type: ignore[assignment]
        if len(forms) > 1:
            self.error(el.loc, "irq_mixed_forms",
                       "an <irq> is one of: 'irq' (ARM/RISC-V), 'ioapic'+'pin'+'vector' (x86 I/O APIC) or "
                       "'pcidev'+'handle'+'vector' (x86 MSI); this one mixes " + " and ".join(forms))
            return None
        for name in _IRQ_REQUIRED[kind]:
            if name not in el.attrs:
                self.error(el.loc, "missing_attribute", f"<irq> is missing required attribute '{name}'")
                return None
        ident = self.number(el, "id")
        trigger = el.attrs.get("trigger", "level")
        if trigger not in ("level", "edge"):
            self.error(el.loc, "bad_trigger", f"trigger must be 'level' or 'edge', not '{trigger}'")
        number = self.number(el, "irq") if kind == "arm" else None
        if kind != "arm":
            vector = self.number(el, "vector")
            if vector is not None and vector > 107:
                self.error(el.loc, "irq_vector_range", f"vector {vector} must be within [0..107]")
        if kind == "ioapic":
            self.number(el, "ioapic")
            self.number(el, "pin")
            polarity = el.attrs.get("polarity", "high")
            if polarity not in ("low", "high"):
                self.error(el.loc, "bad_polarity", f"polarity must be 'low' or 'high', not '{polarity}'")
        if kind == "msi":
            self.number(el, "handle")
            self.pci_address(el, "pcidev")
        if ident is None or (kind == "arm" and number is None):
            return None
        return Irq(number, ident, trigger, el.loc, kind)

    def pci_address(self, el: Element, name: str) -> tuple[int, int, int] | None:
        raw = el.attrs[name]
        m = _PCI.fullmatch(raw)
        if m is None:
            self.error(el.loc, "bad_pci_address", f"{name} '{raw}' must be a PCI address bus:device.function")
            return None
        bus, dev, fn = (int(g, 16) for g in m.groups())  # the lspci form: hexadecimal
        for what, value, top in (("bus", bus, 255), ("device", dev, 31), ("function", fn, 7)):
            if value is None or value > top:
                self.error(el.loc, "bad_pci_address", f"PCI {what} in {name} '{raw}' must be within [0..{top}]")
                return None
        return bus, dev, fn

    def memory_region(self, el: Element) -> MemoryRegion | None:
        # Kept without a size when 'size' is missing, so maps of it do not also report "does not exist".
        if not self.check_element(el) and "name" not in el.attrs:
            return None
        page_size = self.number(el, "page_size", PAGE_SIZES[0])
        if page_size is None:
            raise InvariantBroken("internal invariant broken: page_size is not None")
        size = self.number(el, "size")
        prefill = el.attrs.get("prefill_path")
        if prefill is not None and self.dialect == "current":
            found = self.prefill_size(el, prefill)
            if found is not None and size is None:  # the region is as large as its file, in whole pages
                size = max(page_size, -(-found // page_size) * page_size)
        elif "size" not in el.attrs and (self.dialect == "1.2" or "prefill_bootinfo" not in el.attrs):
            self.error(el.loc, "missing_attribute", "<memory_region> is missing required attribute 'size' "
                       "(it may be left out only when the region is prefilled)")
        return MemoryRegion(
            name=el.attrs["name"],
            size=size,
            page_size=page_size,
            phys_addr=self.number(el, "phys_addr"),
            loc=el.loc,
            prefilled=prefill is not None,
        )

    def prefill_size(self, el: Element, name: str) -> int | None:
        """The size of the prefill file, looked up in the search directories; None (and an error) if unusable."""
        for folder in self.prefill_dirs:
            path = folder / name
            if path.is_file():
                size = path.stat().st_size
                if size == 0:
                    self.error(el.loc, "prefill_empty", f"prefill file '{name}' ({path}) is empty")
                    return None
                return size
        where = ", ".join(str(d) for d in self.prefill_dirs) or "no search directory"
        self.error(el.loc, "prefill_not_found", f"cannot find prefill file '{name}' (looked in {where})")
        return None

    def channel(self, el: Element) -> Channel | None:
        self.check_element(el)
        ends: list[ChannelEnd] = []
        for child in self.children(el):
            if not self.check_element(child):
                return None
            ident = self.number(child, "id")
            if ident is None:
                return None
            ends.append(ChannelEnd(
                pd=child.attrs["pd"],
                id=ident,
                notify=self.boolean(child, "notify", True),
                pp=self.boolean(child, "pp", False),
                loc=child.loc,
            ))
        if len(ends) != 2:
            self.error(el.loc, "channel_end_count",
                       f"a <channel> must have exactly two <end> elements, found {len(ends)}")
            return None
        return Channel(ends, el.loc)


def parse(text: str | bytes, filename: str, dialect: Dialect = "current",
          prefill_dirs: tuple[Path, ...] = ()) -> tuple[System | None, list[Diagnostic]]:
    """Parse SDF text. Returns the system (None if the XML is not well-formed) and the diagnostics.

    ``prefill_dirs`` are searched, in order, for a memory region's ``prefill_path`` file.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown Microkit dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    try:
        root = read_tree(text, filename)
    except SdfSyntaxError as exc:
        return None, [exc.diagnostic]
    reader = _Reader(filename, dialect, prefill_dirs)
    system = reader.system(root)
    return system, reader.diags
