"""What a rule sees: the model, its flow graph, and the run's options."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from septum.model import schema as s

from .finding import ElementRef, Finding, PathStep
from .graph import FlowGraph, Node


@dataclass
class Context:
    model: s.Model
    today: dt.date = field(default_factory=dt.date.today)
    # extra inputs for rule families that need them, e.g. {"osv": <loaded OSV database>}
    options: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def graph(self) -> FlowGraph:
        return FlowGraph(self.model)

    @cached_property
    def production(self) -> bool:
        return self.model.device.profile == "production"

    @cached_property
    def service_partitions(self) -> dict[str, str]:
        """service kind -> partition name."""
        return {p.service: n for n, p in self.model.partitions.items() if p.service}

    @cached_property
    def auth_nodes(self) -> frozenset[Node]:
        """Partitions that authenticate: the auth service, and guards declaring ``authenticating``."""
        g = self.graph
        return frozenset(
            g.part(n) for n, p in self.model.partitions.items()
            if p.service == "auth" or "authenticating" in p.mitigation
        )

    @cached_property
    def guard_nodes(self) -> frozenset[Node]:
        g = self.graph
        return frozenset(g.part(n) for n, p in self.model.partitions.items() if p.mitigation)

    def finding(
        self,
        rule: str,
        message: str,
        *elements: ElementRef,
        path: tuple[PathStep, ...] = (),
        severity: str | None = None,
    ) -> Finding:
        from .registry import RULES

        sev = severity or RULES[rule].severity
        return Finding(rule=rule, severity=sev, message=message, elements=tuple(elements), path=path)  # type: ignore[arg-type]


def P(name: str) -> ElementRef:
    return ElementRef("partition", name)


def I(name: str) -> ElementRef:  # noqa: E743
    return ElementRef("interface", name)


def C(name: str) -> ElementRef:
    return ElementRef("channel", name)
