"""The attack suite: scenarios that attack the running pump and prove each attack fails.

``SCENARIOS`` (id -> ``Scenario``) is the registry; ``run_suite(ids)`` starts one device (``AttackRig``),
starts a baseline infusion and runs the scenarios in order against it, each with its own before/after
checks (``base.Check``), so they stay independent while sharing the device's start-up cost.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable

from . import hospital_side, inside, pin, runtime, surface, updates
from .base import Scenario, ScenarioResult
from .device import AttackRig

SCENARIOS: dict[str, Scenario] = {s.id: s for s in (
    *inside.SCENARIOS, *hospital_side.SCENARIOS, *updates.SCENARIOS, *pin.SCENARIOS, *surface.SCENARIOS,
    *runtime.SCENARIOS)}  # runtime last: its final scenario kills (and restarts) the attacking partition
RUNTIME = tuple(s.id for s in runtime.SCENARIOS)  # the attacks on the trusted base (issue 11)


def run_one(rig: AttackRig, sc: Scenario) -> ScenarioResult:
    alive, why = runtime.supervisor_alive(rig)
    if not alive:  # an earlier scenario took the device down: say so instead of a confusing failure
        return ScenarioResult(sc.id, sc.title, error=f"the device is down before this scenario: {why}")
    try:
        return sc.run(rig)
    except Exception as exc:  # a crashed scenario is a failed one, with the reason, never a silent pass
        res = ScenarioResult(sc.id, sc.title, error=f"{type(exc).__name__}: {exc}")
        res.failures.append(traceback.format_exc(limit=3)[-400:])
        return res


def run_suite(ids: Iterable[str] | None = None, *, on_result: Callable[[ScenarioResult], None] | None = None,
              time_scale: float = 10.0) -> list[ScenarioResult]:
    chosen = [SCENARIOS[i] for i in (ids or SCENARIOS)]
    out: list[ScenarioResult] = []
    with AttackRig(time_scale=time_scale) as rig:
        rig.start_baseline()
        for sc in chosen:
            res = run_one(rig, sc)
            out.append(res)
            if on_result is not None:
                on_result(res)
    return out


__all__ = ["RUNTIME", "SCENARIOS", "AttackRig", "Scenario", "ScenarioResult", "run_one", "run_suite"]
