"""The device the attack suite attacks: the reference pump under the real runtime, plus an attacker's foothold.

``AttackRig`` is a ``PumpRig`` whose model is generated in a temp dir from ``model.yaml`` and identical to it
except for one line: the network partition ``runs: septum_pump.attacks.inside_network:main``. That entry point
runs the real network partition (the hospital link with its TLS listeners) and, in the same sandboxed
process, an attacker that acts when the rig hands it a request file (see ``inside_network``). So the
hospital-side scenarios attack the real link, and the "compromised network partition" scenarios run attacker
code with exactly the network partition's uid, namespaces, seccomp filter, Landlock rules and channel ends.

Services: the Septum auth, audit and update service partitions when they are installed. Until they all are,
the missing ones are the rig's clearly named TEST DOUBLES; ``services_real`` says which case this is, and
scenarios whose defence lives in a doubled service say so instead of passing (see ``ScenarioResult``).
The network partition is always provisioned with TLS material generated here (``hospital.pki``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.crypto.keys import load_private_key, load_public_key
from septum.runtime.events import Event
from septum.services import audit_log
from septum.services.provisioning import generate_pin

from ..hospital.pki import HospitalPki, provision_network
from ..rig import CLINICIAN, DOUBLES, LIBRARY, MODEL, PUMP_DIR, PumpRig, RigError

ATTACKER_ENTRY = "septum_pump.attacks.inside_network:main"
REQUEST_FILE = "attack-request.json"  # written by the rig into the network partition's data dir
HOSPITAL_ID = "hospital.example"
UPDATE_SERVER_ID = "updates.hospital.example"
BASELINE = {"drug": "normal-saline", "rate": 20.0, "vtbi": 1000.0}  # mL/h, mL: hours of therapy, small volume


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def service_status() -> dict[str, bool]:
    """Which Septum service partitions are installed (the others run as test doubles)."""
    return {s: _have(f"septum.services.{s}_service") for s in ("auth", "audit", "update")}


class AttackRig(PumpRig):
    """The pump with an attacker's foothold in its network partition (dormant until ``inside``)."""

    def __init__(self, *, time_scale: float = 10.0, ready_timeout: float = 30.0, compromised: bool = True) -> None:
        super().__init__(time_scale=time_scale, services="real", ready_timeout=ready_timeout)
        self.compromised = compromised
        self.status = service_status()
        self.services_real = all(self.status.values()) and _have("septum.services.provisioning")
        self.services = "real" if self.services_real else "doubles"
        self.pki = HospitalPki.generate(hospital_id=HOSPITAL_ID)
        self.hospital_dir: Path | None = None
        self.prov_dir: Path | None = None
        self.manufacturer_key: Ed25519PrivateKey | None = None
        self.audit_pub: Path | None = None
        self.https_port = 0
        self.mllp_port = 0
        self.model_dir: Path | None = None
        self._req = 0

    # ------------------------------------------------------------------ set-up
    def _real_setup(self) -> tuple[Path, dict[str, Path], bool]:
        return self._setup()

    def _doubles_setup(self) -> tuple[Path, dict[str, Path], bool]:
        return self._setup()

    def _setup(self) -> tuple[Path, dict[str, Path], bool]:
        from septum.services import provisioning

        work = self._mkdtemp("septum-attack-model-")
        os.chmod(work, 0o755)  # noqa: S103 - partitions import code from here: they must list it
        self.model_dir = work
        raw = yaml.safe_load(MODEL.read_text())
        doubled = [s for s, ok in self.status.items() if not ok]
        code_dirs = {str(PUMP_DIR.resolve()): "r", str(DOUBLES.parent.resolve()): "r"}
        for name, part in raw["partitions"].items():
            if name == "network" and self.compromised:
                part["runs"] = ATTACKER_ENTRY
            if name in doubled:
                part.pop("service", None)
                part["runs"] = f"pump_test_doubles.{name}:main"
            # the code is reached through the symlinks below; Landlock sees the resolved path
            part.setdefault("allow", {}).setdefault("files", {}).update(code_dirs)
        (work / "model.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        (work / "septum_pump").symlink_to(PUMP_DIR / "septum_pump")
        (work / "pump_test_doubles").symlink_to(DOUBLES)
        model_path = work / "model.yaml"

        out = self._mkdtemp("septum-attack-prov-")
        os.rmdir(out)  # provision_device wants a fresh folder of its own
        lib = LIBRARY.read_bytes()
        version = int(yaml.safe_load(lib)["version"])
        if self.services_real:
            res = provisioning.provision_device(
                model_path, out, clinicians=[CLINICIAN], biomeds=["biomed1"], drug_library=(lib, version),
                hospital_ca_pem=self.pki.ca.cert_pem,
                machine_pins={HOSPITAL_ID: "hospital_server", UPDATE_SERVER_ID: "update_server"})
            self.pins = dict(res.pins)
        else:
            res = provisioning.provision_device(model_path, out)
        folders = {k: Path(v) for k, v in res.folders.items()}
        assert res.manufacturer_key is not None
        self.manufacturer_key = load_private_key(res.manufacturer_key)
        self.audit_pub = res.audit_public_key
        if not self.services_real:
            folders.update(self._double_files(out, lib, version))
        folders["network"] = provision_network(out / "network", self.pki, https_port=self.ports["hospital_https"],
                                               mllp_port=self.ports["hospital_mllp"])
        self.prov_dir = out
        self.hospital_dir = self.pki.write_hospital(self._mkdtemp("septum-attack-hospital-"))
        # a variant model (a different `runs:` and code dirs) is still checked when it runs real services
        return model_path, folders, self.services_real

    def _double_files(self, out: Path, lib: bytes, version: int) -> dict[str, Path]:
        """What the doubled auth/update and the therapy partitions need (as ``PumpRig`` doubles mode)."""
        from cryptography.hazmat.primitives import serialization

        assert self.manufacturer_key is not None
        key = self.manufacturer_key
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        folders: dict[str, Path] = {}
        for p in ("auth", "update", "pump_control", "safety_monitor"):
            folders[p] = out / p
            folders[p].mkdir(exist_ok=True)
        for p in ("pump_control", "safety_monitor"):
            (folders[p] / "manufacturer.pub").write_bytes(pub)
        (folders["update"] / "library.yaml").write_bytes(lib)
        (folders["update"] / "library.json").write_text(json.dumps({"version": version,
                                                                     "signature": key.sign(lib).hex()}))
        self.pins = {CLINICIAN: generate_pin(), "biomed1": generate_pin()}
        users = {CLINICIAN: {"pin": self.pins[CLINICIAN], "role": "clinician"},
                 "biomed1": {"pin": self.pins["biomed1"], "role": "biomed"}}
        (folders["auth"] / "users.json").write_text(json.dumps(users))
        return folders

    def start_device(self) -> None:
        super().start_device()
        ev = self.wait_event(lambda e: e.kind == "listening" and e.partition == "network", timeout=10, after=0)
        if ev is None:
            raise RigError("the network partition never reported its TLS listeners")
        self.https_port = int(ev.fields["https"])
        self.mllp_port = int(ev.fields["mllp"])

    # ------------------------------------------------------------------ therapy baseline
    def start_baseline(self) -> None:
        """A running infusion the attacks must not change (low rate: it lasts the whole suite)."""
        self.run_infusion(BASELINE["drug"], BASELINE["rate"], BASELINE["vtbi"], purpose="attack suite")

    def restore_baseline(self) -> None:
        """After a fail-safe stop: the clinician clears the latched fault and restarts the baseline."""
        self.login()
        self.clear_fault("attack suite: restart after a fail-safe stop")
        self.program(BASELINE["drug"], rate=BASELINE["rate"], vtbi=BASELINE["vtbi"])
        self.start()
        self.wait_until(self.motor_running, timeout=10)

    # ------------------------------------------------------------------ the attacker inside
    def inside(self, family: str, timeout: float = 60.0, *, or_until: Any = None, **params: Any) -> Event:
        """Ask the attacker in the network partition to run ``family``; its ``attack_report`` event.

        ``or_until``: an event predicate that also ends the wait (e.g. the attacker's own exit); that event
        is returned instead of a report."""
        if not self.compromised:
            raise RigError("this device has no attacker in its network partition")
        self._req += 1
        req = {"id": self._req, "family": family, "params": params}
        ddir = self.supervisor.data_dir("network")
        tmp = ddir / f".{REQUEST_FILE}.tmp"
        tmp.write_text(json.dumps(req))
        os.chmod(tmp, 0o644)  # the partition's uid must read it (root writes it)
        after = self.seq()
        os.replace(tmp, ddir / REQUEST_FILE)

        def done(e: Event) -> bool:
            if e.kind == "attack_report" and e.partition == "network" and e.fields.get("id") == req["id"]:
                return True
            return or_until is not None and bool(or_until(e))

        ev = self.wait_event(done, timeout=timeout, after=after)
        if ev is None:
            raise RigError(f"the attacker never reported on {family!r} within {timeout}s")
        return ev

    def put_network_file(self, name: str, data: bytes) -> None:
        """Hand the attacker a file (e.g. a crafted bundle), as if it had been downloaded."""
        path = self.supervisor.data_dir("network") / name
        path.write_bytes(data)
        os.chmod(path, 0o644)

    # ------------------------------------------------------------------ audit
    def audit_log_path(self) -> Path:
        return self.supervisor.data_dir("audit") / "audit.log"

    def verify_audit(self) -> tuple[bool, str]:
        """Verify the hash chain, the checkpoint signatures and the head against the provisioned audit key."""
        path = self.audit_log_path()
        if self.audit_pub is None or not path.exists():
            return False, "no audit log (audit service not running as the Septum service)"
        pub = load_public_key(self.audit_pub)
        res = audit_log.verify(path, pub)
        if not res.ok and res.damage is not None and res.damage.kind in ("torn-tail", "unsealed"):
            # the writer was mid-append while we read: read again once the next commit is durable
            if self.wait_until(lambda: audit_log.verify(path, pub).ok, timeout=2):
                res = audit_log.verify(path, pub)
        if not res.ok:
            return False, res.damage.describe() if res.damage else "verify failed"
        return True, f"{res.records} records, {res.checkpoints} checkpoints, {res.unsealed} unsealed"

    def audit_since(self, start_seq: int) -> list[dict[str, Any]]:
        path = self.audit_log_path()
        if not path.exists():
            return []
        entries, _damage = audit_log.read_entries(path)  # a torn tail (mid-append) just ends the list
        return [msgspec.structs.asdict(en.body) | {"seq": en.seq} for en in entries
                if en.seq >= start_seq and isinstance(en.body, audit_log.Record)]

    def audit_last_seq(self) -> int:
        path = self.audit_log_path()
        if not path.exists():
            return -1
        entries, _ = audit_log.read_entries(path)
        return entries[-1].seq if entries else -1

    def wait_audit(self, pred: Any, start_seq: int, timeout: float = 5.0) -> dict[str, Any] | None:
        """The first audit record after ``start_seq`` matching ``pred`` (bounded wait: the log is group-committed)."""
        found: list[dict[str, Any]] = []

        def check() -> bool:
            for rec in self.audit_since(start_seq):
                if pred(rec):
                    found.append(rec)
                    return True
            return False

        self.wait_until(check, timeout=timeout)
        return found[0] if found else None

    def keep_evidence(self, dest: Path) -> None:
        shutil.copytree(self.supervisor.state_dir, dest, dirs_exist_ok=True)


def make_rig(**kw: Any) -> AttackRig:
    return AttackRig(**kw)


def tmp_root() -> Path:
    return Path(tempfile.gettempdir())
