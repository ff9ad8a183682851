"""End-to-end pump tests: the whole device under the real runtime, driven through the rig."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PUMP = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump"
if str(PUMP) not in sys.path:
    sys.path.insert(0, str(PUMP))

from septum_pump.rig import PumpRig  # noqa: E402

from septum.runtime.sandbox.probe import probe  # noqa: E402

TIME_SCALE = 60.0  # one hour of therapy per real minute


def _require_root() -> None:
    if not probe().root:
        print("SKIP: the pump e2e tests start partitions under their own uids and need root")
        pytest.skip("needs root (partitions run under their own uids)")


@pytest.fixture
def rig() -> Iterator[PumpRig]:
    _require_root()
    with PumpRig(time_scale=TIME_SCALE) as r:
        yield r


@pytest.fixture
def running_rig(rig: PumpRig) -> PumpRig:
    """A clinician logged in and started 100 mL/h of saline; the motor is delivering."""
    assert rig.login()
    ok, text = rig.program("normal-saline", rate=100, vtbi=500)
    assert ok, text
    ok, text = rig.start()
    assert ok, text
    assert rig.wait_until(lambda: rig.motor_running() and rig.delivered_ml() > 0.2, timeout=10), (
        rig.alarms(), rig.display(), [(e.kind, e.fields) for e in rig.events(partition="safety_monitor")])
    return rig
