"""The C safety core against the Python safety_monitor partition: same traces, identical decisions.

A trace is what the monitor partition sees: pump_control's heartbeats, motor commands and programs, sensor
frames (normal, hazards, garbage, a motor counter that follows what the motor was allowed), the monitor's own
timer, clinicians' approvals from auth, fault resets, a failing motor driver and sensor link, silences, late
steps and a clock that goes back, under four time scales. Hypothesis generates them (derandomized: the same
traces on every run); each is run through both cores and every event's decision must be identical
(core_harness.Decision). Run time and the number of traces are printed (never asserted).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from septum_pump import sel4_drug_table
from septum_pump.therapy.drug_library import DrugLibrary, load_drug_library

from . import core_harness as h

LIBRARY_PATH = h.REPO / "examples" / "infusion_pump" / "drug_library.yaml"
TRACES = int(__import__("os").environ.get("SEPTUM_CORE_TRACES", "10000"))
SCALES = (1.0, 60.0, 1200.0, 12000.0)  # pump_control period 0.05 s, 3 s, 60 s, 600 s of device time
AREAS = ("adult-med-surg", "icu")
# The random source of each trace. One trace in ten draws through Hypothesis (st.randoms), which leans towards
# edge values (zeros, bounds, repeats); the other nine use a seeded random.Random, whose draws cost a small
# fraction of Hypothesis's (10,000 Hypothesis-drawn traces took ~20 minutes of CI, these ~4). All derandomized.
SEEDS = st.integers(min_value=0, max_value=9).flatmap(
    lambda k: st.randoms(use_true_random=False) if k == 0
    else st.integers(min_value=0, max_value=2**64 - 1).map(random.Random))
SANITIZED_TRACES = 300  # replayed through the ASan/UBSan driver


@pytest.fixture(scope="module")
def library() -> DrugLibrary:
    return load_drug_library(LIBRARY_PATH.read_bytes())


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sel4core")


@pytest.fixture(scope="module")
def ccore(build: Path) -> h.CCore:
    return h.CCore(h.build_shared(build))


# ----------------------------------------------------------------------------------------- traces
def _limit_points(lib: DrugLibrary, drug: str, area: str, what: str) -> list[float]:
    try:
        entry = lib.entry(drug, area)
    except Exception:
        entry = None
    points = [0.0, 1.0, 5.0, 50.0]
    if entry is not None:
        lim = getattr(entry, what)
        for b in lim.as_tuple():
            if b is not None:
                points += [b, b * (1 + 1e-10), b * (1 - 1e-10), b * 1.01, b * 0.99, b + 1e-8]
    return [p for p in points if p >= 0]


class TraceMaker:
    """Builds one trace from a random source, reactively: the motor counter follows the motor writes the
    Python side made so far (both sides get the same numbers; if they had diverged the trace already failed)."""

    def __init__(self, rnd: random.Random, lib: DrugLibrary) -> None:
        self.r = rnd
        self.lib = lib
        self.scale = rnd.choice(SCALES)
        self.care_area = rnd.choice(AREAS)
        self.ttl = rnd.choice((120.0, 30.0 * max(0.05, 0.05 * self.scale)))
        self.pc = max(0.05, 0.05 * self.scale)
        self.t = rnd.choice((0.0, 1000.0, 1e6))
        self.seq = 0
        self.motor_ml = rnd.choice((0.0, 12.5))
        self.motor_rate, self.motor_until = 0.0, self.t
        self.factor = 1.0
        self.last_program: dict[str, Any] | None = None
        self.n = rnd.randint(8, 48)

    def dt(self) -> float:
        r = self.r.random()
        if r < 0.70:
            return self.pc * self.r.uniform(0.1, 1.1)
        if r < 0.80:
            return 0.0
        if r < 0.92:
            return self.pc * self.r.uniform(1.1, 4.0)
        if r < 0.98:
            return self.r.choice((60.0, 360.0, 1800.0, 3600.0)) * self.r.random()
        return -self.pc * self.r.random()  # the clock goes back

    def advance(self) -> None:
        dt = self.dt()
        if dt > 0:  # the simulated motor pushes what its grant allows
            run = max(0.0, min(self.t + dt, self.motor_until) - self.t)
            self.motor_ml += self.motor_rate * run / 3600.0 * self.factor
        self.t += dt

    def saw_writes(self, writes: list[tuple[float, float, bool]]) -> None:
        for rate, lease, ok in writes:
            if ok:
                self.motor_rate, self.motor_until = rate, self.t + lease

    def sensors(self) -> list[Any]:
        r = self.r.random()
        # pressure, largest bubble, air, reservoir, motor counter, door open
        s: list[Any] = [self.r.choice((20.0, 100.0, 300.0)), 0.0, 0.0, self.r.choice((200.0, 50.0)), self.motor_ml,
                        False]
        if r < 0.70:
            pass
        elif r < 0.75:
            s[0] = self.r.choice((599.9, 600.0, 900.0))  # occlusion
        elif r < 0.79:
            s[1] = self.r.choice((49.9, 50.0, 80.0))  # a bubble
            s[2] = s[1]
        elif r < 0.83:
            s[2] = self.r.choice((30.0, 120.0, 499.0))  # cumulative air
        elif r < 0.86:
            s[3] = self.r.choice((10.0, 9.0, 1.0, 0.99, 0.5, 0.4, 0.0))  # reservoir low / empty
        elif r < 0.89:
            s[5] = True  # door open
        elif r < 0.92:
            s[self.r.randrange(5)] = self.r.choice(
                (float("nan"), float("inf"), -1.0, -0.0))  # garbage
        elif r < 0.95:
            s[4] = max(0.0, self.motor_ml - self.r.choice((0.1, 5.0)))  # counter backwards
        else:
            s[4] = self.motor_ml + self.r.choice((0.1, 0.3, 2.0, 20.0))  # over-infusion
        if self.r.random() < 0.03:
            self.factor = self.r.choice((1.0, 1.3, 0.5, 3.0))
        return s

    def pca_prescription(self, drug: str) -> dict[str, Any]:
        """The per-patient PCA fields: mostly none (the library's standard), else around the library's bounds,
        sometimes incomplete."""
        r = self.r
        zero = dict(pca_demand_dose=0.0, pca_lockout_min=0.0, pca_max_per_hour=0, pca_limit_1h=0.0,
                    pca_limit_4h=0.0, pca_bolus_count=0)
        if r.random() < 0.7:
            return zero
        try:
            rules = self.lib.entry(drug, self.care_area).pca
        except Exception:
            rules = None
        if rules is None:
            return {**zero, "pca_demand_dose": 1.0} if r.random() < 0.5 else zero

        def around(lim: Any, whole: bool = False) -> float:
            pts = [b for b in lim.as_tuple() if b is not None]
            v = r.choice(pts) * r.choice((1.0, 1.0, 1.0, 0.9, 1.1))
            return float(max(0, round(v))) if whole else v

        out = dict(pca_demand_dose=around(rules.demand_dose), pca_lockout_min=around(rules.lockout_min),
                   pca_max_per_hour=int(around(rules.max_boluses_per_hour, whole=True)),
                   pca_limit_1h=around(rules.limit_1h), pca_limit_4h=around(rules.limit_4h),
                   pca_bolus_count=int(around(rules.boluses_per_program, whole=True))
                   if rules.boluses_per_program is not None and r.random() < 0.7 else 0)
        if r.random() < 0.1:
            out[r.choice(list(out))] = 0  # incomplete (or the count left to the library)
        return out

    def good_program(self) -> dict[str, Any]:
        """A program the library accepts (or nearly: at a soft bound), so that traces get to run."""
        r = self.r
        choices = [d for d, drug in self.lib.drugs.items() if self.care_area in drug.care_areas]
        pca_drugs = [d for d in choices if self.lib.entry(d, self.care_area).pca is not None]
        drug_id = r.choice(pca_drugs) if pca_drugs and r.random() < 0.6 else r.choice(choices)
        d = self.lib.drugs[drug_id]
        e = self.lib.entry(drug_id, self.care_area)
        c = d.concentrations[r.randrange(len(d.concentrations))]
        conc = c.canonical_per_ml / d.concentrations[0].unit.to_canonical
        lo = e.rate.soft_min if e.rate.soft_min is not None else (e.rate.hard_min or 0.0)
        hi = e.rate.soft_max if e.rate.soft_max is not None else e.rate.hard_max
        rate = r.choice((lo, hi, (lo + hi) / 2, lo + (hi - lo) * r.random()))
        if e.pca is not None:
            rate = r.choice((0.0, 0.0, rate / 4, rate / 2))
        if rate == 0 and e.pca is None:
            rate = hi
        weight = 70.0 if d.dose_unit.weight_based or r.random() < 0.3 else 0.0
        vtbi = r.choice((0.05, 0.5, 5.0, 20.0, 50.0))
        prog = dict(drug=drug_id, care_area="", concentration=conc, dose_rate=rate, vtbi_ml=vtbi, weight_kg=weight,
                    soft_limit_confirmed=False, **self.pca_prescription(drug_id))
        self.last_program = prog
        return prog

    def program(self) -> dict[str, Any]:
        r = self.r
        if r.random() < 0.5:
            return self.good_program()
        drugs = list(self.lib.drugs)
        drug = r.choice([*drugs, "", "not-a-drug"]) if r.random() < 0.2 else r.choice(drugs)
        area = "" if r.random() < 0.7 else r.choice((self.care_area, *AREAS, "nowhere"))
        eff_area = area or self.care_area
        d = self.lib.drugs.get(drug)
        conc = 1.0
        if d is not None:
            c = d.concentrations[r.randrange(len(d.concentrations))]
            conc = c.canonical_per_ml / d.concentrations[0].unit.to_canonical
            if r.random() < 0.1:
                conc = r.choice((0.0, conc * 2, conc * (1 + 1e-7), conc * (1 + 1e-5), 1.0))
        rate = r.choice(_limit_points(self.lib, drug, eff_area, "rate")) if r.random() < 0.8 else r.uniform(0, 50)
        vtbi_pts = [1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 2000.0, 5000.0]
        if d is not None:
            cpm = conc * d.concentrations[0].unit.to_canonical
            amount_unit = d.dose_unit.amount_unit.to_canonical
            for b in _limit_points(self.lib, drug, eff_area, "dose"):
                if cpm > 0 and b > 0:
                    vtbi_pts.append(min(5000.0, b * amount_unit / cpm))
        vtbi = r.choice(vtbi_pts) if r.random() < 0.9 else r.choice((0.0, 0.001))
        weight = 0.0
        if r.random() < 0.5 or (d is not None and d.dose_unit.weight_based and r.random() < 0.9):
            weight = r.choice([w for w in _limit_points(self.lib, drug, eff_area, "weight_kg") if w <= 500] + [80.0])
        prog = dict(drug=drug, care_area=area, concentration=min(10000.0, conc), dose_rate=min(10000.0, rate),
                    vtbi_ml=vtbi, weight_kg=weight, soft_limit_confirmed=r.random() < 0.3,
                    **self.pca_prescription(drug))
        if drug:
            self.last_program = prog
        return prog

    def approval(self) -> dict[str, Any]:
        r = self.r
        base = self.last_program if self.last_program and r.random() < 0.85 else self.program()
        reasons = ["titrated per protocol", "  ok  ", "", "   ", "\tper order\x1c", "bell\x07", "x" * 201,
                   " " + "y" * 200 + " "]
        return dict(principal=r.choice(["nurse-7", "nurse-7", "", "n" * 64, "bad\x01name"]),
                    role=r.choice(["clinician"] * 6 + ["patient", "biomed"]),
                    reason=r.choice(reasons[:2] * 4 + reasons),
                    drug=base["drug"] or "heparin", concentration=base["concentration"],
                    dose_rate=base["dose_rate"] * (1 if r.random() < 0.9 else 1 + 1e-6),
                    vtbi_ml=base["vtbi_ml"], weight_kg=base["weight_kg"],
                    **{k: v for k, v in base.items() if k.startswith("pca_")})

    def events(self, run_event: Any) -> None:
        """Generate the trace, handing each event to ``run_event`` (which returns the motor writes)."""
        r = self.r
        emit = run_event
        # most traces start as the pump does: pump_control speaks, the sensors report, a program arrives
        opening = [("heartbeat", {}), ("sensors", {}), ("program", {})]
        if r.random() < 0.2:
            r.shuffle(opening)
        for kind, _ in opening:
            self._emit(kind, emit)
        for _ in range(self.n):
            x = r.random()
            if x < 0.40:
                self.advance()
                self._emit("heartbeat", emit)
                self._emit("motor_cmd", emit)
            elif x < 0.58:
                self._emit("sensors", emit)
            elif x < 0.72:
                self.advance()
                self._emit("tick", emit)
            elif x < 0.79:
                self._emit("program", emit)
            elif x < 0.86:
                self._emit("approval", emit)
            elif x < 0.90:
                self._emit("fault_reset", emit)
            elif x < 0.92:
                self._emit(r.choice(("motor_broken", "motor_repaired", "sensor_eof")), emit)
            elif x < 0.96:
                self.advance()
                self._emit("motor_cmd", emit)  # a command without its heartbeat
            else:
                self.advance()
                self._emit("heartbeat", emit)

    def _emit(self, kind: str, emit: Any) -> None:
        r = self.r
        ev: dict[str, Any] = {"kind": kind, "now": self.t, "fresh": r.random() < 0.93}
        if kind == "motor_cmd":
            y = r.random()
            self.seq = self.seq + 1 if y < 0.9 else max(0, self.seq - r.choice((0, 1, 5)))
            ev.update(seq=self.seq, bolus=r.random() < 0.15)
            prog_rate = getattr(self, "program_rate", 0.0)
            ev["rate"] = min(1200.0, r.choice((prog_rate, prog_rate, prog_rate, 0.0, prog_rate * 1.5,
                                               r.uniform(0, 1200.0))))
        elif kind == "sensors":
            ev["sensors"] = self.sensors()
        elif kind == "program":
            ev["program"] = self.program()
        elif kind == "approval":
            ev["approval"] = self.approval()
        self.saw_writes(emit(ev))


def run_trace(rnd: random.Random, lib: DrugLibrary, core: h.CCore, probes: list[h.PyMonitor],
              record: list[Any] | None = None) -> int:
    """One trace through both cores; returns the number of events. Raises on the first difference."""
    maker = TraceMaker(rnd, lib)
    mono = h.FakeMonotonic()
    h.sm_py.time = mono  # type: ignore[assignment]  # the partition's staleness clock (the test restores it)
    py = h.PyMonitor(lib, maker.care_area, maker.scale, maker.ttl, maker.t, mono)
    probes[:] = [py]
    cfg = py.config()
    t0 = maker.t
    events: list[dict[str, Any]] = []
    first_py, first_c = py.start(), h.c_decision(core.init(cfg, maker.t))
    if first_py != first_c:
        raise AssertionError(f"at start: Python {first_py} != C {first_c}")

    def run_event(ev: dict[str, Any]) -> list[tuple[float, float, bool]]:
        events.append(ev)

        def trace() -> str:  # only when reporting a difference: building it per event was quadratic
            return "\n".join(f"  {e}" for e in events)

        try:
            dp = py.handle(ev)
        except h.Unmapped:
            raise
        except Exception as exc:
            raise AssertionError(f"the Python partition raised {type(exc).__name__}: {exc} at event {len(events)}; "
                                 f"trace (scale {maker.scale}, care area {maker.care_area}):\n{trace()}") from exc
        dc = h.c_decision(core.step(h.c_input(ev)))
        if dp != dc:
            raise AssertionError(f"decisions differ at event {len(events)} {ev['kind']}:\n  Python {dp}\n"
                                 f"  C      {dc}\ntrace (scale {maker.scale}, care area {maker.care_area}):\n{trace()}")
        m = py.mp.monitor
        maker.program_rate = m.program.rate_ml_h if m is not None and m.program is not None else 0.0
        return list(py.p.writes)

    maker.events(run_event)
    if record is not None:
        record.append((cfg, t0, events))
    return len(events)


# ----------------------------------------------------------------------------------------- tests
def test_drug_table_is_generated_from_the_library() -> None:
    table = h.CORE / "drug_table.c"
    assert sel4_drug_table.main([str(LIBRARY_PATH), "--check", str(table)]) == 0, (
        "drug_table.c is out of date: python -m septum_pump.sel4_drug_table drug_library.yaml"
        " -o sel4/core/drug_table.c")


def test_alarm_kinds_match() -> None:
    from septum_pump.therapy.alarms import AlarmKind

    assert [k.value for k in AlarmKind] == h.ALARMS, "an alarm kind was added or renamed: mirror it in the C core"


@pytest.mark.timeout(1800)
def test_c_core_decides_as_the_python_monitor(library: DrugLibrary, ccore: h.CCore, build: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h.sm_py, "time", h.FakeMonotonic())  # replaced per trace below
    probes = h.install_program_probes(monkeypatch)
    stats = {"traces": 0, "events": 0}
    recorded: list[Any] = []

    @settings(max_examples=TRACES, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(SEEDS)
    def one(rnd: random.Random) -> None:
        stats["events"] += run_trace(rnd, library, ccore, probes,
                                     recorded if len(recorded) < SANITIZED_TRACES else None)
        stats["traces"] += 1

    start = time.monotonic()
    one()
    elapsed = time.monotonic() - start
    print(f"\ndifferential: {stats['traces']} traces, {stats['events']} events, identical decisions, "
          f"{elapsed:.1f} s", file=sys.stderr)
    assert stats["traces"] >= TRACES

    # the same C code under ASan/UBSan, on the first traces, must give byte-identical outputs
    exe = h.build_driver(build, sanitize=True)
    payload, expected = bytearray(), bytearray()
    for cfg, t0, events in recorded:
        payload += len(events).to_bytes(4, "little", signed=True) + bytes(cfg) + _double(t0)
        expected += bytes(ccore.init(cfg, t0))
        for ev in events:
            inp = h.c_input(ev)
            payload += bytes(inp)
            expected += bytes(ccore.step(inp))
    run = subprocess.run([str(exe)], input=bytes(payload), capture_output=True, timeout=600)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
    assert run.stdout == bytes(expected), "the sanitized driver's outputs differ from the shared library's"
    print(f"sanitized (ASan+UBSan) replay: {len(recorded)} traces, identical", file=sys.stderr)


def _double(x: float) -> bytes:
    import struct

    return struct.pack("<d", x)


def test_cores_compile_for_the_protection_domains(build: Path) -> None:
    """aarch64, freestanding, no libc: what a Microkit PD links. Skipped (with the reason) without the
    cross compiler."""
    objs = h.cross_compile(build)
    if isinstance(objs, str):
        pytest.skip(f"cross compile skipped: {objs}")
    nm = subprocess.run(["aarch64-linux-gnu-nm", "-u", *map(str, objs)], capture_output=True, text=True, check=True)
    undefined = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip() and not line.endswith(":")}
    defined_here = subprocess.run(["aarch64-linux-gnu-nm", "--defined-only", *map(str, objs)], capture_output=True,
                                  text=True, check=True).stdout
    missing = {s for s in undefined if f" {s}\n" not in defined_here}
    assert not missing, f"the core needs symbols no PD provides: {sorted(missing)}"


# ----------------------------------------------------------------------------------------- pump_control
class ControlTraceMaker(TraceMaker):
    """Operations on the controller as pump_control makes them: programs and edits, the two-step start,
    pauses, stops, alarms from the monitor and their clearing, patient demands, and the control tick."""

    def ops(self, run_op: Any) -> None:
        r = self.r
        opening = ["program", "request_start", "confirm_start"] if r.random() < 0.8 else []
        for kind in opening:
            self._op(kind, run_op)
        for _ in range(self.n):
            x = r.random()
            if x < 0.45:
                self.advance()
                self._op("tick", run_op)
            elif x < 0.55:
                self._op("bolus", run_op)
            elif x < 0.63:
                self._op("program", run_op)
            elif x < 0.75:
                self._op(r.choice(("request_start", "confirm_start", "confirm_edit")), run_op)
            elif x < 0.80:
                self._op("alarm", run_op)
            elif x < 0.85:
                self._op(r.choice(("clear_alarm", "pause", "cancel_edit")), run_op)
            elif x < 0.89:
                self._op(r.choice(("stop", "emergency_stop", "new_patient")), run_op)
            elif x < 0.94:
                self._op("start_gate", run_op)
            else:
                self.advance()

    def _op(self, kind: str, run_op: Any) -> None:
        r = self.r
        op: dict[str, Any] = {"op": kind, "now": self.t, "clinician": r.random() < 0.93}
        if kind == "program":
            op["program"] = self.program()
            op["care_area"] = self.care_area
            op["reason"] = r.choice(["", "", "per protocol", "  ", "\tok\x1c", "bell\x07", "z" * 201])
        elif kind == "alarm":
            op["action"] = r.choice((0, 1, 2, 3))
        elif kind == "bolus":
            op["source"] = r.choice(["pca-button"] * 8 + ["keypad", "network"])
            op["hold_off"] = None if r.random() < 0.8 else self.t + r.choice((-1.0, 0.0, 60.0))
            op["reservoir"] = r.choice((None, None, 50.0, 1.0, 0.99, 0.0))
        elif kind == "start_gate":
            op["latched"] = r.random() < 0.2
            op["alarm"] = r.choice(["", "", "door-open", "reservoir-low", "occlusion", "controller-silent",
                                    "not-a-kind"])
            op["priority"] = r.choice(["none", "low", "medium", "high"])
        run_op(op)


def run_control_trace(rnd: random.Random, lib: DrugLibrary, ctrl: h.CControl) -> int:
    maker = ControlTraceMaker(rnd, lib)
    py = h.PyControl(lib, maker.pc, maker.t)
    ctrl.init(py.config(), maker.t)
    ops: list[dict[str, Any]] = []

    def run_op(op: dict[str, Any]) -> None:
        ops.append(op)

        def trace() -> str:
            return "\n".join(f"  {o}" for o in ops)

        try:
            dp = py.handle(op)
        except h.Unmapped:
            raise
        except Exception as exc:
            raise AssertionError(f"the Python controller raised {type(exc).__name__}: {exc}; "
                                 f"trace:\n{trace()}") from exc
        dc = h.control_c_decision(ctrl.step(h.control_c_input(op)))
        if dp != dc:
            raise AssertionError(f"controller decisions differ at operation {len(ops)} {op['op']}:\n  Python {dp}\n"
                                 f"  C      {dc}\ntrace (period {maker.pc}):\n{trace()}")

    maker.ops(run_op)
    return len(ops)


@pytest.mark.timeout(1800)
def test_c_control_core_decides_as_the_python_controller(library: DrugLibrary, ccore: h.CCore) -> None:
    ctrl = h.CControl(ccore)
    stats = {"traces": 0, "ops": 0}

    @settings(max_examples=TRACES, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(SEEDS)
    def one(rnd: random.Random) -> None:
        stats["ops"] += run_control_trace(rnd, library, ctrl)
        stats["traces"] += 1

    start = time.monotonic()
    one()
    elapsed = time.monotonic() - start
    print(f"\ncontrol differential: {stats['traces']} traces, {stats['ops']} operations, identical decisions, "
          f"{elapsed:.1f} s", file=sys.stderr)
    assert stats["traces"] >= TRACES
