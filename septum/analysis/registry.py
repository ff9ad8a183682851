"""The rule registry: one place that knows every rule's id, title, severity, rationale and fix.

Rules live in ``septum/analysis/rules/<family>.py`` and register themselves with ``@rule``. The CLI's
``septum rules`` / ``septum explain`` and the generated ``docs/rules.md`` all read this registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .finding import Finding, Severity

if TYPE_CHECKING:
    from .context import Context

Check = Callable[["Context"], Iterable[Finding]]

FAMILIES: dict[str, str] = {
    "ISO": "Isolation: information flow into safety-critical partitions",
    "MED": "Mediation and non-bypassability",
    "PRIV": "Least privilege and unintended functionality",
    "TIME": "Temporal partitioning",
    "CRYPTO": "Cryptography on external interfaces",
    "CRED": "Credentials",
    "VULN": "Known vulnerabilities in components",
    "CTRL": "Security control decisions",
    "LIVE": "Liveness: a partition whose silence matters is watched, fast enough",
    "WAIVER": "Waivers",
}


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: Severity
    rationale: str
    fix: str
    check: Check
    # the run option the rule reads (e.g. "osv"); without it the rule does not run, and its waivers are
    # not judged (a waiver of VULN001 is not "stale" in a check that was given no vulnerability data)
    needs: str | None = None
    # CWE ids of the weakness a finding is evidence of (SARIF tags external/cwe/cwe-N, docs/rules.md)
    cwe: tuple[int, ...] = ()
    # how often a finding is a real problem (SARIF/GitHub precision: very-high, high, medium, low)
    precision: str = ""

    @property
    def family(self) -> str:
        return self.id.rstrip("0123456789")


RULES: dict[str, Rule] = {}
PRECISIONS = ("very-high", "high", "medium", "low")


def rule(
    id: str, title: str, severity: Severity, *, rationale: str, fix: str, needs: str | None = None,
    cwe: tuple[int, ...] = (), precision: str = "",
) -> Callable[[Check], Check]:
    def deco(fn: Check) -> Check:
        if id in RULES:
            raise RuntimeError(f"rule {id} registered twice")
        if id.rstrip("0123456789") not in FAMILIES:
            raise RuntimeError(f"rule {id} has no known family")
        if precision and precision not in PRECISIONS:
            raise RuntimeError(f"rule {id}: precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        RULES[id] = Rule(id, title, severity, " ".join(rationale.split()), " ".join(fix.split()), fn, needs,
                         cwe=tuple(cwe), precision=precision)
        return fn

    return deco


def all_rules() -> list[Rule]:
    from . import rules  # noqa: F401  (importing the package registers every rule)

    return sorted(RULES.values(), key=lambda r: (list(FAMILIES).index(r.family), r.id))


def get_rule(rule_id: str) -> Rule | None:
    all_rules()
    return RULES.get(rule_id.upper())
