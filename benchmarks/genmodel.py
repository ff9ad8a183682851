"""Generate large, realistic device models for the benchmarks (deterministic for a given size and seed).

The mix: ~5% of partitions own an external network interface (entry points), ~10% are guards, ~10% are
safety partitions, the rest are ordinary. Each partition sends on ~5 channels. Safety partitions receive
only from guards or other safety partitions, except for a few deliberate flaws, so the analysis has real
paths to search and a handful of findings to report.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Topology:
    partitions: list[tuple[str, str, bool]]  # (name, kind: entry|guard|safety|plain, owns an interface)
    channels: list[tuple[str, str, str]]  # (name, from, to)


def topology(n: int, *, fanout: int = 5, seed: int = 7) -> Topology:
    """Subsystems of 20 partitions (1 entry point, 2 guards, 2 safety, 15 plain), wired mostly inside their
    subsystem with some plain-to-plain links across subsystems, like the parts of a large device family."""
    rnd = random.Random(seed)
    kinds: list[str] = []
    for i in range(n):
        r = i % 20
        kinds.append("entry" if r == 0 else "guard" if r in (1, 2) else "safety" if r in (3, 4) else "plain")
    names = [f"p{i}" for i in range(n)]
    channels: list[tuple[str, str, str]] = []
    seen: set[tuple[int, int]] = set()
    flaws = max(1, n // 2000)
    for i, k in enumerate(kinds):
        base = i - i % 20
        local = [j for j in range(base, min(base + 20, n))]
        safety = [j for j in local if kinds[j] == "safety"] or [i]
        guards = [j for j in local if kinds[j] == "guard"] or [i]
        plain = [j for j in local if kinds[j] == "plain"] or [i]
        for _ in range(fanout):
            if k in ("guard", "safety"):
                j = rnd.choice(safety + guards) if k == "safety" else rnd.choice(safety)
            elif k == "plain" and flaws and rnd.random() < 0.01:
                j = rnd.choice(safety)  # a deliberate flaw: a path into the safety core around the guards
                flaws -= 1
            elif k == "plain" and rnd.random() < 0.2:
                j = rnd.randrange(n)  # a link to another subsystem
                while kinds[j] not in ("plain", "guard"):
                    j = rnd.randrange(n)
            else:
                j = rnd.choice(plain + guards)
            if j == i or (i, j) in seen:
                continue
            seen.add((i, j))
            channels.append((f"c{i}_{j}", names[i], names[j]))
    parts = [(names[i], kinds[i], kinds[i] == "entry") for i in range(n)]
    return Topology(parts, channels)


def model_yaml(topo: Topology) -> str:
    crit = {"entry": "none", "guard": "high", "safety": "safety", "plain": "low"}
    out = [
        "septum: 1",
        "device: {name: generated benchmark device, profile: production}",
        "messages:",
        "  Reading: {value: {type: float, min: 0, max: 1000}, unit: {type: str, max_len: 16}}",
        "  Command: {op: {type: enum, values: [start, stop, set]}, arg: {type: int, min: 0, max: 100000}}",
        "interfaces:",
    ]
    for name, _kind, owns in topo.partitions:
        if owns:
            out.append(f"  if_{name}: {{kind: network, external: true, protocol: https, port: 8443, "
                       "authentication: mutual-tls, encryption: tls1.3, carries: [phi]}")
    out.append("partitions:")
    for name, kind, owns in topo.partitions:
        fields = [f"criticality: {crit[kind]}"]
        if owns:
            fields.append(f"owns: [if_{name}]")
            fields.append("allow: {net: true}")
        if kind == "guard":
            fields.append("mitigation: [filtering]")
        fields.append("resources: {memory_mb: 64}")
        out.append(f"  {name}: {{{', '.join(fields)}}}")
    out.append("channels:")
    for i, (cname, src, dst) in enumerate(topo.channels):
        msg = "Command" if i % 2 else "Reading"
        out.append(f"  - {{name: {cname}, from: {src}, to: {dst}, message: {msg}, rate: 10/s}}")
    return "\n".join(out) + "\n"


def element_count(topo: Topology) -> int:
    return len(topo.partitions) + len(topo.channels) + sum(1 for p in topo.partitions if p[2])
