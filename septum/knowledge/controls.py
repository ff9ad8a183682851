"""Security-control decisions: the shipped CIS v8 catalogue, and the checks behind CTRL001-CTRL005.

The method (docs/compliance.md): walk the catalogue control by control; each control is implemented by named
model elements, or not applicable with a written reason that the model does not contradict. The
contradiction patterns are data (``septum/data/control_contradictions.yaml``) so that they can be read,
reviewed and extended without touching code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from septum.model import schema as s
from septum.model.refs import ElementRef

from .shipped import shipped

CATALOGUES = {"cis-v8": "cis_v8.yaml"}


@dataclass(frozen=True)
class CatalogueControl:
    id: str
    topic: str
    paraphrase: str


@dataclass(frozen=True)
class Contradiction:
    pattern: str  # pattern id, e.g. "email"
    what: str
    elements: tuple[ElementRef, ...]


@dataclass
class ControlRow:
    """One catalogue control with the model's decision about it (``status`` "missing" when none)."""

    control: CatalogueControl
    status: str
    by: tuple[str, ...] = ()
    reason: str = ""
    contradictions: list[Contradiction] = field(default_factory=list)


def catalogue(name: str) -> dict[str, CatalogueControl] | None:
    """The controls of a shipped catalogue by id, or None if Septum does not ship ``name``."""
    fname = CATALOGUES.get(name)
    if fname is None:
        return None
    data = shipped(fname)
    return {str(cid): CatalogueControl(str(cid), c["topic"], c["paraphrase"]) for cid, c in data["controls"].items()}


@cache
def _patterns() -> tuple[tuple[str, tuple[re.Pattern[str], ...], tuple[dict[str, Any], ...], str], ...]:
    out = []
    for p in shipped("control_contradictions.yaml")["patterns"]:
        regexes = tuple(re.compile(r, re.IGNORECASE) for r in p["says"])
        out.append((p["id"], regexes, tuple(p["unless"]), p["what"]))
    return tuple(out)


def _as_set(v: Any) -> set[Any]:
    return set(v) if isinstance(v, list | tuple | set) else {v}


def _select(model: s.Model, selector: dict[str, Any]) -> list[ElementRef]:
    """Elements of ``model`` matching one selector of the contradiction data."""
    out: list[ElementRef] = []
    if "interface" in selector:
        want = selector["interface"]
        for name, i in model.interfaces.items():
            if not i.enabled:
                continue
            if "kind" in want and i.kind not in _as_set(want["kind"]):
                continue
            if "protocol" in want and (i.protocol or "").lower() not in _as_set(want["protocol"]):
                continue
            if "port" in want and i.port not in _as_set(want["port"]):
                continue
            if "carries" in want and not _as_set(want["carries"]) & set(i.carries):
                continue
            if "external" in want and i.external != bool(want["external"]):
                continue
            out.append(ElementRef("interface", name))
    if "component" in selector:
        names = _as_set(selector["component"].get("name", []))
        for part, comps in model.components.items():
            out.extend(ElementRef("component", f"{part}/{c.name}") for c in comps if c.name.lower() in names)
    if "role" in selector and selector["role"].get("authenticates"):
        out.extend(ElementRef("role", n) for n, r in model.roles.items() if r.authenticates_with)
    if "service" in selector:
        kinds = _as_set(selector["service"])
        out.extend(ElementRef("partition", n) for n, p in model.partitions.items() if p.service in kinds)
    return out


def contradictions(model: s.Model, reason: str) -> list[Contradiction]:
    """What in ``model`` contradicts a not-applicable ``reason`` (empty when nothing does)."""
    found: list[Contradiction] = []
    for pid, regexes, selectors, what in _patterns():
        if not any(r.search(reason) for r in regexes):
            continue
        elements: list[ElementRef] = []
        for sel in selectors:
            elements.extend(e for e in _select(model, sel) if e not in elements)
        if elements:
            found.append(Contradiction(pid, what, tuple(elements)))
    return found


def control_rows(model: s.Model) -> list[ControlRow]:
    """Every control of the model's catalogue with its decision; empty when the model has no controls."""
    if model.controls is None:
        return []
    cat = catalogue(model.controls.catalogue) or {}
    decisions = model.controls.decisions
    rows: list[ControlRow] = []
    for cid, ctl in cat.items():
        d = decisions.get(cid)
        if d is None:
            rows.append(ControlRow(ctl, "missing"))
            continue
        row = ControlRow(ctl, d.status, d.by, d.reason)
        if d.status == "not-applicable" and d.reason:
            row.contradictions = contradictions(model, d.reason)
        rows.append(row)
    return rows
