"""Every attack scenario is a test that fails if the attack succeeds (or therapy, audit or recording fail)."""

from __future__ import annotations

import pytest
from septum_pump.attacks import RUNTIME, SCENARIOS, AttackRig, run_one
from verdict import assert_stopped


def _run(rig: AttackRig, sid: str) -> None:
    assert not getattr(rig, "weakened", False), "this device had defences switched off by an earlier test"
    res = run_one(rig, SCENARIOS[sid])
    print(res.line())
    for t, by in zip(res.tried, res.stopped_by, strict=False):
        print(f"  tried: {t}\n    stopped by: {by}")
    assert_stopped(res)


# the attacks on the trusted base run on a device of their own (tests/attacks/test_runtime_attacks.py)
@pytest.mark.parametrize("sid", [s for s in SCENARIOS if s not in RUNTIME])
def test_attack_is_stopped(attack_rig: AttackRig, sid: str) -> None:
    _run(attack_rig, sid)
