"""Septum's own validator for Microkit system description files.

The real ``microkit`` tool needs an SDK built for a board, which is not available where Septum runs,
so the rules it enforces on a system description are checked here instead, plus a few that only
warn (an unused memory region is a grant nobody asked for). Each rule has a stable id (shown in
brackets after the message) and every diagnostic names ``file:line:col``. The rules are listed in
docs/generators.md; how they compare with Microkit's own test fixtures is in docs/sel4.md.

The limits that depend on the kernel build (architecture, cores, number of scheduling domains) come from a
``Target``; its defaults are those of Microkit's own SDF tests (AArch64, one core, 16 domains).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from septum.errors import InvariantBroken

from .sdf_model import (
    MAX_ID,
    MAX_PDS,
    MAX_PRIORITY,
    MAX_STACK,
    MIN_STACK,
    MONITOR_DOMAIN,
    PAGE_SIZES,
    Diagnostic,
    Loc,
    Map,
    System,
    Target,
)
from .sdf_parse import MAX_ID_1_2, Dialect, parse


def _overlaps(spans: list[tuple[int, int, str, Loc]]) -> list[tuple[int, str, Loc, str]]:
    """Ranges that start before an earlier-starting range has ended: (start, name, loc, overlapped name)."""
    out = []
    furthest: tuple[int, str] | None = None  # the end reached so far, and whose range reaches it
    for start, end, name, loc in sorted(spans, key=lambda s: (s[0], s[1], s[2])):
        if furthest is not None and start < furthest[0]:
            out.append((start, name, loc, furthest[1]))
        if furthest is None or end > furthest[0]:
            furthest = (end, name)
    return out


class _Checker:
    def __init__(self, system: System, dialect: Dialect = "current", target: Target | None = None) -> None:
        self.sys = system
        self.diags: list[Diagnostic] = []
        self.max_id = MAX_ID_1_2 if dialect == "1.2" else MAX_ID
        self.dialect = dialect
        self.target = target or Target()

    def error(self, loc: Loc, rule: str, message: str) -> None:
        self.diags.append(Diagnostic(loc, "error", rule, message))

    def warning(self, loc: Loc, rule: str, message: str) -> None:
        self.diags.append(Diagnostic(loc, "warning", rule, message))

    def run(self) -> list[Diagnostic]:
        self.protection_domains()
        self.memory_regions()
        self.maps()
        self.ids_and_irqs()
        self.channels()
        self.domains()
        self.children_and_vms()
        self.x86_io()
        self.io_spaces()
        return self.diags

    # -- protection domains -------------------------------------------------------------------------
    def protection_domains(self) -> None:
        seen: dict[str, Loc] = {}
        for index, pd in enumerate(self.sys.pds):
            if index == MAX_PDS:
                self.error(pd.loc, "too_many_pds",
                           f"more than {MAX_PDS} protection domains; Microkit supports at most {MAX_PDS}")
            if pd.name in seen:
                self.error(pd.loc, "duplicate_pd_name",
                           f"protection domain name '{pd.name}' is already used at {seen[pd.name]}")
            else:
                seen[pd.name] = pd.loc
            if pd.cpu >= self.target.cores:
                self.error(pd.loc, "cpu_range", f"cpu core {pd.cpu} of '{pd.name}' must be less than "
                           f"{self.target.cores} (the cores the kernel is built for)")
            if pd.priority > MAX_PRIORITY:
                self.error(pd.loc, "priority_range",
                           f"priority {pd.priority} of '{pd.name}' is out of range 0..{MAX_PRIORITY}")
            if pd.budget > pd.period:
                self.error(pd.loc, "budget_gt_period",
                           f"budget ({pd.budget}) of '{pd.name}' must be less than or equal to its "
                           f"period ({pd.period})")
            if pd.budget == 0 or pd.period == 0:
                self.error(pd.loc, "zero_budget", f"budget and period of '{pd.name}' must be non-zero")
            if not MIN_STACK <= pd.stack_size <= MAX_STACK:
                self.error(pd.loc, "stack_size_range",
                           f"stack_size {pd.stack_size:#x} of '{pd.name}' must be between {MIN_STACK:#x} "
                           f"and {MAX_STACK:#x} bytes")
            elif pd.stack_size % PAGE_SIZES[0]:
                self.error(pd.loc, "stack_size_alignment",
                           f"stack_size {pd.stack_size:#x} of '{pd.name}' must be a multiple of "
                           f"{PAGE_SIZES[0]:#x}")

    # -- memory regions -----------------------------------------------------------------------------
    def memory_regions(self) -> None:
        seen: dict[str, Loc] = {}
        fixed: list[tuple[int, int, str, Loc]] = []
        for mr in self.sys.regions:
            if mr.name in seen:
                self.error(mr.loc, "duplicate_mr_name",
                           f"memory region name '{mr.name}' is already used at {seen[mr.name]}")
            else:
                seen[mr.name] = mr.loc
            if mr.page_size not in PAGE_SIZES:
                self.error(mr.loc, "page_size_unsupported",
                           f"page_size {mr.page_size:#x} of '{mr.name}' is not supported; use "
                           + " or ".join(f"{p:#x}" for p in PAGE_SIZES))
                continue
            if mr.size is None:
                continue
            if mr.size == 0 or mr.size % mr.page_size:
                self.error(mr.loc, "mr_size_not_multiple_of_page_size",
                           f"size {mr.size:#x} of '{mr.name}' is not a non-zero multiple of its page size "
                           f"{mr.page_size:#x}")
                continue
            if mr.phys_addr is not None:
                if mr.phys_addr % mr.page_size:
                    self.error(mr.loc, "phys_addr_alignment",
                               f"phys_addr {mr.phys_addr:#x} of '{mr.name}' is not aligned to its page size "
                               f"{mr.page_size:#x}")
                fixed.append((mr.phys_addr, mr.phys_addr + mr.size, mr.name, mr.loc))
        for start, name, loc, other in _overlaps(fixed):
            self.error(loc, "phys_overlap",
                       f"physical range of '{name}' (from {start:#x}) overlaps memory region '{other}'")

    def maps(self) -> None:
        used: set[str] = set()
        for pd in self.sys.pds:
            spans: list[tuple[int, int, str, Loc]] = []
            for m in pd.maps:
                mr = self.sys.region(m.mr)
                if mr is None:
                    self.error(m.loc, "map_unknown_mr",
                               f"<map> in '{pd.name}' refers to memory region '{m.mr}', which does not exist")
                    continue
                used.add(m.mr)
                self._map_top(m, mr.size, self.target.max_map_vaddr(pd.stack_size), pd.name)
                if m.setvar_prefill_size is not None and not mr.prefilled:
                    self.error(m.loc, "prefill_size_without_prefill",
                               f"'setvar_prefill_size' on the map of '{m.mr}' in '{pd.name}', but the region has "
                               "no 'prefill_path'")
                if m.vaddr % mr.page_size:
                    self.error(m.loc, "map_vaddr_alignment",
                               f"vaddr {m.vaddr:#x} of the map of '{m.mr}' in '{pd.name}' is not aligned to "
                               f"the region's page size {mr.page_size:#x}")
                if mr.size:
                    spans.append((m.vaddr, m.vaddr + mr.size, m.mr, m.loc))
            for start, name, loc, other in _overlaps(spans):
                self.error(loc, "overlapping_maps",
                           f"in '{pd.name}' the map of '{name}' at {start:#x} overlaps the map of '{other}'")
        used |= {m.mr for pd in self.sys.pds if pd.vm for m in pd.vm.maps}
        used |= {m.mr for space in self.sys.io_spaces for m in space.maps}  # a device's DMA is a use too
        for mr in self.sys.regions:
            if mr.name not in used:
                self.warning(mr.loc, "unused_mr", f"memory region '{mr.name}' is not mapped by any protection domain")

    def _map_top(self, m: Map, size: int | None, top: int, owner: str) -> None:
        if self.dialect == "1.2":
            return  # the limit is current Microkit's (measured on its fixtures); the 1.2.6 tool does not check it
        if m.vaddr >= top:
            self.error(m.loc, "map_vaddr_too_high",
                       f"vaddr {m.vaddr:#x} of the map of '{m.mr}' in '{owner}' must be less than {top:#x} "
                       f"(on {self.target.arch} the stack takes the top of the address space)")
        elif size is not None and m.vaddr + size > top:
            self.error(m.loc, "map_range_too_high",
                       f"the map of '{m.mr}' in '{owner}' covers [{m.vaddr:#x}..{m.vaddr + size:#x}), which exceeds "
                       f"the valid address space (below {top:#x})")

    # -- ids, irqs ----------------------------------------------------------------------------------
    def ids_and_irqs(self) -> None:
        irq_owner: dict[int, tuple[str, Loc]] = {}
        # per PD: id -> where it was first used; channels and irqs share one id space
        self._ids: dict[str, dict[int, Loc]] = defaultdict(dict)
        for pd in self.sys.pds:
            for irq in pd.irqs:
                self._claim_id(pd.name, irq.id, irq.loc, "irq")
                if self.target.arch == "x86_64" and irq.kind == "arm":
                    self.error(irq.loc, "irq_arch", "ARM and RISC-V interrupts ('irq' attribute) are not "
                               "supported on x86; use the I/O APIC or MSI form")
                elif self.target.arch != "x86_64" and irq.kind != "arm":
                    self.error(irq.loc, "irq_arch", f"x86 {'I/O APIC' if irq.kind == 'ioapic' else 'MSI'} "
                               f"interrupts are not supported on {self.target.arch}")
                if irq.irq is None:
                    continue
                if irq.irq in irq_owner:
                    other, loc = irq_owner[irq.irq]
                    self.error(irq.loc, "duplicate_irq_number",
                               f"interrupt {irq.irq} is already delivered to '{other}' ({loc}); an interrupt can "
                               "go to only one protection domain")
                else:
                    irq_owner[irq.irq] = (pd.name, irq.loc)

    def _claim_id(self, pd: str, ident: int, loc: Loc, what: str) -> None:
        if ident > self.max_id:
            self.error(loc, "id_range", f"{what} id {ident} for '{pd}' is out of range 0..{self.max_id}")
            return
        ids = self._ids[pd]
        if ident in ids:
            self.error(loc, "duplicate_id",
                       f"id {ident} is already used in '{pd}' at {ids[ident]}; channel and irq ids of a "
                       "protection domain must be unique")
        else:
            ids[ident] = loc

    def channels(self) -> None:
        calls: dict[tuple[str, str], Loc] = {}
        for ch in self.sys.channels:
            a, b = ch.ends
            known = True
            for end in ch.ends:
                if self.sys.pd(end.pd) is None:
                    self.error(end.loc, "channel_unknown_pd",
                               f"channel end refers to protection domain '{end.pd}', which does not exist")
                    known = False
                else:
                    self._claim_id(end.pd, end.id, end.loc, "channel")
            if a.pd == b.pd:
                self.error(ch.loc, "channel_self", f"a channel must connect two different protection domains, "
                           f"both ends are '{a.pd}'")
                continue
            if a.pp and b.pp:
                self.error(ch.loc, "pp_both_ends",
                           "pp is set on both ends; protected calls may go one way only")
                continue
            if not known:
                continue
            for caller, callee in ((a, b), (b, a)):
                if not caller.pp:
                    continue
                p_caller = self.sys.pd(caller.pd)
                p_callee = self.sys.pd(callee.pd)
                if p_caller is None or p_callee is None:
                    raise InvariantBroken("internal invariant broken: p_caller is not None and p_callee is not None")
                if self.target.arch == "x86_64" and p_callee.vm is not None:
                    self.error(caller.loc, "ppcall_to_vmm",
                               f"'{caller.pd}' may make protected calls to '{callee.pd}', which has a bound "
                               "vCPU; on x86_64 that is not possible")
                if p_callee.priority <= p_caller.priority:
                    self.error(caller.loc, "ppcall_priority",
                               f"'{caller.pd}' (priority {p_caller.priority}) may make protected calls to "
                               f"'{callee.pd}' (priority {p_callee.priority}); the callee's priority must be "
                               "strictly higher")
                back = calls.get((callee.pd, caller.pd))
                if back is not None:
                    self.error(caller.loc, "ppcall_both_ways",
                               f"'{caller.pd}' and '{callee.pd}' may make protected calls to each other "
                               f"(the other direction is at {back})")
                calls[(caller.pd, callee.pd)] = caller.loc

    # -- domains ------------------------------------------------------------------------------------
    def domains(self) -> None:
        doms = self.sys.domains
        if doms is None:
            for pd in self.sys.pds:
                if pd.domain is not None:
                    self.error(pd.loc, "domain_without_domains",
                               f"'{pd.name}' names domain '{pd.domain}' but the system declares no <domains>")
            return
        names: dict[str, Loc] = {}
        ids: dict[int, str] = {}
        limit = self.target.max_domains
        if self.target.cores > 1:
            self.error(doms.loc, "domains_smp", "the domain scheduler is not supported on a multicore "
                       f"({self.target.cores} cores) build of seL4")
        for d in doms.domains:
            if d.name in names:
                self.error(d.loc, "duplicate_domain", f"domain '{d.name}' is already declared at {names[d.name]}")
            names.setdefault(d.name, d.loc)
            if d.id is not None:
                if d.id >= limit:
                    self.error(d.loc, "domain_id_range", f"domain id {d.id} of '{d.name}' is out of range "
                               f"0..{limit - 1} (the kernel is built for {limit} domains)")
                if d.id in ids:
                    self.error(d.loc, "duplicate_domain_id",
                               f"domain id {d.id} is already used by domain '{ids[d.id]}'")
                ids.setdefault(d.id, d.name)
        explicit = bool(doms.domains) and all(d.id is not None for d in doms.domains)
        # The monitor runs in domain 0: with explicit ids and none of them 0, domain 0 is one more in use.
        in_use = len(names) + (1 if explicit and MONITOR_DOMAIN not in ids else 0)
        if in_use > limit:
            monitor = " and the Microkit monitor's domain 0" if in_use > len(names) else ""
            self.error(doms.loc, "too_many_domains",
                       f"{len(names)} domains{monitor} are more than the {limit} the kernel is built for "
                       "(seL4's KernelNumDomains; see --max-domains)")
        if doms.domains and not explicit:
            self.warning(doms.loc, "domain_id_implicit",
                         "not every <domain> has an 'id': the tool numbers them itself, so which one shares "
                         f"domain {MONITOR_DOMAIN} with the Microkit monitor is not fixed by this file")
        if doms.has_schedule and doms.schedule_loc is not None:
            length = len(doms.schedule)
            if length and doms.start_index >= length:
                self.error(doms.schedule_loc, "schedule_start_index",
                           f"start_index {doms.start_index} is past the end of the schedule ({length} entries, "
                           f"indices 0..{length - 1})")
            if doms.index_shift + length > self.target.domain_schedules:
                self.error(doms.schedule_loc, "schedule_too_long",
                           f"index_shift {doms.index_shift} plus the schedule's {length} entries exceeds the "
                           f"{self.target.domain_schedules} schedule slots the kernel is built for "
                           "(KernelNumDomainSchedules)")
        for entry in doms.schedule:
            if entry.domain not in names:
                self.error(entry.loc, "schedule_unknown_domain",
                           f"schedule entry names domain '{entry.domain}', which is not declared")
        by_name = {d.name: d.id for d in doms.domains}
        for pd in self.sys.pds:
            if pd.domain is None:
                self.error(pd.loc, "pd_missing_domain",
                           f"'{pd.name}' has no domain attribute, but the system declares <domains>")
            elif pd.domain not in names:
                self.error(pd.loc, "pd_unknown_domain",
                           f"'{pd.name}' names domain '{pd.domain}', which is not declared in <domains>")
            elif by_name.get(pd.domain) == MONITOR_DOMAIN:
                self.warning(pd.loc, "monitor_domain_shared",
                             f"'{pd.name}' is in domain '{pd.domain}' (id {MONITOR_DOMAIN}), which it shares with "
                             "the Microkit monitor; give partitions ids from 1")

    # -- child protection domains, virtual machines -------------------------------------------------
    def children_and_vms(self) -> None:
        tcb_ids: dict[str, dict[int, str]] = defaultdict(dict)  # parent -> child/vcpu id -> what holds it
        vm_names: dict[str, Loc] = {}
        parents = {pd.parent for pd in self.sys.pds if pd.parent}
        for pd in self.sys.pds:
            if pd.parent is not None and pd.child_id is not None:
                self._tcb_id(tcb_ids[pd.parent], pd.parent, pd.child_id, f"child '{pd.name}'", pd.loc, False)
            vm = pd.vm
            if vm is None:
                continue
            if not self.target.hypervisor:
                self.error(vm.loc, "vm_no_hypervisor", f"virtual machine '{vm.name}' needs seL4 built with "
                           "hypervisor support")
            if vm.name in vm_names:
                self.error(vm.loc, "duplicate_vm_name",
                           f"virtual machine name '{vm.name}' is already used at {vm_names[vm.name]}")
            vm_names.setdefault(vm.name, vm.loc)
            if self.target.arch == "x86_64":
                if vm.priority_loc is not None:
                    self.error(vm.priority_loc, "vm_priority_x86",
                               f"virtual machine '{vm.name}' takes no 'priority' on x86_64 (its vCPU runs on its "
                               "VMM's thread)")
                if pd.name in parents:
                    self.error(pd.loc, "vmm_children_x86",
                               f"'{pd.name}' has a bound vCPU and children; on x86_64 that is not possible")
            for ident, cpu, loc in vm.vcpus:
                if cpu >= self.target.cores:
                    self.error(loc, "cpu_range", f"vcpu cpu {cpu} of '{vm.name}' must be less than "
                               f"{self.target.cores}")
                self._tcb_id(tcb_ids[pd.name], pd.name, ident, f"vcpu of '{vm.name}'", loc, True)
            spans: list[tuple[int, int, str, Loc]] = []
            for m in vm.maps:
                mr = self.sys.region(m.mr)
                if mr is None:
                    self.error(m.loc, "map_unknown_mr", f"<map> in virtual machine '{vm.name}' refers to memory "
                               f"region '{m.mr}', which does not exist")
                    continue
                self._map_top(m, mr.size, self.target.user_top, vm.name)
                if m.vaddr % mr.page_size:
                    self.error(m.loc, "map_vaddr_alignment", f"vaddr {m.vaddr:#x} of the map of '{m.mr}' in "
                               f"virtual machine '{vm.name}' is not aligned to its page size {mr.page_size:#x}")
                if mr.size:
                    spans.append((m.vaddr, m.vaddr + mr.size, m.mr, m.loc))
            for start, name, loc, other in _overlaps(spans):
                self.error(loc, "overlapping_maps", f"in virtual machine '{vm.name}' the map of '{name}' at "
                           f"{start:#x} overlaps the map of '{other}'")

    def _tcb_id(self, ids: dict[int, str], parent: str, ident: int, what: str, loc: Loc, vcpu: bool) -> None:
        """Children and vCPUs of a PD are numbered in one space (the PD's capabilities to their threads)."""
        if ident > self.max_id:
            self.error(loc, "id_range", f"{what} id {ident} in '{parent}' is out of range 0..{self.max_id}")
        elif ident in ids:
            clash = " (it clashes with a virtual machine's vcpu id)" if vcpu or ids[ident].startswith("vcpu") else ""
            self.error(loc, "duplicate_child_id",
                       f"duplicate id {ident} in protection domain '{parent}': {what} and {ids[ident]}{clash}")
        else:
            ids[ident] = what

    # -- x86 I/O ------------------------------------------------------------------------------------
    def x86_io(self) -> None:
        ports: list[tuple[int, int, str, Loc]] = []
        for pd in self.sys.pds:
            seen: dict[int, Loc] = {}
            for port in pd.ioports:
                if self.target.arch != "x86_64":
                    self.error(port.loc, "ioport_arch", f"I/O ports exist only on x86_64, not {self.target.arch}")
                if port.size == 0:
                    self.error(port.loc, "ioport_size", f"I/O port {port.id} of '{pd.name}' must have size > 0")
                    continue
                if port.id > self.max_id:
                    self.error(port.loc, "id_range", f"I/O port id {port.id} of '{pd.name}' is out of range "
                               f"0..{self.max_id}")
                elif port.id in seen:
                    self.error(port.loc, "duplicate_id", f"I/O port id {port.id} is already used in '{pd.name}' "
                               f"at {seen[port.id]}")
                seen.setdefault(port.id, port.loc)
                ports.append((port.addr, port.addr + port.size, f"I/O port {port.id} of '{pd.name}'", port.loc))
        for start, name, loc, other in _overlaps(ports):
            self.error(loc, "ioport_overlap", f"{name} (from {start:#x}) overlaps {other}")
        if self.target.arch == "x86_64":
            for pd_name, region_name, loc in self.sys.paddr_setvars:
                region = self.sys.region(region_name)
                if region is not None and region.phys_addr is None:
                    self.error(loc, "setvar_paddr_x86",
                               f"<setvar region_paddr='{region_name}'> in '{pd_name}': on x86_64 the region "
                               "needs a 'phys_addr' (the tool cannot give it a physical address there)")


    # -- IOMMU ----------------------------------------------------------------------------------------
    def io_spaces(self) -> None:
        names: dict[str, Loc] = {}
        devices: dict[tuple[int, int, int], str] = {}
        domain_ids: dict[int, str] = {}
        top = self.target.io_top
        for space in self.sys.io_spaces:
            if not self.target.iommu:
                self.error(space.loc, "iommu_unavailable", f"<io_address_space> '{space.name}' needs seL4 built "
                           "with IOMMU support")
            elif self.target.arch != "x86_64":
                self.error(space.loc, "iommu_arch", f"<io_address_space> '{space.name}': IOMMU device identifiers "
                           f"(PCI) are not supported on {self.target.arch}")
            if space.name in names:
                self.error(space.loc, "duplicate_io_space", f"I/O address space name '{space.name}' is already "
                           f"used at {names[space.name]}")
            names.setdefault(space.name, space.loc)
            if space.pci is not None:
                if space.pci in devices:
                    bus, dev, fn = space.pci
                    self.error(space.loc, "duplicate_io_device", f"PCI device {bus:02x}:{dev:02x}.{fn:x} already "
                               f"has an I/O address space, '{devices[space.pci]}'")
                devices.setdefault(space.pci, space.name)
            if space.domain_id is not None:
                if space.domain_id in domain_ids:
                    self.error(space.loc, "duplicate_io_domain_id", f"IOMMU domain id {space.domain_id} is already "
                               f"used by '{domain_ids[space.domain_id]}'")
                domain_ids.setdefault(space.domain_id, space.name)
            spans: list[tuple[int, int, str, Loc]] = []
            for m in space.maps:
                mr = self.sys.region(m.mr)
                if mr is None:
                    self.error(m.loc, "map_unknown_mr", f"<iomap> in '{space.name}' refers to memory region "
                               f"'{m.mr}', which does not exist")
                    continue
                if mr.page_size != PAGE_SIZES[0]:
                    self.error(m.loc, "iomap_large_page", f"'{m.mr}' uses {mr.page_size:#x} pages; seL4 has no "
                               "large-page support for the IOMMU")
                    continue
                size = mr.size or 0
                if m.iovaddr >= top:
                    self.error(m.loc, "iovaddr_too_high", f"iovaddr {m.iovaddr:#x} of '{m.mr}' in '{space.name}' "
                               f"must be less than {top:#x}")
                elif m.iovaddr + size >= 1 << 64:
                    self.error(m.loc, "iovaddr_overflow", f"the iomap of '{m.mr}' in '{space.name}' overflows the "
                               "64-bit address range")
                elif m.iovaddr + size > top:
                    self.error(m.loc, "iovaddr_range_too_high", f"the iomap of '{m.mr}' in '{space.name}' covers "
                               f"[{m.iovaddr:#x}..{m.iovaddr + size:#x}), beyond the I/O address space [0..{top:#x})")
                if m.iovaddr % PAGE_SIZES[0]:
                    self.error(m.loc, "map_vaddr_alignment", f"iovaddr {m.iovaddr:#x} of '{m.mr}' in "
                               f"'{space.name}' is not page-aligned")
                if size:
                    spans.append((m.iovaddr, m.iovaddr + size, m.mr, m.loc))
            for start, name, loc, other in _overlaps(spans):
                self.error(loc, "overlapping_maps", f"in I/O address space '{space.name}' the iomap of '{name}' at "
                           f"{start:#x} overlaps the iomap of '{other}'")


def validate_system(system: System, dialect: Dialect = "current", target: Target | None = None) -> list[Diagnostic]:
    """The semantic rules over an already parsed system."""
    return _Checker(system, dialect, target).run()


def validate_text(text: str | bytes, filename: str, dialect: Dialect = "current", target: Target | None = None,
                  prefill_dirs: tuple[Path, ...] = ()) -> tuple[System | None, list[Diagnostic]]:
    """Parse and validate; diagnostics sorted by location. The system is None if the XML is broken.

    ``dialect`` is ``"current"`` (Microkit 2.x, the default) or ``"1.2"`` (Microkit 1.2.6, see sdf_parse);
    ``target`` the kernel configuration (default: ``Target()``); ``prefill_dirs`` where prefill files are.
    """
    system, diags = parse(text, filename, dialect, prefill_dirs)
    if system is not None:
        diags = diags + validate_system(system, dialect, target)
    return system, sorted(diags)


def validate_file(path: str | Path, dialect: Dialect = "current", target: Target | None = None,
                  prefill_dirs: tuple[Path, ...] | None = None) -> tuple[System | None, list[Diagnostic]]:
    """Validate a file; raises OSError if it cannot be read (the CLI turns that into exit 2).

    Prefill files are looked for in ``prefill_dirs``, by default the file's own directory.
    """
    p = Path(path)
    dirs = (p.parent,) if prefill_dirs is None else prefill_dirs
    return validate_text(p.read_bytes(), str(path), dialect, target, dirs)


def errors(diags: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity == "error"]
