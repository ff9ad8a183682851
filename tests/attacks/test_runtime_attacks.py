"""The attacks on the trusted base (issue 11): a compromised partition against the supervisor, the seccomp
filter and the disk, and a slow-loris against the hospital link. Each test fails if the attack succeeds.

Several of these attacks take the whole device down while their defence is missing (the supervisor thread
dies). So they run on a device of their own, in the order of ``runtime.SCENARIOS`` (the one that kills the
attacking partition last), and a device that an earlier test took down is replaced before the next test,
so each test's verdict is about its own attack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from septum_pump.attacks import RUNTIME, SCENARIOS, AttackRig, run_one
from septum_pump.attacks.runtime import supervisor_alive


class Devices:
    """Hands out a running device, starting a fresh one when the previous test's attack took it down."""

    def __init__(self, make: Callable[[], AttackRig]) -> None:
        self.make = make
        self.rig: AttackRig | None = None
        self.started = 0

    def healthy(self) -> AttackRig:
        if self.rig is not None:
            alive, why = supervisor_alive(self.rig)
            if alive and "network" in self.rig.supervisor.partition_pids():
                return self.rig
            why = why if not alive else "the attacking network partition is not running"
            print(f"NOTE: the previous attack left the device down ({why}); starting a fresh device")
            self.rig.close()
            self.rig = None
        rig = self.make()
        rig.__enter__()
        self.rig = rig
        self.started += 1
        rig.start_baseline()
        return rig

    def close(self) -> None:
        if self.rig is not None:
            self.rig.close()


@pytest.fixture(scope="module")
def devices(new_rig: Callable[[], AttackRig]) -> Iterator[Devices]:
    d = Devices(new_rig)
    try:
        yield d
    finally:
        d.close()


@pytest.mark.parametrize("sid", list(RUNTIME))
def test_runtime_attack_is_stopped(devices: Devices, sid: str) -> None:
    rig = devices.healthy()
    res = run_one(rig, SCENARIOS[sid])
    print(res.line())
    for t in res.tried:
        print(f"  tried: {t}")
    for f in res.failures:
        print(f"  GOT THROUGH: {f}")
    print(f"  therapy: {res.therapy}\n  audit: {res.audit}\n  records: {res.records}")
    assert not res.error, res.error
    assert not res.failures, f"the attack got through: {res.failures}"
    assert res.tried, "nothing was attempted"
    assert res.therapy_ok, res.therapy
    assert res.audit_ok, res.audit
    assert res.recorded, res.records
    assert res.ok
