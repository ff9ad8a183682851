"""Findings grouped by cause: several rules often fire on one flaw.

One debug channel from the network partition into a safety partition breaks isolation (ISO001), is debug
access in production (ISO002), a direct write into safety (ISO003), a way around auth (MED002) and a
bypassed guard (MED003). Each rule is right and each finding stays listed, but a reader should see that
removing one channel answers all five. A *cause* is a channel that the witness of two or more findings
runs through (a channel the finding names, or a hop of its path).

Only channels are candidates: a channel is the thing a designer adds or removes, while partitions and
interfaces lie on almost every path and would group unrelated findings. Grouping is greedy and
deterministic: the channel shared by the most ungrouped findings forms the first cause (ties by name),
its findings leave the pool, and so on, so every finding has at most one cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from septum.model.refs import ElementRef

from .finding import Finding

__all__ = ["Cause", "cause_channels", "cause_of", "group_by_cause"]


@dataclass(frozen=True)
class Cause:
    """Findings (indexes into the report's list, in report order) whose witness runs through ``element``."""

    element: ElementRef
    findings: tuple[int, ...]

    @property
    def id(self) -> str:
        """Stable across runs of the same model: the element names the cause."""
        return f"cause:{self.element.kind}:{self.element.name}"

    def headline(self) -> str:
        return f"1 cause, {len(self.findings)} findings: {self.element.kind} {self.element.name}"


def cause_channels(f: Finding) -> set[str]:
    """The channels the finding's witness runs through."""
    names = {e.name for e in f.elements if e.kind == "channel"}
    names.update(step.channel for step in f.path if step.channel)
    return names


def group_by_cause(findings: Sequence[Finding]) -> list[Cause]:
    """Causes shared by at least two findings, most findings first; each finding in at most one cause."""
    through = [cause_channels(f) for f in findings]
    pool = set(range(len(findings)))
    causes: list[Cause] = []
    while True:
        counts: dict[str, int] = {}
        for i in pool:
            for ch in through[i]:
                counts[ch] = counts.get(ch, 0) + 1
        if not counts:
            break
        channel, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if n < 2:
            break
        members = tuple(sorted(i for i in pool if channel in through[i]))
        causes.append(Cause(ElementRef("channel", channel), members))
        pool.difference_update(members)
    return causes


def cause_of(causes: Sequence[Cause]) -> dict[int, Cause]:
    """Finding index -> its cause."""
    return {i: c for c in causes for i in c.findings}
