"""Differential harness: the Python safety_monitor partition and the C safety core, fed the same events.

Python side: the real ``MonitorPartition`` (septum_pump/safety_monitor.py, with therapy/monitor.py under it)
with its I/O replaced: a fake ``Partition`` (device time is the trace's, the motor device records each write
or fails it like a dead driver, sends go nowhere) and a fake ``time.monotonic`` for the sensor staleness
check. Nothing of its decision logic is copied here; a rule G changes in Python is in this test at once.

C side: examples/infusion_pump/sel4/core compiled for the host (``-ffp-contract=off``) as a shared library
(ctypes, for the 10 000 traces) and as a driver program that reads traces on stdin (for ASan/UBSan).

Each event's decision is compared field by field: the motor writes (rate, lease, failed attempts), the
step's rate / bolus / reason codes / bolus denial / binding limit, the alarm state (action, latch, active and
present alarms, the top one), the program result with its issues and error code, the approval result, and the
monitor's delivered / allowed volumes. Floats must be equal, not close: both sides do the same IEEE
operations in the same order.
"""

from __future__ import annotations

import ctypes
import math
import re
import shutil
import subprocess
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from septum_pump import safety_monitor as sm_py
from septum_pump.sim import wire
from septum_pump.therapy import approvals as approvals_py
from septum_pump.therapy.drug_library import DrugLibrary
from septum_pump.therapy.errors import TherapyError
from septum_pump.therapy_io import LEASE_PERIODS

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "examples" / "infusion_pump" / "sel4" / "core"
DRIVER_SRC = Path(__file__).resolve().parent / "core_driver.c"
CORE_SOURCES = ("therapy_core.c", "monitor_core.c", "control_core.c", "drug_table.c")
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]
CROSS_FLAGS = ["-mcpu=cortex-a53", "-mstrict-align", "-nostdlib", "-ffreestanding"]

# ------------------------------------------------------------------------------------------- C enums
# enum sm_alarm, in its order
ALARMS = ["air-in-line", "air-in-line-cumulative", "occlusion", "reservoir-empty", "door-open", "over-infusion",
          "sensor-fault", "controller-silent", "monitor-watchdog", "clock-fault", "motor-fault",
          "sensor-link-fault", "reservoir-low", "under-infusion", "paused-too-long", "dose-limit-reached",
          "infusion-complete", "records-lost", "bolus-exceeded"]
EV = {"heartbeat": 1, "motor_cmd": 2, "sensors": 3, "tick": 4, "program": 5, "approval": 6, "fault_reset": 7,
      "sensor_eof": 8, "motor_broken": 9, "motor_repaired": 10}
R_CLOCK, R_LATE, R_BAD_COMMAND, R_HB, R_SENSOR_MISSING, R_SENSOR_PROBLEM = (1 << i for i in range(6))
R_STOPPED, R_NO_PROGRAM, R_NO_COMMAND, R_BOLUS_REFUSED, R_LIMITED, R_DEVICE = (1 << i for i in range(6, 12))
R_BOLUS_ENDED_LOW = 1 << 12
LIMITED_BY = {"the programmed rate": 1, "the pump's maximum rate": 2, "a PCA dose window": 3,
              "the dose hard limit": 4, "the volume to be infused": 5}
BOLUS_DENIAL = {"no PCA program": 1, "the infusion is not running": 2,
                "only the patient's PCA button can request a patient bolus": 3,
                "a bolus is already being delivered": 4, "lockout interval not over": 5,
                "maximum number of boluses in the last hour reached": 6,
                "the demand dose would exceed the 1-hour limit": 7,
                "the demand dose would exceed the 4-hour limit": 8,
                "boluses are held after an occlusion was cleared": 9,
                "Bolus Exceeded: this prescription's bolus count is used up": 10,
                "the reservoir holds less than 1 mL (BOLUS_MIN_RESERVOIR_ML): boluses are inhibited": 11}
PR = {"none": 0, "held": 1, "cleared": 2, "error": 3, "needs_approval": 4, "rejected": 5, "monitor_refused": 6,
      "accepted": 7, "accepted_override": 8}
AP = {"none": 0, "held": 1, "refused": 2}
FIELDS = {"weight_kg": 1, "rate": 2, "dose": 3, "pca.demand_dose": 4, "pca.lockout_min": 5,
          "pca.max_boluses_per_hour": 6, "pca.limit_1h": 7, "pca.limit_4h": 8, "request": 9, "override": 10,
          "time": 11, "program": 12, "override.reason": 13, "principal": 14, "drug_id": 15,
          "pca.boluses_per_program": 16}
SEVERITY = {"invalid": 1, "unauthorised": 2, "hard-limit": 3, "soft-limit": 4}
# TherapyError messages -> enum sm_error (first match wins)
ERRORS = [
    (r"^drug '.*' is not in drug library", 1), (r"^concentration must be greater than zero", 2),
    (r"^concentration amount must be a finite", 3), (r"^a plain fluid's concentration", 4),
    (r"^care area '.*' is not in drug library", 5), (r"^drug '.*' is not available in care area", 6),
    (r"gives no bound for a PCA parameter", 7), (r"^concentration does not match the drug library", 8),
    (r"^weight must be a finite", 9), (r"is dosed per kg: the patient's weight is required", 10),
    (r"^rate must be a finite", 11), (r"^rate must not be negative", 12),
    (r"^a continuous infusion needs a rate above zero", 13), (r"^volume to be infused must be a finite", 14),
    (r"^volume to be infused must be above 0", 15), (r"^PCA is only available", 16),
    (r"^demand dose, lockout, boluses per hour and dose limits must be above zero", 17),
    (r"^care area must be text", 18), (r"^the per-prescription bolus count must be a whole number", 19),
    (r"is not set up for PCA in care area", 20), (r"^the PCA prescription is incomplete", 21),
    (r"must be whole numbers", 22),
]
APPROVAL_ERRORS = [(r"^role .* may not approve", 1), (r"names no authenticated clinician", 2),
                   (r"needs a reason", 3), (r"^the reason must be printable", 4), (r"names no valid prescription", 5)]
OUTCOME = {"below the hard minimum": 3, "above the hard maximum": 4, "below the soft minimum": 1,
           "above the soft maximum": 2}
DETAILS = [("above the pump limit", 10), ("the demand dose exceeds the 1-hour limit", 11),
           ("the 1-hour limit exceeds the 4-hour limit", 12), ("the basal rate alone would exceed", 13),
           ("soft-limit excess without a recorded clinician confirmation", 14), ("went backwards", 15),
           ("must be a finite number", 15), ("above the titration limit", 16)]


class Unmapped(AssertionError):
    """A Python outcome the C core has no code for: a rule changed in Python that C does not know yet."""


def _code(table: list[tuple[str, int]], text: str, what: str) -> int:
    for pattern, code in table:
        if re.search(pattern, text):
            return code
    raise Unmapped(f"{what} the C core has no code for: {text!r}")


# ------------------------------------------------------------------------------------------- ctypes
ID = 65


class Sensors(ctypes.Structure):
    _fields_ = [("line_pressure_mmhg", ctypes.c_double), ("largest_bubble_ul", ctypes.c_double),
                ("air_ul", ctypes.c_double), ("reservoir_ml", ctypes.c_double), ("motor_volume_ml", ctypes.c_double),
                ("door_open", ctypes.c_int32)]


class ProgramMsg(ctypes.Structure):
    _fields_ = [("drug", ctypes.c_char * ID), ("care_area", ctypes.c_char * ID), ("concentration", ctypes.c_double),
                ("dose_rate", ctypes.c_double), ("vtbi_ml", ctypes.c_double), ("weight_kg", ctypes.c_double),
                ("soft_limit_confirmed", ctypes.c_int32), ("pad", ctypes.c_int32), ("pca", ctypes.c_double * 6)]


class ApprovalMsg(ctypes.Structure):
    _fields_ = [("principal", ctypes.c_char * ID), ("role", ctypes.c_char * 33), ("reason", ctypes.c_char * 257),
                ("drug", ctypes.c_char * ID), ("concentration", ctypes.c_double), ("dose_rate", ctypes.c_double),
                ("vtbi_ml", ctypes.c_double), ("weight_kg", ctypes.c_double), ("pca", ctypes.c_double * 6)]


class Input(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int32), ("sensors_fresh", ctypes.c_int32), ("now", ctypes.c_double),
                ("seq", ctypes.c_int64), ("rate_ml_h", ctypes.c_double), ("bolus", ctypes.c_int32),
                ("pad", ctypes.c_int32), ("sensors", Sensors), ("program", ProgramMsg), ("approval", ApprovalMsg)]


class Issue(ctypes.Structure):
    _fields_ = [("field", ctypes.c_int32), ("severity", ctypes.c_int32), ("detail", ctypes.c_int32),
                ("pad", ctypes.c_int32)]


class Output(ctypes.Structure):
    _fields_ = [("motor_writes", ctypes.c_int32), ("motor_written", ctypes.c_int32),
                ("motor_rate_ml_h", ctypes.c_double), ("motor_lease_s", ctypes.c_double),
                ("stepped", ctypes.c_int32), ("bolus", ctypes.c_int32), ("rate_ml_h", ctypes.c_double),
                ("reasons", ctypes.c_uint32), ("bolus_denial", ctypes.c_int32), ("limited_by", ctypes.c_int32),
                ("action", ctypes.c_int32), ("latched", ctypes.c_int32), ("alarms", ctypes.c_uint32),
                ("alarms_present", ctypes.c_uint32), ("top_alarm", ctypes.c_int32),
                ("program_result", ctypes.c_int32), ("program_error", ctypes.c_int32), ("n_issues", ctypes.c_int32),
                ("issues", Issue * 16), ("approval_result", ctypes.c_int32), ("approval_error", ctypes.c_int32),
                ("program_rate_ml_h", ctypes.c_double), ("delivered_ml", ctypes.c_double),
                ("allowed_total_ml", ctypes.c_double)]


class Config(ctypes.Structure):
    _fields_ = [("period_s", ctypes.c_double), ("heartbeat_timeout_s", ctypes.c_double),
                ("watchdog_timeout_s", ctypes.c_double), ("silent_after_s", ctypes.c_double),
                ("lease_s", ctypes.c_double), ("approval_ttl_s", ctypes.c_double), ("care_area", ctypes.c_char * ID)]


LAYOUT = [ctypes.sizeof(Input), ctypes.sizeof(Output), ctypes.sizeof(Config), Input.sensors.offset,
          Input.program.offset, Input.approval.offset, Output.issues.offset, Output.approval_result.offset,
          Output.delivered_ml.offset, Config.care_area.offset]


def build_shared(out_dir: Path, extra: list[str] | None = None) -> Path:
    """The C core (and the layout shim) as a host shared library."""
    lib = out_dir / "libsmcore.so"
    srcs = [str(CORE / s) for s in CORE_SOURCES] + [str(DRIVER_SRC)]
    subprocess.run(["gcc", *CFLAGS, "-O1", "-shared", "-fPIC", "-I", str(CORE), *(extra or []), *srcs, "-o", str(lib)],
                   check=True, capture_output=True, text=True)
    return lib


def build_driver(out_dir: Path, sanitize: bool) -> Path:
    exe = out_dir / ("core_driver_san" if sanitize else "core_driver")
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"] if sanitize else []
    srcs = [str(CORE / s) for s in CORE_SOURCES] + [str(DRIVER_SRC)]
    subprocess.run(["gcc", *CFLAGS, "-O1", "-DSM_DRIVER_MAIN", *san, "-I", str(CORE), *srcs, "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    return exe


def cross_compile(out_dir: Path) -> list[Path] | str:
    """The core for the PDs (aarch64, freestanding); a reason string if the cross compiler is absent."""
    cc = shutil.which("aarch64-linux-gnu-gcc")
    if cc is None:
        return "aarch64-linux-gnu-gcc is not installed"
    objs = []
    for src in CORE_SOURCES:
        obj = out_dir / (src[:-2] + ".aarch64.o")
        subprocess.run([cc, *CFLAGS, *CROSS_FLAGS, "-O2", "-I", str(CORE), "-c", str(CORE / src), "-o", str(obj)],
                       check=True, capture_output=True, text=True)
        objs.append(obj)
    return objs


class CCore:
    def __init__(self, lib_path: Path) -> None:
        self.lib = ctypes.CDLL(str(lib_path))
        self.lib.sm_monitor_sizeof.restype = ctypes.c_ulong
        self.lib.sm_shim_layout.restype = ctypes.c_long
        self.lib.sm_shim_layout.argtypes = [ctypes.c_int]
        layout = [self.lib.sm_shim_layout(i) for i in range(len(LAYOUT))]
        if layout != LAYOUT:
            raise AssertionError(f"ctypes layout {LAYOUT} differs from the C structs {layout}")
        self.state = ctypes.create_string_buffer(self.lib.sm_monitor_sizeof())
        self.library = ctypes.c_void_p.in_dll(self.lib, "sm_drug_library")
        self.lib.sm_monitor_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(Config),
                                             ctypes.c_double, ctypes.POINTER(Output)]
        self.lib.sm_monitor_step.argtypes = [ctypes.c_void_p, ctypes.POINTER(Input), ctypes.POINTER(Output)]

    def init(self, cfg: Config, now: float) -> Output:
        out = Output()
        self.lib.sm_monitor_init(self.state, ctypes.addressof(self.library), ctypes.byref(cfg), now,
                                 ctypes.byref(out))
        return out

    def step(self, inp: Input) -> Output:
        out = Output()
        self.lib.sm_monitor_step(self.state, ctypes.byref(inp), ctypes.byref(out))
        return out


# ------------------------------------------------------------------------------------------- Python side
class FakeMotor:
    def __init__(self, part: FakePartition) -> None:
        self.part = part
        self.ok = True

    def send(self, data: bytes) -> None:
        msg = wire.decode(data)
        self.part.writes.append((msg.rate_ml_h, msg.lease_s, self.ok))
        if not self.ok:
            raise OSError(5, "motor driver gone")


class FakePartition:
    """What MonitorPartition uses of ``septum.runtime.partition.Partition``, without any I/O."""

    def __init__(self, care_area: str, scale: float, ttl_s: float) -> None:
        self.t = 0.0
        self.clock = types.SimpleNamespace(scale=scale)
        self.data_dir = Path("/nonexistent-septum-harness")
        self.config = {"care_area": care_area, "soft_limit_approval_s": ttl_s}
        self.control_lost = 0
        self.device_errors: dict[str, str] = {}
        self.writes: list[tuple[float, float, bool]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.motor = FakeMotor(self)

    def now(self) -> float:
        return self.t

    def device(self, name: str) -> FakeMotor:
        assert name == "motor", name
        return self.motor

    def send(self, channel: str, **fields: Any) -> bool:
        return True

    def event(self, name: str, **fields: Any) -> None:
        self.events.append((name, fields))


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t


@dataclass
class Decision:
    """One event's outcome, the same fields from either side."""

    motor: tuple[Any, ...]
    step: tuple[Any, ...]
    alarms: tuple[Any, ...]
    program: tuple[Any, ...]
    approval: tuple[Any, ...]
    volumes: tuple[float, float]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def _reason_bits(reasons: tuple[str, ...]) -> tuple[int, int, int]:
    bits, denial, limited = 0, 0, 0
    for r in reasons:
        if r.startswith("bolus refused by monitor: "):
            bits |= R_BOLUS_REFUSED
            denial = BOLUS_DENIAL[r.removeprefix("bolus refused by monitor: ")]
        elif r.startswith("command limited by "):
            bits |= R_LIMITED
            limited = LIMITED_BY[r.removeprefix("command limited by ")]
        elif r == "monitor step came too late":
            bits |= R_LATE
        elif r == "malformed or replayed command ignored":
            bits |= R_BAD_COMMAND
        elif r == "controller heartbeat missing":
            bits |= R_HB
        elif r == "sensor reading missing":
            bits |= R_SENSOR_MISSING
        elif r.endswith(" is not a finite number") or r.endswith(" is negative") or r in (
                "motor volume counter went backwards", "door_open is not true/false"):
            bits |= R_SENSOR_PROBLEM
        elif r == "bolus ended: reservoir nearly empty":
            bits |= R_BOLUS_ENDED_LOW
        elif r == "stopped by alarm":
            bits |= R_STOPPED
        elif r == "no accepted program":
            bits |= R_NO_PROGRAM
        elif r == "no valid command this period":
            bits |= R_NO_COMMAND
        elif "went backwards" in r or r.startswith("time must be"):
            bits |= R_CLOCK
        else:
            raise Unmapped(f"a monitor reason the C core has no code for: {r!r}")
    return bits, denial, limited


def _issue_codes(issues: Any) -> tuple[tuple[int, int, int], ...]:
    out = []
    for i in issues:
        fld = FIELDS.get(i.field)
        if fld is None:
            raise Unmapped(f"an issue field the C core has no code for: {i.field!r}")
        sev = SEVERITY[i.severity.value]
        if fld == FIELDS["request"]:
            detail = _code(ERRORS, i.message, "a request error")
        else:
            detail = next((c for words, c in OUTCOME.items() if f"is {words} of" in i.message), 0) or _code(
                [(re.escape(w), c) for w, c in DETAILS], i.message, "an issue")
        out.append((fld, sev, detail))
    return tuple(out)


class PyMonitor:
    """The real MonitorPartition with fake I/O; ``handle`` runs one event and returns its Decision."""

    def __init__(self, library: DrugLibrary, care_area: str, scale: float, ttl_s: float, t0: float,
                 mono: FakeMonotonic) -> None:
        self.p = FakePartition(care_area, scale, ttl_s)
        self.p.t = t0
        self.mono = mono
        self.mp = sm_py.MonitorPartition(self.p)  # type: ignore[arg-type]
        self.mp.library = library  # as on_library leaves it (the signature check is not the core's business)
        self.applied: list[Any] = []
        self.request_error: str | None = None
        self.decisions: list[Any] = []
        self.accept_issues: list[Any] = []
        orig_apply = self.mp.apply

        def apply(d: Any) -> None:
            self.applied.append(d)
            orig_apply(d)

        self.mp.apply = apply  # type: ignore[method-assign]
        self.frame_mono = mono.t
        self.seq = 0

    def config(self) -> Config:
        """The C configuration, computed the way ensure_monitor / drive compute the Python one."""
        mp = self.mp
        cfg = Config()
        cfg.period_s = LEASE_PERIODS * mp.pc_period
        cfg.heartbeat_timeout_s = mp.silent_after
        cfg.watchdog_timeout_s = max(1.0, 20 * mp.period)
        cfg.silent_after_s = mp.silent_after
        cfg.lease_s = LEASE_PERIODS * mp.pc_period
        cfg.approval_ttl_s = mp.approvals.ttl_s
        cfg.care_area = mp.care_area.encode()
        return cfg

    def start(self) -> Decision:
        self.p.writes.clear()
        self.mp.drive(0.0, force=True)  # as main() does
        return self._decision(None, [], None)

    def handle(self, ev: dict[str, Any]) -> Decision:
        mp, p = self.mp, self.p
        p.t = ev["now"]
        self.mono.t = self.frame_mono + (0.0 if ev.get("fresh", True) else 10.0)
        p.writes.clear()
        self.applied.clear()
        mark = len(p.events)
        kind = ev["kind"]
        waiting_before = mp.waiting_program
        if kind == "heartbeat":
            mp.on_heartbeat(types.SimpleNamespace(seq=0))
        elif kind == "motor_cmd":
            mp.on_motor_cmd(types.SimpleNamespace(seq=ev["seq"], rate_ml_h=ev["rate"], bolus=ev["bolus"]))
        elif kind == "sensors":
            s = ev["sensors"]
            self.seq += 1
            self.mono.t = self.frame_mono = self.frame_mono + 100.0
            mp.on_sensors(wire.encode(wire.SensorFrame(seq=self.seq, line_pressure_mmhg=s[0], largest_bubble_ul=s[1],
                                                       air_ul=s[2], reservoir_ml=s[3], door_open=s[5],
                                                       motor_volume_ml=s[4])))
        elif kind == "sensor_eof":
            mp.on_sensors(b"")
        elif kind == "tick":
            mp.tick()
        elif kind == "program":
            mp.on_program(types.SimpleNamespace(program_id=1, **ev["program"]))
        elif kind == "approval":
            mp.on_approval(types.SimpleNamespace(**ev["approval"]))
        elif kind == "fault_reset":
            mp.on_fault_reset(types.SimpleNamespace(principal="nurse-7", reason="checked the line"))
        elif kind == "motor_broken":
            p.motor.ok = False
        elif kind == "motor_repaired":
            p.motor.ok = True
        else:
            raise ValueError(kind)
        held = kind == "program" and mp.monitor is None and mp.waiting_program is not None \
            and mp.waiting_program is not waiting_before
        return self._decision(kind, p.events[mark:], "held" if held else None)

    def _decision(self, kind: str | None, events: list[tuple[str, dict[str, Any]]], held: str | None) -> Decision:
        mp, p = self.mp, self.p
        attempts = len(p.writes)
        ok = [w for w in p.writes if w[2]]
        motor = (attempts, 1, ok[-1][0], ok[-1][1]) if ok else (attempts, 0, 0.0, 0.0)
        if self.applied:
            d = self.applied[-1]
            bits, denial, limited = _reason_bits(d.reasons)
            step = (1, int(d.bolus), d.rate_ml_h, bits, denial, limited)
        else:
            step = (0, 0, 0.0, 0, 0, 0)
        m = mp.monitor
        if m is None:
            alarms: tuple[Any, ...] = (0, 0, 0, 0, -1)
        else:
            active = m.alarms.active()
            mask = sum(1 << ALARMS.index(a.kind.value) for a in active)
            present = sum(1 << ALARMS.index(a.kind.value) for a in active if a.condition_present)
            alarms = (int(m.alarms.action()), int(m.latched_fault), mask, present,
                      ALARMS.index(active[0].kind.value) if active else -1)
        names = [e[0] for e in events]
        program: tuple[Any, ...] = (0, 0, (), 0.0)
        if held:
            program = (PR["held"], 0, (), 0.0)
        elif "program_cleared" in names:
            program = (PR["cleared"], 0, (), 0.0)
        elif "program_refused" in names or "program_accepted" in names:
            program = self._program_outcome(names, events)
        approval: tuple[Any, ...] = (0, 0)
        if "soft_limit_approval" in names:
            approval = (AP["held"], 0)
        elif "soft_limit_approval_refused" in names:
            reason = next(f["reason"] for n, f in events if n == "soft_limit_approval_refused")
            approval = (AP["refused"], _code(APPROVAL_ERRORS, reason, "an approval refusal"))
        volumes = (m.delivered_ml, m.allowed_total_ml) if m is not None else (0.0, 0.0)
        return Decision(motor, step, alarms, program, approval, volumes)

    def _program_outcome(self, names: list[str], events: list[tuple[str, dict[str, Any]]]) -> tuple[Any, ...]:
        res = self.last_program
        assert res is not None, "a program record without a program evaluation"
        self.last_program = None
        return res

    last_program: tuple[Any, ...] | None = None


def install_program_probes(monkeypatch: Any) -> list[PyMonitor]:
    """Wrap the functions on_program calls (module globals of safety_monitor) to see their results.

    The wrappers return what the originals return: the partition's behaviour is unchanged."""
    current: list[PyMonitor] = []
    orig_request = sm_py.program_request
    orig_validate = sm_py.validate_program
    orig_accept = sm_py.SafetyMonitor.accept_program

    def program_request(*a: Any, **k: Any) -> Any:
        try:
            return orig_request(*a, **k)
        except TherapyError as exc:
            current[0].last_program = (PR["error"], _code(ERRORS, str(exc), "a request error"), (), 0.0)
            raise

    def validate_program(lib: Any, req: Any) -> Any:
        d = orig_validate(lib, req)
        verdict = d.verdict.value
        code = {"accepted": PR["accepted"], "needs-confirmation": PR["needs_approval"],
                "rejected": PR["rejected"]}[verdict]
        current[0].last_program = (code, 0, _issue_codes(d.issues), 0.0)
        return d

    def accept_program(self: Any, program: Any, now: float) -> Any:
        issues = orig_accept(self, program, now)
        pm = current[0]
        assert pm.last_program is not None
        if issues:
            pm.last_program = (PR["monitor_refused"], 0, _issue_codes(issues), 0.0)
        else:
            code = PR["accepted_override"] if program.overrides else PR["accepted"]
            pm.last_program = (code, 0, pm.last_program[2], self.program.rate_ml_h)
        return issues

    monkeypatch.setattr(sm_py, "program_request", program_request)
    monkeypatch.setattr(sm_py, "validate_program", validate_program)
    monkeypatch.setattr(sm_py.SafetyMonitor, "accept_program", accept_program)
    return current


def c_decision(o: Output) -> Decision:
    motor = (o.motor_writes, o.motor_written, o.motor_rate_ml_h, o.motor_lease_s) if o.motor_written else (
        o.motor_writes, 0, 0.0, 0.0)
    step = (o.stepped, o.bolus, o.rate_ml_h, o.reasons, o.bolus_denial, o.limited_by) if o.stepped else (
        0, 0, 0.0, 0, 0, 0)
    alarms = (o.action, o.latched, o.alarms, o.alarms_present, o.top_alarm)
    issues = tuple((o.issues[i].field, o.issues[i].severity, o.issues[i].detail) for i in range(o.n_issues))
    pr = o.program_result
    if pr in (PR["none"], PR["held"], PR["cleared"]):
        program: tuple[Any, ...] = (pr, 0, (), 0.0)
    elif pr == PR["error"]:
        program = (pr, o.program_error, (), 0.0)
    elif pr in (PR["accepted"], PR["accepted_override"]):
        program = (pr, 0, issues, o.program_rate_ml_h)
    else:
        program = (pr, 0, issues, 0.0)
    approval = (o.approval_result, o.approval_error)
    return Decision(motor, step, alarms, program, approval, (o.delivered_ml, o.allowed_total_ml))


def c_input(ev: dict[str, Any]) -> Input:
    inp = Input()
    inp.kind = EV[ev["kind"]]
    inp.now = ev["now"]
    inp.sensors_fresh = 1 if ev.get("fresh", True) else 0
    if ev["kind"] == "motor_cmd":
        inp.seq, inp.rate_ml_h, inp.bolus = ev["seq"], ev["rate"], int(ev["bolus"])
    elif ev["kind"] == "sensors":
        s = ev["sensors"]
        inp.sensors = Sensors(s[0], s[1], s[2], s[3], s[4], int(s[5]))
    elif ev["kind"] == "program":
        pg = ev["program"]
        inp.program = ProgramMsg(pg["drug"].encode(), pg["care_area"].encode(), pg["concentration"], pg["dose_rate"],
                                 pg["vtbi_ml"], pg["weight_kg"], int(pg["soft_limit_confirmed"]), 0, pca_values(pg))
    elif ev["kind"] == "approval":
        a = ev["approval"]
        inp.approval = ApprovalMsg(a["principal"].encode(), a["role"].encode(), a["reason"].encode(),
                                   a["drug"].encode(), a["concentration"], a["dose_rate"], a["vtbi_ml"],
                                   a["weight_kg"], pca_values(a))
    return inp


PCA_FIELDS = ("pca_demand_dose", "pca_lockout_min", "pca_max_per_hour", "pca_limit_1h", "pca_limit_4h",
              "pca_bolus_count")


def pca_values(msg: dict[str, Any]) -> Any:
    """The six per-patient PCA fields as the C struct holds them (doubles; absent: 0)."""
    return (ctypes.c_double * 6)(*(float(msg.get(name, 0)) for name in PCA_FIELDS))


def same(a: Decision, b: Decision) -> bool:
    """Equal field by field; floats bit for bit (NaN never occurs in a decision; -0.0 == 0.0 is allowed)."""
    return a == b


__all__ = ["ALARMS", "CCore", "Decision", "PyMonitor", "approvals_py", "math"]


# ------------------------------------------------------------------------------------------- pump_control
OPS = {"program": 1, "confirm_edit": 2, "cancel_edit": 3, "request_start": 4, "confirm_start": 5, "pause": 6,
       "emergency_stop": 7, "stop": 8, "new_patient": 9, "alarm": 10, "clear_alarm": 11, "bolus": 12, "tick": 13,
       "start_gate": 14}
STATES = ["idle", "programmed", "running", "paused", "alarm", "complete"]
OUTCOMES = [("needs an authenticated clinician", 1), ("no change is waiting for confirmation", 2),
            ("cannot start from state", 3), ("no start is waiting for confirmation", 4),
            ("cannot pause from state", 5), ("stop the infusion before starting a new patient", 6),
            ("no alarm to clear", 7)]
SOURCES = ["pca-button", "keypad", "network"]
DETAILS += [("clear the alarm before changing the program", 18),
            ("stop the infusion before changing drug, concentration or care area", 19),
            ("programming needs an authenticated clinician", 20), ("a soft-limit excess needs a reason", 21)]


class Rx(ctypes.Structure):
    _fields_ = [("drug", ctypes.c_char * ID), ("care_area", ctypes.c_char * ID), ("concentration", ctypes.c_double),
                ("dose_rate", ctypes.c_double), ("vtbi_ml", ctypes.c_double), ("weight_kg", ctypes.c_double),
                ("pca", ctypes.c_double * 6)]


class ControlInput(ctypes.Structure):
    _fields_ = [("op", ctypes.c_int32), ("clinician", ctypes.c_int32), ("now", ctypes.c_double), ("rx", Rx),
                ("override_reason", ctypes.c_char * 257), ("has_override", ctypes.c_int32),
                ("action", ctypes.c_int32), ("source", ctypes.c_int32), ("has_hold_off", ctypes.c_int32),
                ("has_reservoir", ctypes.c_int32), ("hold_off_until", ctypes.c_double),
                ("reservoir_ml", ctypes.c_double), ("gate_latched", ctypes.c_int32), ("gate_alarm", ctypes.c_int32),
                ("gate_high_priority", ctypes.c_int32)]


class ControlOutput(ctypes.Structure):
    _fields_ = [("outcome", ctypes.c_int32), ("verdict", ctypes.c_int32), ("program_error", ctypes.c_int32),
                ("installed", ctypes.c_int32), ("n_issues", ctypes.c_int32), ("issues", Issue * 16),
                ("bolus_granted", ctypes.c_int32), ("bolus_denial", ctypes.c_int32), ("seq", ctypes.c_int64),
                ("rate_ml_h", ctypes.c_double), ("bolus", ctypes.c_int32), ("at_limit", ctypes.c_int32),
                ("cmd_state", ctypes.c_int32), ("state", ctypes.c_int32), ("has_program", ctypes.c_int32),
                ("edit_pending", ctypes.c_int32), ("start_pending", ctypes.c_int32),
                ("bolus_requested", ctypes.c_int32), ("bolus_active", ctypes.c_int32),
                ("delivered_ml", ctypes.c_double), ("program_rate_ml_h", ctypes.c_double)]


class ControlConfig(ctypes.Structure):
    _fields_ = [("period_s", ctypes.c_double), ("start_confirm_timeout_s", ctypes.c_double),
                ("edit_confirm_timeout_s", ctypes.c_double), ("paused_too_long_s", ctypes.c_double)]


class CControl:
    def __init__(self, core: CCore) -> None:
        lib = core.lib
        lib.sm_control_sizeof.restype = ctypes.c_ulong
        self.lib = lib
        self.library = core.library
        self.state = ctypes.create_string_buffer(lib.sm_control_sizeof())
        lib.sm_control_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ControlConfig),
                                        ctypes.c_double]
        lib.sm_control_step.argtypes = [ctypes.c_void_p, ctypes.POINTER(ControlInput), ctypes.POINTER(ControlOutput)]
        layout = [lib.sm_shim_layout(i) for i in range(len(LAYOUT), len(LAYOUT) + 3)]
        mine = [ctypes.sizeof(ControlInput), ctypes.sizeof(ControlOutput), ControlOutput.delivered_ml.offset]
        if layout != mine:
            raise AssertionError(f"ctypes layout {mine} differs from the C control structs {layout}")

    def init(self, cfg: ControlConfig, now: float) -> None:
        self.lib.sm_control_init(self.state, ctypes.addressof(self.library), ctypes.byref(cfg), now)

    def step(self, inp: ControlInput) -> ControlOutput:
        out = ControlOutput()
        self.lib.sm_control_step(self.state, ctypes.byref(inp), ctypes.byref(out))
        return out


def control_c_input(op: dict[str, Any]) -> ControlInput:
    inp = ControlInput()
    inp.op = OPS[op["op"]]
    inp.now = op["now"]
    inp.clinician = int(op.get("clinician", True))
    if op["op"] == "program":
        pg = op["program"]
        inp.rx = Rx(pg["drug"].encode(), op["care_area"].encode(), pg["concentration"], pg["dose_rate"],
                    pg["vtbi_ml"], pg["weight_kg"], pca_values(pg))
        inp.override_reason = op["reason"].encode()
        inp.has_override = int(bool(op["reason"]))
    elif op["op"] == "alarm":
        inp.action = op["action"]
    elif op["op"] == "bolus":
        inp.source = SOURCES.index(op["source"])
        inp.has_hold_off, inp.hold_off_until = (1, op["hold_off"]) if op["hold_off"] is not None else (0, 0.0)
        inp.has_reservoir, inp.reservoir_ml = (1, op["reservoir"]) if op["reservoir"] is not None else (0, 0.0)
    elif op["op"] == "start_gate":
        inp.gate_latched = int(op["latched"])
        alarm = op["alarm"]
        inp.gate_alarm = -1 if not alarm else (ALARMS.index(alarm) if alarm in ALARMS else len(ALARMS))
        inp.gate_high_priority = int(op["priority"] == "high")
    return inp


def control_c_decision(o: ControlOutput) -> tuple[Any, ...]:
    issues = tuple((o.issues[i].field, o.issues[i].severity, o.issues[i].detail) for i in range(o.n_issues))
    tick = (o.seq, o.rate_ml_h, o.bolus, o.at_limit, o.cmd_state) if o.seq else (0, 0.0, 0, 0, 0)
    return (o.outcome, o.verdict, o.program_error, o.installed, issues, o.bolus_granted, o.bolus_denial, tick,
            (o.state, o.has_program, o.edit_pending, o.start_pending, o.bolus_requested, o.bolus_active,
             o.delivered_ml, o.program_rate_ml_h))


class PyControl:
    """therapy/state_machine.py Controller (+ therapy_io.program_request and gates.start_refusal, as
    pump_control.py calls them); ``handle`` runs one operation and returns the same tuple as the C side."""

    def __init__(self, library: DrugLibrary, period_s: float, now: float) -> None:
        from septum_pump.therapy.state_machine import Controller, ControllerConfig

        self.library = library
        self.cfg = ControllerConfig(period_s=period_s)
        self.ctl = Controller(library, self.cfg, now=now)

    def config(self) -> ControlConfig:
        c = self.cfg
        return ControlConfig(c.period_s, c.start_confirm_timeout_s, c.edit_confirm_timeout_s,
                             getattr(c, "paused_too_long_s", 120.0))

    def handle(self, op: dict[str, Any]) -> tuple[Any, ...]:
        from septum_pump import therapy_io
        from septum_pump.therapy.alarms import AlarmAction
        from septum_pump.therapy.errors import ClockError
        from septum_pump.therapy.gates import start_refusal
        from septum_pump.therapy.pca import BolusSource
        from septum_pump.therapy.program import Principal

        ctl, now, kind = self.ctl, op["now"], op["op"]
        who = Principal("nurse-7", "clinician" if op.get("clinician", True) else "patient", True)
        outcome, verdict, error, installed, issues = 0, 0, 0, 0, ()
        granted, denial, tick = 0, 0, (0, 0.0, 0, 0, 0)
        try:
            if kind == "program":
                pg = op["program"]
                try:
                    req = therapy_io.program_request(self.library, drug=pg["drug"], care_area=op["care_area"],
                                                     concentration=pg["concentration"], dose_rate=pg["dose_rate"],
                                                     vtbi_ml=pg["vtbi_ml"], weight_kg=pg["weight_kg"], principal=who,
                                                     override_reason=op["reason"],
                                                     pca=therapy_io.pca_fields(types.SimpleNamespace(**pg)))
                except TherapyError as exc:
                    if isinstance(exc, ClockError):
                        raise
                    error = _code(ERRORS, str(exc), "a request error")
                else:
                    before = ctl.state.value
                    d = ctl.program_infusion(req, now)
                    verdict = {"accepted": 1, "needs-confirmation": 2, "rejected": 3}[d.verdict.value]
                    issues = _issue_codes(d.issues)
                    if verdict == 1:
                        installed = 1 if before in ("idle", "programmed", "complete") else 2
            elif kind == "start_gate":
                why = start_refusal(op["alarm"], op["priority"], op["latched"])
                outcome = 0 if why is None else (9 if why.startswith("safety fault latched") else 10)
            elif kind == "alarm":
                ctl.on_alarm(AlarmAction(op["action"]), now)
            elif kind == "bolus":
                d = ctl.request_bolus(BolusSource(op["source"]), now, hold_off_until=op["hold_off"],
                                      reservoir_ml=op["reservoir"])
                granted = int(d.granted)
                denial = 0 if d.granted else BOLUS_DENIAL[d.denial.value]
            elif kind == "tick":
                cmd = ctl.tick(now)
                tick = (cmd.seq, cmd.rate_ml_h, int(cmd.bolus), int(cmd.at_limit), STATES.index(cmd.state.value))
            elif kind == "emergency_stop":
                ctl.emergency_stop(now)
            elif kind == "cancel_edit":
                ctl.cancel_edit(now)
            else:
                method = {"confirm_edit": ctl.confirm_edit, "request_start": ctl.request_start,
                          "confirm_start": ctl.confirm_start, "pause": ctl.pause, "stop": ctl.stop,
                          "new_patient": ctl.new_patient, "clear_alarm": ctl.clear_alarm}[kind]
                out = method(who, now)
                outcome = 0 if out.ok else _code([(re.escape(w), c) for w, c in OUTCOMES], out.message, "an outcome")
        except ClockError:
            outcome = 8
        program = ctl.program
        state = (STATES.index(ctl.state.value), int(program is not None), int(ctl.pending_edit is not None),
                 int(ctl.start_pending), int(ctl._bolus_requested), int(ctl.pca.active is not None), ctl.delivered_ml,
                 program.rate_ml_h if program is not None else 0.0)
        return (outcome, verdict, error, installed, issues, granted, denial, tick, state)
