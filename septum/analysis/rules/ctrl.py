"""CTRL — security control decisions (the CIS Controls walk). Only active when the model has ``controls:``."""

from __future__ import annotations

from collections.abc import Iterator

from septum.knowledge.controls import catalogue, contradictions

from ..context import Context
from ..finding import ElementRef, Finding
from ..registry import rule


def _ref(cid: str) -> ElementRef:
    return ElementRef("control", cid)


@rule(
    "CTRL001", "A catalogue control has no decision", "warning",
    rationale="""The control walk only means something if it is complete: a control nobody decided on is
    a control nobody thought about.""",
    fix="""Add a decision for the control under `controls.decisions`: implemented (with `by:` naming the
    model elements), not-applicable (with a reason), planned, or accepted-risk.""",
    cwe=(1059,), precision="very-high",
)
def ctrl001(ctx: Context) -> Iterator[Finding]:
    controls = ctx.model.controls
    if controls is None:
        return
    cat = catalogue(controls.catalogue)
    if cat is None:
        return  # CTRL005 reports the unknown catalogue
    for cid, ctl in cat.items():
        if cid not in controls.decisions:
            yield ctx.finding("CTRL001", f"control {cid} ({ctl.topic}) of {controls.catalogue} has no decision",
                              _ref(cid))


@rule(
    "CTRL002", "A not-applicable reason is contradicted by the model", "error",
    rationale=""""Not applicable" is a claim about the device. When the model shows the thing the reason
    says is absent (an e-mail protocol next to "no e-mail", a radio next to "no wireless"), the decision
    was made for a different device than the one being built.""",
    fix="""Either implement the control (status implemented, naming the elements), or remove the element
    that contradicts the reason, or correct the reason. The patterns are listed in
    septum/data/control_contradictions.yaml.""",
    cwe=(657, 1059), precision="medium",
)
def ctrl002(ctx: Context) -> Iterator[Finding]:
    controls = ctx.model.controls
    if controls is None:
        return
    for cid, d in controls.decisions.items():
        if d.status != "not-applicable" or not d.reason:
            continue
        for c in contradictions(ctx.model, d.reason):
            names = ", ".join(str(e) for e in c.elements)
            yield ctx.finding(
                "CTRL002",
                f"control {cid} is not-applicable because {d.reason!r}, but the model has {c.what}: {names}",
                _ref(cid), *c.elements)


@rule(
    "CTRL003", "An implemented control names no element", "warning",
    rationale="""An "implemented" decision is evidence only if it says where: which partitions,
    interfaces or services implement the control, so that a reviewer (and the threat model) can trace it.""",
    fix="""List the implementing model elements under `by:`.""",
    cwe=(1059,), precision="very-high",
)
def ctrl003(ctx: Context) -> Iterator[Finding]:
    controls = ctx.model.controls
    if controls is None:
        return
    for cid, d in controls.decisions.items():
        if d.status == "implemented" and not d.by:
            yield ctx.finding("CTRL003", f"control {cid} is marked implemented but names no model element",
                              _ref(cid))


@rule(
    "CTRL004", "A not-applicable or accepted-risk decision gives no reason", "warning",
    rationale="""Declaring a control not applicable, or accepting the risk of not implementing it, is a
    judgement a reviewer must be able to read and challenge. Without a reason it cannot be checked.""",
    fix="""Write the reason in `reason:` (one sentence about the device, not about the control).""",
    cwe=(1059,), precision="very-high",
)
def ctrl004(ctx: Context) -> Iterator[Finding]:
    controls = ctx.model.controls
    if controls is None:
        return
    for cid, d in controls.decisions.items():
        if d.status in ("not-applicable", "accepted-risk") and not d.reason.strip():
            yield ctx.finding("CTRL004", f"control {cid} is {d.status} without a reason", _ref(cid))


@rule(
    "CTRL005", "A decision refers to an unknown catalogue or control", "warning",
    rationale="""A decision for a control id the catalogue does not have (a typo such as "19", or the
    wrong catalogue) silently leaves the real control undecided.""",
    fix="""Use a catalogue Septum ships (`cis-v8`) and its control ids ("1" to "18").""",
    cwe=(1059,), precision="very-high",
)
def ctrl005(ctx: Context) -> Iterator[Finding]:
    controls = ctx.model.controls
    if controls is None:
        return
    cat = catalogue(controls.catalogue)
    if cat is None:
        yield ctx.finding("CTRL005", f"unknown control catalogue {controls.catalogue!r} (known: cis-v8)",
                          ElementRef("control", controls.catalogue))
        return
    for cid in controls.decisions:
        if cid not in cat:
            yield ctx.finding("CTRL005", f"decision for control {cid!r}, which {controls.catalogue} does not have",
                              _ref(cid))
