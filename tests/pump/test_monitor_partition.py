"""The safety_monitor partition trusts nothing it cannot check (issue 11, part 6).

``MonitorPartition`` runs here on a stand-in for the runtime's ``Partition``: device time is set by the
test, the motor link can fail on demand, the event stream and the audit channel can be full. Each test
drives it through the partition's own handlers (library, heartbeat, sensor frames, programs, motor
commands, approvals from auth), as the runtime would.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from septum_pump.safety_monitor import MonitorPartition
from septum_pump.sim import wire
from septum_pump.therapy.alarms import AlarmKind
from septum_pump.therapy.approvals import DEFAULT_TTL_S, ApprovalBook, ApprovalRefused, Prescription

SOFT_MAX_SALINE = 250.0  # mL/h, normal-saline in adult-med-surg (drug_library.yaml); hard max 500
STEP_S = 0.05  # one control period of pump_control at time scale 1


class Motor:
    """The motor link: records what the driver took; ``fail`` makes the next writes raise."""

    def __init__(self) -> None:
        self.taken: list[wire.MotorSet] = []
        self.fail: OSError | None = None

    def send(self, data: bytes) -> int:
        if self.fail is not None:
            raise self.fail
        msg = wire.decode(data)
        assert isinstance(msg, wire.MotorSet)
        self.taken.append(msg)
        return len(data)


class FakePartition:
    name = "safety_monitor"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.config: dict[str, Any] = {}
        self.clock = SimpleNamespace(scale=1.0)
        self.t = 0.0
        self.motor = Motor()
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.control_lost = 0
        self.events_full = False  # the control socket to the supervisor is full: p.event drops and counts
        self.full: set[str] = set()  # channels that are full
        self.device_errors: dict[str, str] = {}

    def now(self) -> float:
        return self.t

    def event(self, kind: str, severity: str = "info", **fields: Any) -> None:
        if self.events_full:
            self.control_lost += 1
            return
        self.events.append((kind, severity, fields))

    def send(self, channel: str, msg: Any = None, /, **fields: Any) -> bool:
        if channel in self.full:
            return False
        self.sent.append((channel, fields))
        return True

    def device(self, name: str) -> Motor:
        assert name == "motor"
        return self.motor

    # ---- what the tests read back
    def audit(self, event: str | None = None) -> list[dict[str, Any]]:
        return [f for ch, f in self.sent if ch == "audit_safety_monitor" and (event is None or f["event"] == event)]

    def last_status(self) -> dict[str, Any]:
        return [f for ch, f in self.sent if ch == "monitor_alarms"][-1]


class Bench:
    """A monitor with a verified library, pump_control speaking and the sensor board sending."""

    def __init__(self, tmp_path: Path, library_bytes: bytes) -> None:
        key = Ed25519PrivateKey.generate()
        (tmp_path / "manufacturer.pub").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.p = FakePartition(tmp_path)
        self.mp = MonitorPartition(self.p)  # type: ignore[arg-type]
        self.mp.drive(0.0, force=True)  # what main() does first
        import yaml

        version = int(yaml.safe_load(library_bytes)["version"])
        self.mp.on_library(SimpleNamespace(version=version, data=library_bytes, signature=key.sign(library_bytes)))
        self.seq = 0
        self.program_id = 0
        self.heartbeat()
        self.frame()
        assert self.mp.monitor is not None

    def heartbeat(self) -> None:
        self.mp.on_heartbeat(SimpleNamespace(seq=self.seq))

    def frame(self) -> None:
        vol = self.mp.monitor.allowed_total_ml if self.mp.monitor else 0.0
        self.mp.on_sensors(wire.encode(wire.SensorFrame(seq=self.seq, line_pressure_mmhg=50.0, largest_bubble_ul=0.0,
                                                        air_ul=0.0, reservoir_ml=400.0, door_open=False,
                                                        motor_volume_ml=vol)))

    def program(self, rate: float, *, claimed: bool = False, drug: str = "normal-saline", vtbi: float = 500.0) -> None:
        self.program_id += 1
        self.mp.on_program(SimpleNamespace(program_id=self.program_id, drug=drug, care_area="adult-med-surg",
                                           concentration=1.0, dose_rate=rate, vtbi_ml=vtbi, weight_kg=0.0,
                                           soft_limit_confirmed=claimed))

    def approve(self, rate: float, *, role: str = "clinician", principal: str = "nurse1",
                reason: str = "fluid challenge ordered by Dr. Ng", drug: str = "normal-saline",
                vtbi: float = 500.0) -> None:
        self.mp.on_approval(SimpleNamespace(principal=principal, role=role, drug=drug, concentration=1.0,
                                            dose_rate=rate, vtbi_ml=vtbi, weight_kg=0.0, reason=reason))

    def period(self, rate: float) -> None:
        """One control period: pump_control asks for ``rate``; the sensor frame is fresh."""
        self.p.t += STEP_S
        self.seq += 1
        self.heartbeat()
        self.frame()
        self.mp.on_motor_cmd(SimpleNamespace(seq=self.seq, rate_ml_h=rate, bolus=False))

    def motor_rates(self) -> list[float]:
        return [m.rate_ml_h for m in self.p.motor.taken]


@pytest.fixture
def bench(tmp_path: Path, library_bytes: bytes) -> Bench:
    return Bench(tmp_path, library_bytes)


def running(bench: Bench, rate: float = 100.0) -> Bench:
    bench.program(rate)
    assert bench.p.audit("program_accepted"), bench.p.audit()
    for _ in range(3):
        bench.period(rate)
    assert bench.motor_rates()[-1] == pytest.approx(rate)
    return bench


# ------------------------------------------------------------------------------------------ devices


def test_failed_motor_write_latches_stops_alarms_and_audits(bench: Bench) -> None:
    running(bench)
    bench.p.motor.fail = BrokenPipeError(errno.EPIPE, "Broken pipe")
    bench.period(100.0)
    m = bench.mp.monitor
    assert m is not None and m.latched_fault and m.alarms.is_active(AlarmKind.MOTOR_FAULT)
    failed = bench.p.audit("device_failed")
    assert failed and "device=motor" in failed[0]["detail"] and "operation=write" in failed[0]["detail"]
    assert "BrokenPipeError" in failed[0]["detail"] and failed[0]["severity"] == "critical"
    assert any("motor-fault" in r["detail"] for r in bench.p.audit("alarm")), bench.p.audit()
    assert bench.p.last_status()["latched_fault"] is True
    assert bench.p.last_status()["alarm"] == "motor-fault"
    # a dead link fails every period: audited once while latched, the repeats counted
    for _ in range(20):
        bench.period(100.0)
    assert len(bench.p.audit("device_failed")) == 1
    assert bench.mp.repeated_failures["motor"] >= 20
    # the link works again: the latch holds, the motor gets nothing but stops until a clinician restart
    bench.p.motor.fail = None
    taken = len(bench.p.motor.taken)
    for _ in range(5):
        bench.period(100.0)
    assert bench.motor_rates()[taken:] and all(r == 0.0 for r in bench.motor_rates()[taken:])
    assert m.latched_fault


def test_a_rate_the_motor_did_not_take_is_never_reported_as_applied(bench: Bench) -> None:
    bench.program(100.0)
    bench.p.motor.fail = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    bench.period(100.0)
    status = bench.p.last_status()
    assert status["motor_running"] is False and status["rate_ml_h"] == 0.0, status
    assert bench.mp.monitor is not None and bench.mp.monitor.latched_fault


def test_clinician_restart_clears_a_motor_fault_once_the_link_works(bench: Bench) -> None:
    running(bench)
    bench.p.motor.fail = BrokenPipeError(errno.EPIPE, "Broken pipe")
    bench.period(100.0)
    bench.p.motor.fail = None
    bench.mp.on_fault_reset(SimpleNamespace(principal="nurse1", reason="driver cable reseated"))
    assert bench.mp.monitor is not None and not bench.mp.monitor.latched_fault
    bench.program(100.0)
    for _ in range(3):
        bench.period(100.0)
    assert bench.motor_rates()[-1] == pytest.approx(100.0)


@pytest.mark.parametrize("error", ["ConnectionResetError: [Errno 104] Connection reset by peer", None],
                         ids=["read-error", "end-of-file"])
def test_sensor_link_failure_latches_stops_and_audits(bench: Bench, error: str | None) -> None:
    running(bench)
    if error is not None:
        bench.p.device_errors["sensors"] = error  # what the runtime saw before it handed over end-of-file
    bench.mp.on_sensors(b"")
    m = bench.mp.monitor
    assert m is not None and m.latched_fault and m.alarms.is_active(AlarmKind.SENSOR_LINK_FAULT)
    assert bench.motor_rates()[-1] == 0.0  # the stop went out at once, not at the next period
    failed = bench.p.audit("device_failed")
    assert failed and "device=sensors" in failed[0]["detail"] and "operation=read" in failed[0]["detail"]
    assert (error or "end of file") in failed[0]["detail"]
    assert bench.p.last_status()["latched_fault"] is True


# ------------------------------------------------------------------------------------- soft limits


def test_soft_limit_excess_on_pump_controls_word_alone_is_refused_and_audited(bench: Bench) -> None:
    bench.program(300.0, claimed=True)  # above the 250 mL/h soft maximum, "confirmed" says pump_control
    assert not bench.p.audit("program_accepted")
    refused = bench.p.audit("program_refused")
    assert refused and "without a clinician's approval from auth" in refused[-1]["detail"]
    claim = bench.p.audit("soft_limit_claim_refused")
    assert claim and claim[0]["severity"] == "alert"
    for _ in range(5):
        bench.period(300.0)
    assert all(r == 0.0 for r in bench.motor_rates()), bench.motor_rates()


@pytest.mark.parametrize("order", ["approval-first", "program-first"])
def test_matching_approval_from_auth_runs_the_soft_limit_excess(bench: Bench, order: str) -> None:
    if order == "approval-first":
        bench.approve(300.0)
        bench.program(300.0)
    else:  # the program overtook the approval on its way from auth: it waits for it
        bench.program(300.0)
        assert not bench.p.audit("program_accepted")
        bench.approve(300.0)
    assert bench.p.audit("program_accepted"), bench.p.audit()
    applied = bench.p.audit("soft_limit_override_applied")
    assert applied and "principal=nurse1" in applied[0]["detail"] and "fluid challenge" in applied[0]["detail"]
    for _ in range(3):
        bench.period(300.0)
    assert bench.motor_rates()[-1] == pytest.approx(300.0)


def test_approval_of_another_prescription_is_refused(bench: Bench) -> None:
    bench.approve(280.0)
    bench.program(300.0, claimed=True)
    assert not bench.p.audit("program_accepted")
    bench.approve(300.0, drug="heparin")  # right rate, another drug
    assert not bench.p.audit("program_accepted")
    for _ in range(3):
        bench.period(300.0)
    assert all(r == 0.0 for r in bench.motor_rates())


def test_expired_approval_is_refused(bench: Bench) -> None:
    bench.approve(300.0)
    bench.p.t += DEFAULT_TTL_S + 1.0
    bench.program(300.0, claimed=True)
    assert not bench.p.audit("program_accepted")
    assert bench.p.audit("program_refused")


def test_approval_late_for_a_waiting_program_is_refused(bench: Bench) -> None:
    bench.program(300.0, claimed=True)
    bench.p.t += DEFAULT_TTL_S + 1.0
    bench.approve(300.0)
    assert not bench.p.audit("program_accepted")


def test_an_approval_is_good_for_one_program(bench: Bench) -> None:
    bench.approve(300.0)
    bench.program(300.0)
    assert len(bench.p.audit("program_accepted")) == 1
    bench.program(300.0, claimed=True)  # pump_control sends it again: the clinician approved one
    assert len(bench.p.audit("program_accepted")) == 1


@pytest.mark.parametrize("changes", [{"role": "biomed"}, {"principal": ""}, {"reason": "   "},
                                     {"reason": "ok\x1b[2J"}], ids=["not-clinician", "nobody", "no-reason",
                                                                    "control-chars"])
def test_approval_the_monitor_cannot_check_is_refused(bench: Bench, changes: dict[str, str]) -> None:
    bench.approve(300.0, **changes)  # type: ignore[arg-type]
    assert bench.p.audit("soft_limit_approval_refused")
    bench.program(300.0, claimed=True)
    assert not bench.p.audit("program_accepted")


def test_within_soft_limits_needs_no_approval(bench: Bench) -> None:
    running(bench, 200.0)


def test_hard_limit_cannot_be_approved(bench: Bench) -> None:
    bench.approve(600.0)  # above the 500 mL/h hard maximum
    bench.program(600.0, claimed=True)
    assert not bench.p.audit("program_accepted")


def test_approval_book_is_bounded_and_newest_first() -> None:
    book = ApprovalBook(ttl_s=10.0)
    for i in range(10):
        book.add(principal="n", role="clinician", reason=f"r{i}",
                 prescription=Prescription("normal-saline", 1.0, 300.0 + i, 500.0, 0.0), now=float(i) / 10)
    assert len(book) == 4
    rx = Prescription("normal-saline", 1.0, 309.0, 500.0, 0.0)
    book.add(principal="m", role="clinician", reason="again", prescription=rx, now=1.0)
    found = book.find(rx, 1.0)
    assert found is not None and found.principal == "m" and found.reason == "again"
    assert book.find(rx, 0.5) is None  # before it arrived: a clock that went back is not trusted
    with pytest.raises(ApprovalRefused):
        book.add(principal="n", role="clinician", reason="r", now=1.0,
                 prescription=Prescription("normal-saline", 1.0, float("nan"), 500.0, 0.0))


# --------------------------------------------------------------------------------- lost records


def test_lost_event_records_raise_an_alarm_and_are_counted_in_the_next_report(bench: Bench) -> None:
    running(bench)
    bench.p.events_full = True
    bench.approve(300.0, role="biomed")  # a record the event stream drops (it still reaches the audit log)
    bench.approve(300.0, role="biomed")
    bench.p.events_full = False
    bench.p.full = {"audit_safety_monitor"}
    bench.approve(300.0, role="biomed")  # this one the audit channel refuses
    bench.p.full = set()
    for _ in range(5):  # the report goes out with the periodic status
        bench.period(100.0)
        bench.mp.tick()
    reports = [f for k, _s, f in bench.p.events if k == "records_lost"]
    assert reports and reports[0]["events_lost"] == 2 and reports[0]["audit_lost"] == 1, reports
    audited = bench.p.audit("records_lost")
    assert audited and "events_lost=2" in audited[0]["detail"] and "audit_lost=1" in audited[0]["detail"]
    bench.period(100.0)
    m = bench.mp.monitor
    assert m is not None and m.alarms.is_active(AlarmKind.RECORDS_LOST)
    assert bench.motor_rates()[-1] == pytest.approx(100.0)  # an advisory: therapy goes on
    # reported once: no new loss, no new report
    time.sleep(0.6)  # past the report throttle (real time), so a second report would go out if due
    for _ in range(5):
        bench.period(100.0)
        bench.mp.tick()
    assert len([k for k, _s, _f in bench.p.events if k == "records_lost"]) == 1
