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
    def channels_into(self) -> dict[str, list[s.Channel]]:
        """Receiving partition -> its channels, in model order (rules asking per monitor do not scan all)."""
        out: dict[str, list[s.Channel]] = {}
        for ch in self.model.channels:
            out.setdefault(ch.dst, []).append(ch)
        return out

    @cached_property
    def actuator_owners(self) -> list[tuple[str, list[str]]]:
        """(partition, the actuator interfaces it owns) for each partition owning one, in model order."""
        ifaces = self.model.interfaces
        out: list[tuple[str, list[str]]] = []
        for pname, part in self.model.partitions.items():
            acts = [i for i in part.owns if ifaces[i].kind == "actuator"]
            if acts:
                out.append((pname, acts))
        return out

    @cached_property
    def reaches_actuator_owner(self) -> tuple[list[int], dict[str, int]]:
        """For every node, a bit set of the actuator owners it reaches (bit = ``actuator_owners`` order), and
        each owner's bit: asks once for all monitors whether a controller could reach an actuator."""
        g = self.graph
        owners = [g.part(p) for p, _ in self.actuator_owners]
        bits = g.reach_bits(owners, reverse=True)
        return bits, {p: 1 << i for i, (p, _) in enumerate(self.actuator_owners)}

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
