"""Read what the pump image prints on its serial line: the PDs' own lines and the Microkit monitor's fault reports.

A PD line (examples/infusion_pump/sel4/pds/septum_pd.h) is ``septum: <pd> <event> key=value ...``.

A fault report is what the Microkit 1.2.6 monitor prints when the kernel stopped a PD (docs/sel4.md)::

    MON|ERROR: received message 0x00000006  badge: 0x...  tcb cap: 0x...
    faulting PD: network
    Registers: ...
    VMFault: ip=0x...  fault_addr=0x0000000020019000  fsr=0x...  (data fault)
       ec: 0x00000024  Data Abort from a lower Exception level   il: 1   iss: 0x00000047
       dfsc = translation fault, level 3 (0x00000007) -- write not read

``Fault`` is assembled from the ``faulting PD`` line and the ``VMFault``/``dfsc`` lines that follow it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_EVENT = re.compile(r"septum: (?P<pd>[A-Za-z0-9_]+) (?P<event>[A-Za-z0-9_-]+)(?P<rest>( [A-Za-z0-9_]+=\S*)*)\s*$")
_FIELD = re.compile(r" ([A-Za-z0-9_]+)=(\S*)")
_FAULTING = re.compile(r"faulting PD: (?P<pd>\S+)")
_VMFAULT = re.compile(r"VMFault: ip=(?P<ip>0x[0-9a-f]+)\s+fault_addr=(?P<addr>0x[0-9a-f]+)")
_DFSC = re.compile(r"dfsc = (?P<kind>[a-z ]+fault)[^-]*(-- (?P<access>write|read) not)?")


@dataclass(frozen=True)
class Event:
    pd: str
    event: str
    fields: dict[str, str]
    at: float = 0.0  # seconds since QEMU started (host clock), when known

    def num(self, key: str) -> float:
        return float(self.fields[key])

    def int(self, key: str) -> int:
        return int(self.fields[key], 0)


def parse_event(text: str, at: float = 0.0) -> Event | None:
    """The PD line in ``text`` (anywhere in it: the kernel may prefix colour codes), or None."""
    start = text.find("septum: ")
    if start < 0:
        return None
    m = _EVENT.match(text[start:])
    if m is None:
        return None
    return Event(m["pd"], m["event"], dict(_FIELD.findall(m["rest"])), at)


@dataclass
class Fault:
    pd: str
    at: float = 0.0
    fault_addr: int | None = None
    ip: int | None = None
    kind: str = ""      # "translation fault", "permission fault", ...
    access: str = ""    # "write" (a write that was not allowed) or "read"
    lines: list[str] = field(default_factory=list)

    def describe(self) -> str:
        addr = f"{self.fault_addr:#x}" if self.fault_addr is not None else "?"
        return f"kernel stopped PD {self.pd}: {self.kind or 'fault'} on {self.access or 'access'} at {addr}"


def parse_faults(lines: Iterable[tuple[float, str]]) -> list[Fault]:
    """Every fault report in (time, text) lines, in order."""
    faults: list[Fault] = []
    current: Fault | None = None
    for at, text in lines:
        m = _FAULTING.search(text)
        if m is not None:
            current = Fault(m["pd"], at)
            faults.append(current)
            current.lines.append(text)
            continue
        if current is None:
            continue
        if (v := _VMFAULT.search(text)) is not None:
            current.fault_addr, current.ip = int(v["addr"], 16), int(v["ip"], 16)
            current.lines.append(text)
        elif (d := _DFSC.search(text)) is not None:
            current.kind, current.access = d["kind"], d["access"] or ""
            current.lines.append(text)
            current = None  # the report's last line
    return faults


def events(lines: Iterable[tuple[float, str]]) -> list[Event]:
    out = []
    for at, text in lines:
        ev = parse_event(text, at)
        if ev is not None:
            out.append(ev)
    return out
