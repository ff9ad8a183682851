"""Attack suite tests: one running pump (with the attacker's foothold) shared by every scenario test.

Each scenario snapshots the device before its attack and checks therapy, audit and recording after it
(``septum_pump.attacks.base.Check``), so sharing the device keeps the wall time low without coupling tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PUMP = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump"
if str(PUMP) not in sys.path:
    sys.path.insert(0, str(PUMP))

from septum_pump.attacks import AttackRig  # noqa: E402

from septum.runtime.sandbox.probe import probe  # noqa: E402


def _skip_unless_possible(rig: AttackRig | None = None) -> None:
    if not probe().root:
        print("SKIP: the attack suite runs partitions under their own uids and needs root")
        pytest.skip("needs root (partitions run under their own uids)")
    if rig is not None and not rig.services_real:
        print(f"SKIP: the attack suite runs against the real Septum services; installed: {rig.status}")
        pytest.skip("the Septum auth/audit/update services are not all installed")


# One device for test_scenarios.py and then test_scenarios_defences_off.py (which weakens it: it runs last).
# test_runtime_attacks.py sorts before both and uses devices of its own, stopped before this one starts,
# so two pumps never compete for the CPU.
@pytest.fixture(scope="session")
def attack_rig() -> Iterator[AttackRig]:
    _skip_unless_possible()
    rig = AttackRig(time_scale=10.0)
    _skip_unless_possible(rig)
    with rig:
        rig.start_baseline()
        yield rig


@pytest.fixture(scope="session")
def new_rig() -> Callable[[], AttackRig]:
    """Make (not start) an attack device, skipping with a printed reason where it cannot run."""
    _skip_unless_possible()

    def make() -> AttackRig:
        rig = AttackRig(time_scale=10.0)
        _skip_unless_possible(rig)
        return rig

    return make
