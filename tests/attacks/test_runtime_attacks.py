"""The attacks on the trusted base (issue 11): a compromised partition against the supervisor, the seccomp
filter and the disk, and a slow-loris against the hospital link. Each test fails if the attack succeeds.

Several of these attacks take the whole device down while their defence is missing (the supervisor thread
dies). So they run on a device of their own, in the order of ``runtime.SCENARIOS`` (the one that kills the
attacking partition last), and a device that an earlier test took down is replaced before the next test,
so each test's verdict is about its own attack.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from septum_pump.attacks import RUNTIME, SCENARIOS, AttackRig, run_one, runtime
from septum_pump.attacks.runtime import QUOTA_MIB, supervisor_alive
from verdict import assert_stopped

from septum.runtime import control_guard
from septum.runtime import protocol as proto
from septum.runtime import supervisor as supervisor_mod

WEAK_DIR = Path(__file__).resolve().parent  # weakened_partitions.py


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
    assert_stopped(res)


# ------------------------------------------------------------------------------------------ defences off
# Each runtime check can fail: the defence is switched off in this process (the rig's supervisor runs here)
# or in a restarted network partition (test-only entry point, see weakened_partitions.py), and the scenario
# must then report the attack. These run after the scenarios above, on the same devices.
def _run(rig: AttackRig, sid: str) -> Any:
    res = run_one(rig, SCENARIOS[sid])
    print(res.line())
    for f in res.failures:
        print(f"  reported: {f[:300]}")
    print(f"  records: {res.records}")
    return res


def _reported(res: Any, *words: str) -> bool:
    return any(all(w in f for w in words) for f in res.failures)


def test_report_fields_fail_without_the_reserved_field_check(devices: Devices,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control_guard, "RESERVED_FIELDS", frozenset())
    res = _run(devices.healthy(), "sup-report-fields")
    assert not res.ok
    # with the check off, handling the report raises in the supervisor, which then kills the sender (its
    # second line of defence): depending on timing the attacker's own result report is cut off with it.
    # Either way the refusal record the scenario needs is missing and it fails.
    assert (_reported(res, "Report with a field named 'partition'")
            or _reported(res, "the attacker never reported")), res.failures
    assert "MISSING: supervisor.control_refused (network)" in res.records, res.records


def test_control_flood_fails_without_the_control_budget(devices: Devices, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control_guard.ControlGuard, "admit", lambda self: True)
    res = _run(devices.healthy(), "control-flood")
    assert not res.ok
    assert not res.recorded or res.failures, (res.records, res.failures)  # no throttling, or worse


@pytest.fixture
def weak_network(devices: Devices, monkeypatch: pytest.MonkeyPatch) -> Iterator[AttackRig]:
    """The network partition restarted without seccomp and Landlock, with its data folder moved off its
    size-capped filesystem, and with hospital connections never timed out."""
    rig = devices.healthy()
    sup = rig.supervisor
    real_boot, real_dir = sup._boot_config, sup.data_dir
    uid = sup._procs["network"].uid
    loose = Path(tempfile.mkdtemp(prefix="septum-attack-loose-", dir="/var/tmp"))
    shutil.copytree(real_dir("network"), loose, dirs_exist_ok=True)
    for path in [loose, *loose.rglob("*")]:
        if uid is not None:
            os.chown(path, uid, uid)
    os.chmod(loose, 0o700)

    def boot_config(p: Any) -> proto.Boot:
        boot = real_boot(p)
        if boot.partition != "network":
            return boot
        sandbox = msgspec.structs.replace(boot.sandbox, landlock=False, seccomp=False)
        return msgspec.structs.replace(boot, entry="weakened_partitions:network_no_deadlines_main",
                                       import_path=[*boot.import_path, str(WEAK_DIR)], data_dir=str(loose),
                                       sandbox=sandbox)

    def data_dir(name: str) -> Path:
        return loose if name == "network" else real_dir(name)

    monkeypatch.setattr(sup, "_boot_config", boot_config)
    monkeypatch.setattr(sup, "data_dir", data_dir)
    after = rig.seq()
    rig.kill("network")
    ready = rig.wait_event(lambda e: e.kind == "ready" and e.partition == "network", timeout=60, after=after)
    assert ready is not None, "the network partition did not come back with its defences off"
    lst = rig.wait_event(lambda e: e.kind == "listening" and e.partition == "network", timeout=30, after=after)
    assert lst is not None
    rig.https_port, rig.mllp_port = int(lst.fields["https"]), int(lst.fields["mllp"])
    yield rig
    # back to the real network partition (its own data folder, sandbox and code) for the tests after this
    monkeypatch.undo()
    after = rig.seq()
    if supervisor_alive(rig)[0] and "network" in sup.partition_pids():
        rig.kill("network")
        rig.wait_event(lambda e: e.kind == "listening" and e.partition == "network", timeout=60, after=after)
    shutil.rmtree(loose, ignore_errors=True)


def test_runtime_scenarios_fail_with_the_network_partitions_defences_off(weak_network: AttackRig,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # with no deadlines nothing is ever cut or answered: shorter waits (still two handshake deadlines) prove
    # the same checks fail without spending a minute on it
    monkeypatch.setattr(runtime, "ORDER_DEADLINE_S", 10.0)
    monkeypatch.setattr(runtime, "SLOW_CUT_S", 10.0)
    res = _run(weak_network, "sandbox-namespaces")
    assert not res.ok
    assert _reported(res, "clone(CLONE_NEWUSER)", "open"), res.failures
    assert _reported(res, "memfd_create", "open"), res.failures
    res = _run(weak_network, "data-quota")
    assert not res.ok
    assert _reported(res, f"write {QUOTA_MIB} MiB", "open"), res.failures
    res = _run(weak_network, "slow-loris")
    assert not res.ok
    assert _reported(res, "silent connections", "still open"), res.failures


def test_rt_signal_fails_when_the_supervisor_cannot_name_the_signal(devices: Devices,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # the exit handling before issue 11: signal.Signals(n) raises for a real-time signal number
    monkeypatch.setattr(supervisor_mod, "describe_exit", lambda code: (
        f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"))
    res = _run(devices.healthy(), "rt-signal-exit")
    assert not res.ok
    assert _reported(res, "the supervisor handles the exit"), res.failures
