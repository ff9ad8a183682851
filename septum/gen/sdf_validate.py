"""Septum's own validator for Microkit system description files.

The real ``microkit`` tool needs an SDK built for a board, which is not available where Septum runs,
so the rules it enforces on a system description are checked here instead, plus a few that only
warn (an unused memory region is a grant nobody asked for). Each rule has a stable id (shown in
brackets after the message) and every diagnostic names ``file:line:col``. The rules are listed in
docs/generators.md.
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
    PAGE_SIZES,
    Diagnostic,
    Loc,
    System,
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
    def __init__(self, system: System, dialect: Dialect = "current") -> None:
        self.sys = system
        self.diags: list[Diagnostic] = []
        self.max_id = MAX_ID_1_2 if dialect == "1.2" else MAX_ID

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
                if m.vaddr % mr.page_size:
                    self.error(m.loc, "map_vaddr_alignment",
                               f"vaddr {m.vaddr:#x} of the map of '{m.mr}' in '{pd.name}' is not aligned to "
                               f"the region's page size {mr.page_size:#x}")
                if mr.size:
                    spans.append((m.vaddr, m.vaddr + mr.size, m.mr, m.loc))
            for start, name, loc, other in _overlaps(spans):
                self.error(loc, "overlapping_maps",
                           f"in '{pd.name}' the map of '{name}' at {start:#x} overlaps the map of '{other}'")
        for mr in self.sys.regions:
            if mr.name not in used:
                self.warning(mr.loc, "unused_mr", f"memory region '{mr.name}' is not mapped by any protection domain")

    # -- ids, irqs ----------------------------------------------------------------------------------
    def ids_and_irqs(self) -> None:
        irq_owner: dict[int, tuple[str, Loc]] = {}
        # per PD: id -> where it was first used; channels and irqs share one id space
        self._ids: dict[str, dict[int, Loc]] = defaultdict(dict)
        for pd in self.sys.pds:
            for irq in pd.irqs:
                self._claim_id(pd.name, irq.id, irq.loc, "irq")
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
        for d in doms.domains:
            if d.name in names:
                self.error(d.loc, "duplicate_domain", f"domain '{d.name}' is already declared at {names[d.name]}")
            names.setdefault(d.name, d.loc)
            if d.id is not None:
                if d.id in ids:
                    self.error(d.loc, "duplicate_domain_id",
                               f"domain id {d.id} is already used by domain '{ids[d.id]}'")
                ids.setdefault(d.id, d.name)
        for entry in doms.schedule:
            if entry.domain not in names:
                self.error(entry.loc, "schedule_unknown_domain",
                           f"schedule entry names domain '{entry.domain}', which is not declared")
        for pd in self.sys.pds:
            if pd.domain is None:
                self.error(pd.loc, "pd_missing_domain",
                           f"'{pd.name}' has no domain attribute, but the system declares <domains>")
            elif pd.domain not in names:
                self.error(pd.loc, "pd_unknown_domain",
                           f"'{pd.name}' names domain '{pd.domain}', which is not declared in <domains>")


def validate_system(system: System, dialect: Dialect = "current") -> list[Diagnostic]:
    """The semantic rules over an already parsed system."""
    return _Checker(system, dialect).run()


def validate_text(text: str | bytes, filename: str,
                  dialect: Dialect = "current") -> tuple[System | None, list[Diagnostic]]:
    """Parse and validate; diagnostics sorted by location. The system is None if the XML is broken.

    ``dialect`` is ``"current"`` (Microkit 2.x, the default) or ``"1.2"`` (Microkit 1.2.6, see sdf_parse).
    """
    system, diags = parse(text, filename, dialect)
    if system is not None:
        diags = diags + validate_system(system, dialect)
    return system, sorted(diags)


def validate_file(path: str | Path, dialect: Dialect = "current") -> tuple[System | None, list[Diagnostic]]:
    """Validate a file; raises OSError if it cannot be read (the CLI turns that into exit 2)."""
    p = Path(path)
    return validate_text(p.read_bytes(), str(path), dialect)


def errors(diags: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity == "error"]
