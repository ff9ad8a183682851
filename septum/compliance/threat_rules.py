"""Threat rules as data: the shipped catalogue (``septum/data/threats.yaml``) plus users' own files.

A user file has the same ``threats:`` list (new ids, or a shipped id to replace that rule) and may add
``decisions:`` for individual threats (``RULE@element``: accepted or not-applicable, with a reason).
Every file is checked strictly: an unknown key, an unknown evidence check or a missing field is an error
that names the file and the rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

from septum.errors import SeptumError
from septum.knowledge.shipped import shipped

Stride = Literal["S", "T", "R", "I", "D", "E"]
AppliesTo = Literal["role", "entry", "partition", "channel", "action", "audit_store", "device"]
STRIDE_NAMES = {"S": "Spoofing", "T": "Tampering", "R": "Repudiation", "I": "Information disclosure",
                "D": "Denial of service", "E": "Elevation of privilege"}


class ThreatRuleError(SeptumError, ValueError):
    """A threat-rule file that cannot be used; the message names the file and the problem."""


class NotApplicable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    when: dict[str, Any]
    reason: str


class ThreatRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9-]*$")]
    stride: Stride
    applies_to: AppliesTo
    title: str
    description: str = ""
    when: dict[str, Any] = {}
    not_applicable_when: NotApplicable | None = None
    mitigated_by: tuple[str, ...]
    controls: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verified_by: tuple[str, ...] = ()


class ThreatDecision(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    status: Literal["accepted", "not-applicable"]
    reason: Annotated[str, msgspec.Meta(min_length=1)]
    by: str = ""


class ThreatFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    threats: tuple[ThreatRule, ...] = ()
    decisions: dict[str, ThreatDecision] = {}


def _convert(data: Any, where: str) -> ThreatFile:
    from .stride import EVIDENCE  # the evidence vocabulary lives with the engine

    try:
        tf = msgspec.convert(data if data is not None else {}, ThreatFile)
    except msgspec.ValidationError as e:
        raise ThreatRuleError(f"{where}: {e}") from e
    for r in tf.threats:
        unknown = [m for m in r.mitigated_by if m not in EVIDENCE]
        if unknown:
            raise ThreatRuleError(
                f"{where}: threat {r.id}: unknown evidence check(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(EVIDENCE))})")
        if not r.mitigated_by:
            raise ThreatRuleError(f"{where}: threat {r.id}: 'mitigated_by' must name at least one evidence check")
    return tf


def shipped_rules() -> ThreatFile:
    return _convert(shipped("threats.yaml"), "septum/data/threats.yaml")


def load_threat_file(path: str | Path) -> ThreatFile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ThreatRuleError(f"{p}: cannot read: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ThreatRuleError(f"{p}: not valid YAML: {e}") from e
    return _convert(data, str(p))


def rule_set(*extra: ThreatFile) -> tuple[list[ThreatRule], dict[str, ThreatDecision]]:
    """Shipped rules overlaid with ``extra`` files (same id replaces), and all their decisions."""
    rules: dict[str, ThreatRule] = {r.id: r for r in shipped_rules().threats}
    decisions: dict[str, ThreatDecision] = {}
    for tf in extra:
        for r in tf.threats:
            rules[r.id] = r
        decisions.update(tf.decisions)
    return list(rules.values()), decisions
