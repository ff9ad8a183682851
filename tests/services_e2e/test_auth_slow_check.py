"""A credential check longer than two heartbeats does not get auth killed mid-login.

argon2id takes ~0.3 s per check with the production parameters on an idle 2-core host, and more on a loaded
one or with stronger provisioned parameters; the pump's auth beats every 500 ms and the supervisor kills a
partition silent for two beats. Auth used to run the check on its loop thread, so a slow check looked like a
hang: the supervisor killed auth, the login was lost, and the restarted auth (which had to compute its
unknown-user stand-in hash again) could be killed by the next one. That is how `septum attack
credential-search` got "no answer from auth" for both default logins in CI. Now the check runs in a helper
thread while the loop keeps beating (``Partition.beating``).

The test makes the check several heartbeat deadlines long on this machine (argon2 time cost calibrated
here, auth's heartbeat lowered to 100 ms in a copy of the test model) and asks for a login.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import yaml
from e2e_helpers import MODELS, require_root, tmpdir

from septum.model import load
from septum.runtime.supervisor import Supervisor, remove_state_dir
from septum.services.credentials import Argon2Params
from septum.services.provisioning import provision_device

sys.path.insert(0, str(MODELS))
sys.path.insert(0, str(MODELS.parents[2] / "examples" / "infusion_pump"))
from septum_pump.hospital.pki import HospitalPki
from svc_parts.board import Board

HEARTBEAT_MS = 100  # the supervisor kills auth after 200 ms of silence
CHECK_S = 1.0  # one credential check: five times that


def _slow_params() -> Argon2Params:
    """argon2id parameters whose check takes about CHECK_S here (a calibration, not an assertion on time)."""
    probe = Argon2Params(time_cost=8, memory_kib=8192)
    stored = probe.hasher().hash("480613")
    t0 = time.perf_counter()
    probe.hasher().verify(stored, "480613")
    per_pass = (time.perf_counter() - t0) / probe.time_cost
    return Argon2Params(time_cost=max(8, math.ceil(CHECK_S / per_pass)), memory_kib=8192)


def test_a_check_longer_than_two_heartbeats_answers_the_login(tmp_path: Path) -> None:
    require_root()
    raw = yaml.safe_load((MODELS / "auth_device.yaml").read_text())
    raw["partitions"]["auth"]["heartbeat_ms"] = HEARTBEAT_MS
    model_file = tmp_path / "auth_device.yaml"
    model_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    model, source = load(model_file)

    out = tmpdir("septum-prov-")
    pki = HospitalPki.generate()
    params = _slow_params()
    prov = provision_device(model_file, out / "dev", clinicians=["nurse1"], argon2=params,
                            hospital_ca_pem=pki.ca.cert_pem, machine_pins={"hospital.example": "hospital_server"})
    state = tmpdir("septum-svc-")
    board = Board()
    # the model's code (svc_parts) is beside the original test model
    sup = Supervisor(model, source, model_dir=MODELS, state_dir=state, check=False, provision=prov.folders,
                     hardware=board)
    sup.start()
    try:
        assert sup.wait_ready(20), "device did not become ready: " + "; ".join(sup.failures)
        started = sup.events.last_seq
        answers = []
        for rid, (user, pin) in enumerate([("nurse1", prov.pins["nurse1"]), ("admin", "000000")], start=1):
            after = sup.events.last_seq
            board.send("keypad", "ui_requests", request_id=rid, action="login", user=user, pin=pin, session="",
                       dose_rate=0.0, reason="")
            ev = sup.events.wait_for(lambda e, rid=rid: e.kind == "received" and e.partition == "ui"
                                     and e.fields.get("request_id") == rid, 30, after=after)
            killed = [f"{e.kind} {e.fields}" for e in sup.events.history
                      if e.seq > started and e.partition == "auth" and e.kind in ("heartbeat_missed", "kill",
                                                                                   "exited", "restart")]
            assert ev is not None, f"no answer to {user}'s login (time cost {params.time_cost}); auth: {killed}"
            answers.append((ev.fields["ok"], ev.fields["reason"]))
            assert not killed, killed
        assert answers == [(True, "logged in"), (False, "bad credential")], answers
    finally:
        sup.stop()
        board.close()
        remove_state_dir(state)
        remove_state_dir(out)
