"""A partition that reports the wiring it was launched with (tests/runtime/test_run_plan.py)."""

from __future__ import annotations

from septum.runtime.partition import Partition


def wiring(p: Partition) -> None:
    p.event("wiring", rate=p.output_rate("numbers"), count=p.config.get("count"), outputs=list(p.outputs))
