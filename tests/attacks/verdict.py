"""The one verdict every attack-scenario test asserts: the attack was tried, stopped, and left its evidence."""

from __future__ import annotations

from septum_pump.attacks import ScenarioResult


def assert_stopped(res: ScenarioResult) -> None:
    assert not res.error, res.error
    assert not res.failures, f"the attack got through: {res.failures}"
    assert res.tried, "nothing was attempted"
    assert res.therapy_ok, res.therapy
    assert res.audit_ok, res.audit
    assert res.recorded, res.records
    assert res.ok
