"""Report writers: one analysis ``Report`` rendered as text (for people), JSON (for tools) or SARIF 2.1.0
(for code-scanning services). All writers take the same Report and find element positions the same way,
so a finding points at the same ``file:line:col`` whichever format is asked for.
"""

from __future__ import annotations

from pathlib import Path

from septum.analysis import Report
from septum.analysis.finding import ElementRef, PathStep
from septum.model import Model
from septum.model.errors import Location
from septum.model.source import SourceMap

FORMATS: tuple[str, ...] = ("text", "json", "sarif")

# Model section that holds each element kind; used for SARIF/JSON qualified names ("partitions.ui").
SECTIONS: dict[str, str] = {
    "interface": "interfaces",
    "partition": "partitions",
    "channel": "channels",
    "message": "messages",
    "role": "roles",
    "action": "actions",
    "shared": "shared",
    "control": "controls.decisions",
    "component": "components",
    "waiver": "waivers",
    "device": "device",
}


def qualified_name(ref: ElementRef) -> str:
    """``partitions.ui``, ``channels.orders_in``; the device is just ``device``."""
    if ref.kind == "device":
        return "device"
    return f"{SECTIONS.get(ref.kind, ref.kind)}.{ref.name}"


def path_chain(path: tuple[PathStep, ...]) -> str:
    """The witness as an arrow chain: ``interface:x --> partition:a --[ch]--> partition:b``; a hop
    without a channel is an interface feeding the partition that owns it."""
    out: list[str] = []
    for i, step in enumerate(path):
        if i:
            out.append(f"--[{step.channel}]-->" if step.channel else "-->")
        out.append(str(step.node))
    return " ".join(out)


def element_location(source: SourceMap | None, model: Model, ref: ElementRef) -> Location | None:
    """Where ``ref`` is declared in the model file, or None when the report has no source map
    (a model built in code). Kinds the source map does not index are resolved here."""
    if source is None:
        return None
    if ref.kind == "device":
        return source.locate(("device",))
    if ref.kind == "waiver":
        # waiver refs are named "RULE@element" by the engine; find the matching list entry
        for i, w in enumerate(model.waivers):
            if f"{w.rule}@{w.element}" == ref.name:
                return source.locate(("waivers", i))
        return source.locate(("waivers",))
    return source.element(ref.kind, ref.name)


def render(
    report: Report,
    fmt: str,
    *,
    base: Path | None = None,
    color: bool = False,
    width: int | None = None,
) -> str:
    """Render ``report`` as ``fmt`` (one of FORMATS).

    ``base`` is the directory SARIF artifact URIs are made relative to (default: the working directory);
    ``color`` and ``width`` only affect text.
    """
    # imported here: the writers import helpers from this module
    if fmt == "text":
        from .text import render_text

        return render_text(report, color=color, width=width)
    if fmt == "json":
        from .json_report import render_json

        return render_json(report)
    if fmt == "sarif":
        from .sarif import render_sarif

        return render_sarif(report, base=base)
    raise ValueError(f"unknown report format '{fmt}' (choose one of {', '.join(FORMATS)})")
