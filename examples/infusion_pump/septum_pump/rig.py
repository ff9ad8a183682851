"""The pump test rig: the whole device under the real runtime, with the hardware simulator attached.

    with PumpRig(time_scale=60) as rig:
        assert rig.login()                                  # as the provisioned clinician
        rig.program("normal-saline", rate=100, vtbi=50)
        rig.start()
        rig.wait_until(lambda: rig.delivered_ml() > 1, timeout=10)
        rig.inject("occlusion"); rig.wait_until(lambda: not rig.motor_running(), timeout=2)

Services: ``services="real"`` runs ``examples/infusion_pump/model.yaml`` as written (the Septum auth, audit
and update services, provisioned with ``septum.services.provisioning``); ``services="doubles"`` runs a
variant of that model in which clearly named TEST DOUBLES (``tests/pump_e2e/models/pump_test_doubles``)
stand in for auth, audit, update and network; ``"auto"`` picks real when the services are installed.
Every wait is bounded and synchronised on device events or simulator state, never on sleeps.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.model import load
from septum.runtime.events import Event
from septum.runtime.supervisor import Supervisor, remove_state_dir

from .device_info import drug_library_path, model_path
from .sim import Fault, Simulator
from .therapy.keypad import DEBOUNCE_S, NUMERIC_FIELDS

PUMP_DIR = Path(__file__).resolve().parent.parent  # holds the septum_pump package: a checkout's or site-packages
MODEL = model_path()  # package data (septum_pump/data), so an installed pump finds its model too
LIBRARY = drug_library_path()
# the test doubles live in a checkout's tests/ only (services="doubles"); an installed pump runs real services
DOUBLES = PUMP_DIR.parent.parent / "tests" / "pump_e2e" / "models" / "pump_test_doubles"
DOUBLED = {"auth": "auth", "audit": "audit", "update": "update", "network": "network"}
CLINICIAN = "nurse1"


class RigError(RuntimeError):
    pass


UPDATE_SERVER = "updates.hospital.example"  # the bench hospital's update server identity (real services)


def free_tcp_ports(n: int) -> list[int]:
    """``n`` distinct loopback TCP ports free right now (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def real_services_available() -> bool:
    names = ("septum.services.auth_service", "septum.services.audit_service", "septum.services.update_service",
             "septum.services.provisioning")
    try:
        return all(importlib.util.find_spec(n) is not None for n in names)
    except ImportError:
        return False


# The simulated hardware (and the supervisor) run as threads of the process that opens the rig. A full
# garbage collection of that process holds the GIL for as long as its heap takes to scan: ~140 ms for the
# ~260,000 objects a pytest session holds after collection, longer than the safety monitor's sensor
# staleness limit, so a loaded test session saw false "sensor reading missing" faults that no sensor board
# would cause. While a rig runs, the heap it found is frozen (gc.freeze): collections scan only what the run
# creates. It is released when the last rig closes, so nothing is kept alive for longer than before.
_heap_holds = 0


def _hold_host_heap() -> None:
    global _heap_holds
    _heap_holds += 1
    gc.freeze()


def _release_host_heap() -> None:
    global _heap_holds
    _heap_holds -= 1
    if _heap_holds == 0:
        gc.unfreeze()


class PumpRig:
    def __init__(self, *, time_scale: float = 60.0, services: str = "auto", ready_timeout: float = 30.0) -> None:
        if services == "auto":
            services = "real" if real_services_available() else "doubles"
        if services not in ("real", "doubles"):
            raise ValueError("services must be 'real', 'doubles' or 'auto'")
        self.services = services
        self.time_scale = time_scale
        self.ready_timeout = ready_timeout
        self.sim = Simulator()
        self.sup: Supervisor | None = None
        self.pins: dict[str, str] = {}
        self.pki: Any = None  # the bench hospital's PKI (real services only)
        self.provisioned: Any = None  # provisioning.Provisioned (real services only)
        # real services: keys and credentials sealed at rest under this device key (a root-only file standing
        # in for a TPM-sealed key; septum.crypto.secrets_at_rest), outside every partition's folder
        self.device_key: Any = None
        self.hospital_dir: Path | None = None  # the hospital side's CA, client and listener credentials
        self.ports: dict[str, int] = {}  # network interface -> loopback TCP port of this run
        self._tmp: list[Path] = []
        self._last_press: tuple[tuple[str, str], float] | None = None
        self._held_heap = False

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> PumpRig:
        try:
            self.start_device()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _mkdtemp(self, prefix: str) -> Path:
        d = Path(tempfile.mkdtemp(prefix=prefix))  # under /tmp: partitions (other uids) must traverse it
        os.chmod(d, 0o711)  # noqa: S103 - traverse only
        self._tmp.append(d)
        return d

    def start_device(self) -> None:
        # the network partition may listen only on its interfaces' ports (Landlock): on a bench, free
        # loopback ports stand in for the model's 8443/2575
        self.ports = dict(zip(("hospital_https", "hospital_mllp"), free_tcp_ports(2), strict=True))
        if self.services == "real":
            model_path, provision, check = self._real_setup()
        else:
            model_path, provision, check = self._doubles_setup()
        model, source = load(model_path)
        state = self._mkdtemp("septum-pump-run-")
        self.sup = Supervisor(model, source, model_dir=model_path.parent, state_dir=state,
                              time_scale=self.time_scale, provision=provision, hardware=self.sim, check=check,
                              ready_timeout=self.ready_timeout, ports=self.ports,
                              device_key=self.device_key.path if self.device_key is not None else None)
        self.sim.clock = self.sup.clock
        _hold_host_heap()
        self._held_heap = True
        self.sim.start()
        self.sup.start()
        if not self.sup.wait_ready(self.ready_timeout):
            raise RigError("the pump did not become ready: " + "; ".join(self.sup.failures))
        for part in ("pump_control", "safety_monitor"):
            ev = self.wait_event(lambda e, part=part: e.kind == "drug_library_installed" and e.partition == part,
                                 timeout=10, after=0)
            if ev is None:
                raise RigError(f"{part} never installed a verified drug library")

    def close(self) -> None:
        if self.sup is not None:
            self.sup.stop()
        self.sim.stop()
        if self._held_heap:
            self._held_heap = False
            _release_host_heap()
        for d in self._tmp:
            remove_state_dir(d)
        self._tmp.clear()

    # ------------------------------------------------------------------ set-up of the two variants
    def _real_setup(self) -> tuple[Path, dict[str, Path], bool]:
        from septum.services import provisioning

        from .hospital import pki as hospital_pki

        out = self._mkdtemp("septum-pump-prov-")
        from septum.crypto.secrets_at_rest import create_device_key

        self.device_key = create_device_key(out / "device-key" / "device.key")
        data = LIBRARY.read_bytes()
        # the hospital's PKI for this bench: its CA signs the pump's TLS certificate and the hospital's
        # client certificate; auth pins the client identity to the hospital_server role
        self.pki = hospital_pki.HospitalPki.generate()
        self.hospital_dir = self.pki.write_hospital(self._mkdtemp("septum-hospital-"))
        result = provisioning.provision_device(
            MODEL, out / "device", clinicians=[CLINICIAN], biomeds=["biomed1"],
            drug_library=(data, int(yaml.safe_load(data)["version"])),
            hospital_ca_pem=self.pki.ca.cert_pem, machine_pins={"hospital.example": "hospital_server",
                                                             UPDATE_SERVER: "update_server"},
            device_key=self.device_key)
        self.pins = dict(result.pins)
        self.provisioned = result  # the manufacturer key generated for this bench signs test update bundles
        folders = {k: Path(v) for k, v in result.folders.items()}
        folders["network"] = hospital_pki.provision_network(
            out / "network", self.pki, https_port=self.ports["hospital_https"], mllp_port=self.ports["hospital_mllp"],
            device_key=self.device_key)
        return MODEL, folders, True

    def _doubles_setup(self) -> tuple[Path, dict[str, Path], bool]:
        work = self._mkdtemp("septum-pump-doubles-")
        os.chmod(work, 0o755)  # noqa: S103 - the partitions import code from here: they must list it
        raw = yaml.safe_load(MODEL.read_text())
        code_dirs = {str(PUMP_DIR.resolve()): "r", str(DOUBLES.parent.resolve()): "r"}
        for name, part in raw["partitions"].items():
            if name in DOUBLED:
                part.pop("service", None)
                part["runs"] = f"pump_test_doubles.{DOUBLED[name]}:main"
            allow = part.setdefault("allow", {})
            allow.setdefault("files", {}).update(code_dirs)
        (work / "model.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        (work / "septum_pump").symlink_to(PUMP_DIR / "septum_pump")
        (work / "pump_test_doubles").symlink_to(DOUBLES)
        prov = {p: work / "provision" / p for p in ("auth", "update", "pump_control", "safety_monitor")}
        for d in prov.values():
            d.mkdir(parents=True)
        key = Ed25519PrivateKey.generate()
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        for p in ("pump_control", "safety_monitor"):
            (prov[p] / "manufacturer.pub").write_bytes(pub)
        data = LIBRARY.read_bytes()
        version = int(yaml.safe_load(data)["version"])
        (prov["update"] / "library.yaml").write_bytes(data)
        (prov["update"] / "library.json").write_text(json.dumps({"version": version,
                                                                 "signature": key.sign(data).hex()}))
        self.pins = {CLINICIAN: f"{secrets.randbelow(10**6):06d}", "biomed1": f"{secrets.randbelow(10**6):06d}"}
        users = {CLINICIAN: {"pin": self.pins[CLINICIAN], "role": "clinician"},
                 "biomed1": {"pin": self.pins["biomed1"], "role": "biomed"}}
        (prov["auth"] / "users.json").write_text(json.dumps(users))
        return work / "model.yaml", prov, False  # a test variant: the analysis gate is for the real model

    # ------------------------------------------------------------------ events
    @property
    def supervisor(self) -> Supervisor:
        if self.sup is None:
            raise RigError("the device is not running")
        return self.sup

    def seq(self) -> int:
        return self.supervisor.events.last_seq

    def wait_event(self, pred: Callable[[Event], bool], timeout: float = 5.0, after: int | None = None) -> Event | None:
        return self.supervisor.events.wait_for(pred, timeout, after=self.seq() if after is None else after)

    def events(self, kind: str | None = None, partition: str | None = None) -> list[Event]:
        return [e for e in self.supervisor.events.history
                if (kind is None or e.kind == kind) and (partition is None or e.partition == partition)]

    def wait_until(self, pred: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Bounded wait for a condition on the device (re-checked whenever the simulator changes state)."""
        return self.sim.wait_until(lambda _sim: pred(), timeout)

    # ------------------------------------------------------------------ acting as people
    def _act(self, action: str, keys: list[tuple[str, str]], timeout: float = 5.0) -> tuple[bool, str]:
        """Press keys; the outcome is auth's refusal, or what the handling partition did with it."""
        after = self.seq()
        lost: list[str] = []
        for k, v in keys:
            lost += self.press(k, v)

        def done(e: Event) -> bool:
            f = e.fields
            if e.kind == "auth_reply" and f.get("action") == action and not f.get("ok"):
                return True
            if action == "login":
                return e.kind == "auth_reply" and f.get("action") == "login"
            if action == "clear_fault":
                return e.kind == "fault_reset" and e.partition == "safety_monitor"
            return e.kind == "command" and e.partition == "pump_control" and f.get("action") == action

        ev = self.wait_event(done, timeout, after=after)
        if ev is None:
            return False, f"{action}: no outcome within {timeout}s ({self._trace(after, lost)})"
        f = ev.fields
        if ev.kind == "auth_reply":
            return bool(f.get("ok")), str(f.get("reason", ""))
        if ev.kind == "fault_reset":
            return True, str(f.get("restart", ""))
        return bool(f.get("ok")), str(f.get("result", ""))

    def _trace(self, after: int, lost: list[str]) -> str:
        """What the device did after an action's keys, for a timeout's message: a bench tester (or the next
        person reading a CI log) sees whether the keys arrived, the ui asked auth, or a partition restarted."""
        seen = [f"{e.partition or 'supervisor'}:{e.kind}" for e in self.supervisor.events.history if e.seq > after]
        states = {n: p.state.name.lower() for n, p in self.supervisor.table.procs.items() if n in ("ui", "auth")}
        parts = [f"keys not delivered: {' '.join(lost)}" if lost else "every key delivered",
                 f"events after the keys: {', '.join(seen[-12:]) or 'none'}",
                 ", ".join(f"{n} {s}" for n, s in states.items())]
        return "; ".join(p for p in parts if p)

    def press(self, key: str, value: str = "") -> list[str]:
        """Press keys as a person does: a numeric field (pin, rate, ...) is selected, its value typed on the
        digit keys and entered; the same key twice is pressed no faster than a finger (the ui partition takes
        a repeat within its debounce interval for contact bounce). Returns the keys the keypad could not
        deliver (not connected, or the ui's input full), which a real finger would not notice either."""
        if key in NUMERIC_FIELDS and value:
            text = value if key == "pin" else f"{float(value):f}".rstrip("0").rstrip(".")
            seq = [key, *("decimal" if ch == "." else ch for ch in text), "enter"]
            return [lost for k in seq for lost in self.press(k)]
        last = self._last_press
        if last is not None and last[0] == (key, value):
            time.sleep(max(0.0, last[1] + 1.5 * DEBOUNCE_S - time.monotonic()))
        delivered = self.sim.press_key(key, value)
        self._last_press = ((key, value), time.monotonic())
        return [] if delivered else [key]

    def login(self, pin: str | None = None, user: str = CLINICIAN) -> bool:
        pin = self.pins.get(user, "") if pin is None else pin
        ok, _ = self._act("login", [("user", user), ("pin", pin), ("login", "")])
        return ok

    def program(self, drug: str, rate: float, vtbi: float, concentration: float = 1.0,
                weight: float = 0.0, pca: dict[str, float] | None = None) -> tuple[bool, str]:
        """``pca``: the per-patient PCA fields by key (demand, lockout, per_hour, limit_1h, limit_4h, bolus_count)."""
        keys = [("drug", drug), ("concentration", repr(concentration)), ("rate", repr(rate)),
                ("vtbi", repr(vtbi)), ("weight", repr(weight)),
                *((k, repr(v)) for k, v in (pca or {}).items()), ("program", "")]
        return self._act("program_infusion", keys)

    def clinician_bolus(self, dose: float, reason: str) -> tuple[bool, str]:
        """A logged-in clinician gives a bolus of ``dose`` (the drug's amount unit) from the keypad."""
        return self._act("clinician_bolus", [("bolus_dose", repr(dose)), ("reason", reason), ("clinician_bolus", "")])

    def override(self, reason: str) -> tuple[bool, str]:
        return self._act("override_soft_limit", [("reason", reason), ("override", "")])

    def start(self) -> tuple[bool, str]:
        """The two-step start: start, then confirm."""
        ok, text = self._act("start_infusion", [("start", "")])
        if not ok:
            return ok, text
        return self._act("start_infusion", [("confirm", "")])

    def pause(self) -> tuple[bool, str]:
        return self._act("pause_infusion", [("pause", "")])

    def stop_infusion(self) -> tuple[bool, str]:
        return self._act("stop_infusion", [("stop", "")])

    def emergency_stop(self) -> tuple[bool, str]:
        return self._act("emergency_stop", [("emergency_stop", "")])

    def clear_fault(self, reason: str = "checked the pump") -> tuple[bool, str]:
        return self._act("clear_fault", [("reason", reason), ("clear_fault", "")])

    def run_infusion(self, drug: str, rate: float, vtbi: float, *, purpose: str) -> None:
        """Log in as the clinician, clear a fault latched while the device came up (e.g. a late first sensor
        frame), program, two-step start, and wait until the motor runs; RigError names the step that failed.
        ``purpose`` goes into the fault-clearing reason, so the audit log says who cleared it and why."""
        if not self.login():
            raise RigError("the provisioned clinician could not log in")
        if self.alarms():
            self.clear_fault(f"{purpose}: start-up fault cleared before the infusion")
        ok, why = self.program(drug, rate=rate, vtbi=vtbi)
        if not ok:
            raise RigError(f"program refused: {why}")
        ok, why = self.start()
        if not ok:
            raise RigError(f"start refused: {why}")
        if not self.wait_until(self.motor_running, timeout=10):
            raise RigError("the motor never started")

    def bolus(self, timeout: float = 5.0) -> tuple[bool, str]:
        """The patient presses the PCA button; (granted, reason)."""
        after = self.seq()
        self.sim.press_pca()
        ev = self.wait_event(lambda e: e.kind == "command" and e.partition == "pump_control"
                             and e.fields.get("action") == "patient_bolus", timeout, after=after)
        if ev is None:
            return False, "no outcome"
        return bool(ev.fields.get("ok")), str(ev.fields.get("result", ""))

    # ------------------------------------------------------------------ the physical world
    def inject(self, fault: Fault | str) -> float:
        return self.sim.inject(fault)

    def clear(self, fault: Fault | str) -> None:
        self.sim.clear(fault)

    def kill(self, partition: str, how: str = "kill") -> float:
        """SIGKILL a partition (``how="kill"``) or freeze it (``how="hang"``: SIGSTOP, so it goes silent
        without exiting). Returns time.monotonic() of the signal."""
        pid = self.supervisor.partition_pids().get(partition)
        if pid is None:
            raise RigError(f"{partition} is not running")
        at = time.monotonic()
        os.kill(pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        return at

    def device_time(self) -> float:
        return self.supervisor.clock.now()

    def delivered_ml(self) -> float:
        return self.sim.delivered_ml()

    def motor_running(self) -> bool:
        return self.sim.motor_running()

    def display(self) -> list[str]:
        return list(self.sim.snapshot()["display"])

    def alarms(self) -> list[str]:
        """Every alarm the safety monitor raised so far, in order."""
        out: list[str] = []
        for e in self.events("alarm", "safety_monitor"):
            out += [a for a in str(e.fields.get("alarms", "")).split(",") if a]
        return out

    def pump_state(self) -> str:
        evs = self.events("pump_state", "pump_control")
        return str(evs[-1].fields.get("state")) if evs else "unknown"

    def audit_records(self) -> list[dict[str, Any]]:
        """The audit log as the audit partition stored it (test doubles: JSON lines; real: the chained log)."""
        ddir = self.supervisor.data_dir("audit")
        if self.services == "doubles":
            path = ddir / "audit.jsonl"
            if not path.exists():
                return []
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        from septum.services import audit_log

        out: list[dict[str, Any]] = []
        for log in sorted(ddir.rglob("*.log")):
            entries, _damage = audit_log.read_entries(log)
            for en in entries:
                rec = en.body
                if not isinstance(rec, audit_log.Record):
                    continue  # checkpoints seal the chain; they are not events
                # the same shape as the test doubles' records: `detail` is the event's text
                out.append({"seq": en.seq, "time": rec.time, "partition": rec.partition, "event": rec.event,
                            "severity": rec.severity, "detail": rec.message, "principal": rec.principal,
                            "fields": rec.detail})
        return out

    def copy_state(self, dest: Path) -> None:
        """Keep the run's state dir (events, logs, data) as evidence."""
        shutil.copytree(self.supervisor.state_dir, dest, dirs_exist_ok=True)
