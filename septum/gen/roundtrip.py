"""Read a system description back and prove it grants exactly the model's channels: no more, no fewer.

The comparison works on *information flows*, not on element names, so it also catches a grant the
generator never meant to make (a third protection domain mapping a channel region, a receiver with
write access, a notification in the wrong direction, a protected-procedure channel):

- a memory region mapped writable in PD A and readable in PD B (A != B) is a data flow A -> B;
- a channel end with ``notify`` lets its PD signal the other end's PD;
- a ``pp`` end lets its PD call the other, and the reply flows back, so it is a flow both ways;
- a device region (``dev_<interface>``) or an interrupt gives its PD the hardware.

The model's flows are: for each channel, data and notification from ``from`` to ``to`` (through the
region ``ch_<name>``); for each enabled owned interface, its device region and interrupt in the owner.
"""

from __future__ import annotations

from collections import Counter

from septum.model import Model

from .layout import channel_region, device_region
from .sdf_model import System


def sdf_flows(system: System) -> tuple[set[tuple[str, str, str]], Counter[tuple[str, str]], list[str]]:
    """(data flows (writer, reader, region), notification counts (from, to), other grants as text)."""
    writers: dict[str, set[str]] = {}
    readers: dict[str, set[str]] = {}
    for pd in system.pds:
        for m in pd.maps:
            if m.writable:
                writers.setdefault(m.mr, set()).add(pd.name)
            if m.readable:
                readers.setdefault(m.mr, set()).add(pd.name)
    data = {
        (w, r, mr)
        for mr, ws in writers.items()
        for w in ws
        for r in readers.get(mr, set())
        if r != w
    }
    notify: Counter[tuple[str, str]] = Counter()
    other: list[str] = []
    for ch in system.channels:
        a, b = ch.ends
        for me, peer in ((a, b), (b, a)):
            if me.notify:
                notify[(me.pd, peer.pd)] += 1
            if me.pp:
                other.append(f"protected-procedure channel: '{me.pd}' may call '{peer.pd}' (and receive replies)")
    return data, notify, other


def compare(model: Model, system: System) -> list[str]:
    """Every difference between what the SDF grants and what the model allows; empty if they agree."""
    problems: list[str] = []
    pds = {p.name for p in system.pds}
    parts = set(model.partitions)
    problems += [f"protection domain '{n}' is not a partition of the model" for n in sorted(pds - parts)]
    problems += [f"partition '{n}' has no protection domain" for n in sorted(parts - pds)]

    want_data = {(c.src, c.dst, channel_region(c.name)) for c in model.channels}
    want_notify = Counter((c.src, c.dst) for c in model.channels)
    data, notify, other = sdf_flows(system)
    for w, r, mr in sorted(data - want_data):
        problems.append(f"extra grant: '{w}' can write region '{mr}' that '{r}' can read; no model channel allows it")
    for w, r, mr in sorted(want_data - data):
        problems.append(f"missing grant: model channel {w} -> {r} has no region '{mr}' writable by {w} and "
                        f"readable by {r}")
    for (a, b), n in sorted((notify - want_notify).items()):
        problems.append(f"extra grant: {n} notification channel(s) let '{a}' signal '{b}' beyond the model's")
    for (a, b), n in sorted((want_notify - notify).items()):
        problems.append(f"missing grant: {n} model channel(s) {a} -> {b} have no notification from {a} to {b}")
    problems += [f"extra grant: {o}" for o in other]

    # Hardware: device regions and interrupts only in the owner of an enabled interface.
    want_dev = {
        device_region(i): owner
        for i, iface in model.interfaces.items()
        if iface.enabled and (owner := model.owner_of(i)) is not None
    }
    fixed = {r.name for r in system.regions if r.phys_addr is not None}
    for pd in system.pds:
        for m in pd.maps:
            if m.mr in fixed and want_dev.get(m.mr) != pd.name:
                problems.append(f"extra grant: '{pd.name}' maps device region '{m.mr}', which it does not own")
        irq_count = len(pd.irqs)
        want_irqs = sum(1 for owner in want_dev.values() if owner == pd.name)
        if irq_count != want_irqs:
            problems.append(f"'{pd.name}' receives {irq_count} interrupt(s); "
                            f"the model's interfaces give it {want_irqs}")
    for region, owner in sorted(want_dev.items()):
        owner_pd = system.pd(owner)
        if owner_pd is not None and not any(m.mr == region for m in owner_pd.maps):
            problems.append(f"missing grant: '{owner}' does not map the device region '{region}' it owns")
    return problems
