"""References to model elements by kind and name, used by findings, reports and catalogue checks alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ElementRef:
    """A model element: ``kind`` is interface, partition, channel, message, role, action, shared,
    control, component, waiver or device; ``name`` its name in the model."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"
