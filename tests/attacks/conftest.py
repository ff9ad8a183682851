"""Attack suite tests: one running pump (with the attacker's foothold) shared by every scenario test.

Each scenario snapshots the device before its attack and checks therapy, audit and recording after it
(``septum_pump.attacks.base.Check``), so sharing the device keeps the wall time low without coupling tests.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PUMP = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump"
if str(PUMP) not in sys.path:
    sys.path.insert(0, str(PUMP))

from septum_pump.attacks import AttackRig  # noqa: E402

from septum.runtime.sandbox.probe import probe  # noqa: E402


@pytest.fixture(scope="session")
def attack_rig() -> Iterator[AttackRig]:
    if not probe().root:
        print("SKIP: the attack suite runs partitions under their own uids and needs root")
        pytest.skip("needs root (partitions run under their own uids)")
    rig = AttackRig(time_scale=10.0)
    if not rig.services_real:
        print(f"SKIP: the attack suite runs against the real Septum services; installed: {rig.status}")
        pytest.skip("the Septum auth/audit/update services are not all installed")
    with rig:
        rig.start_baseline()
        yield rig
