"""The analysis gate: the runtime refuses a model with blocking (error-level, unwaived) findings.

A ``debug``-profile model may be run anyway when the caller explicitly allows it; the override is
returned so the supervisor can log it loudly as an event.
"""

from __future__ import annotations

from typing import Any

from septum.errors import SeptumError
from septum.model.schema import Model


class RefusedToRun(SeptumError, RuntimeError):
    def __init__(self, message: str, findings: list[Any]) -> None:
        super().__init__(message)
        self.findings = findings


def describe(f: Any) -> str:
    return f"{getattr(f, 'rule', '?')} {getattr(f, 'severity', '?')}: {getattr(f, 'message', f)}"


def gate(model: Model, source: Any, *, allow_debug: bool) -> list[Any]:
    """Return the blocking findings that were overridden (debug profile only); raise RefusedToRun else."""
    try:
        from septum.analysis import check
    except ImportError as exc:
        raise RefusedToRun(f"the analysis engine is not available ({exc}); refusing to run unchecked",
                           []) from None
    report = check(model, source)
    blocking = list(report.blocking)
    if not blocking:
        return []
    if allow_debug and model.device.profile == "debug":
        return blocking
    hint = ("" if model.device.profile != "debug"
            else " (this is a debug-profile model: --allow-debug runs it anyway)")
    raise RefusedToRun(f"refusing to run: {len(blocking)} error-level finding(s){hint}", blocking)
