"""What a rule reports: a Finding with its witness (elements, and for flow rules the exact path)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from septum.model.refs import ElementRef  # re-exported: findings name model elements

Severity = Literal["error", "warning", "note"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "note": 2}


@dataclass(frozen=True)
class PathStep:
    """One hop of a flow witness: arrive at ``node`` (interface or partition), via ``channel`` if any."""

    node: ElementRef
    channel: str | None = None


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    elements: tuple[ElementRef, ...]
    path: tuple[PathStep, ...] = ()
    waived: bool = False
    waiver_reason: str | None = None
    waiver_by: str | None = None
    waiver_expires: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())

    @property
    def primary(self) -> ElementRef:
        return self.elements[0]

    @property
    def blocking(self) -> bool:
        """An error that is not waived makes ``septum check`` exit 1 and ``septum run`` refuse."""
        return self.severity == "error" and not self.waived


def witness_text(path: tuple[PathStep, ...]) -> str:
    """A path witness as one line: ``hospital_net network --console--> pump_control``."""
    out: list[str] = []
    for step in path:
        if step.channel:
            out.append(f"--{step.channel}-->")
        out.append(step.node.name)
    return " ".join(out)
