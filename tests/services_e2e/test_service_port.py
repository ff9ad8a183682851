"""The service console served by auth on the service_port UART (models/service_port_device.yaml, a bench
build with the port enabled): biomed login, reads and bounded writes, every decision audited, values kept
across a restart of auth; and the reference pump ships it disabled, so nothing serves it there."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import MODELS, PUMP_MODEL, require_root, running, tmpdir

from septum.analysis import check
from septum.model import load
from septum.runtime.devices import device_interfaces
from septum.runtime.supervisor import Supervisor, remove_state_dir
from septum.services import audit_log
from septum.services.credentials import Argon2Params
from septum.services.provisioning import provision_device

sys.path.insert(0, str(MODELS))
from svc_parts.board import Board

CHEAP = Argon2Params(time_cost=1, memory_kib=8192)
MODEL = "service_port_device.yaml"


class Console:
    def __init__(self, sup: Supervisor, board: Board, pins: dict[str, str]) -> None:
        self.sup, self.board, self.pins = sup, board, pins

    def cmd(self, text: str | bytes) -> str:
        sock = self.board.ends["service_port"]
        sock.send(text.encode() if isinstance(text, str) else text)
        sock.settimeout(15)
        return sock.recv(65536).decode()

    def records(self, event: str) -> list[dict[str, Any]]:
        entries, _ = audit_log.read_entries(self.sup.data_dir("audit") / "audit.log")
        out = []
        for e in entries:
            r = e.body
            if isinstance(r, audit_log.Record) and r.event == event:
                try:
                    detail = json.loads(r.message)
                except ValueError:
                    detail = dict(r.detail)
                out.append(detail)
        return out

    def wait_records(self, event: str, pred: Any, timeout: float = 10.0, count: int = 1) -> list[dict[str, Any]]:
        """The matching records once at least ``count`` are in the log (bounded wait)."""
        end = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        while time.monotonic() < end:
            found = [d for d in self.records(event) if pred(d)]
            if len(found) >= count:
                return found
            time.sleep(0.1)
        return found


@pytest.fixture
def console() -> Iterator[Console]:
    require_root()
    out = tmpdir("septum-prov-")
    prov = provision_device(MODELS / MODEL, out / "dev", clinicians=["nurse1"], biomeds=["bio1"], argon2=CHEAP)
    board = Board()
    try:
        with running(MODEL, provision=prov.folders, hardware=board, check=False) as sup:
            yield Console(sup, board, prov.pins)
    finally:
        board.close()
        remove_state_dir(out)


def test_reads_need_a_biomed_login_and_every_refusal_is_audited(console: Console) -> None:
    assert console.cmd("status").startswith("error action 'service_read' needs an authenticated principal")
    assert console.cmd(f"login bio1 {int(console.pins['bio1']) ^ 1:06d}").startswith("error bad credential")
    assert console.wait_records("auth.login-failed", lambda d: d.get("principal") == "bio1")
    assert console.cmd(f"login nurse1 {console.pins['nurse1']}").startswith("ok logged in as nurse1 (clinician)")
    answer = console.cmd("get")
    assert answer.startswith("error role 'clinician' may not perform 'service_read'"), answer
    denied = console.wait_records("auth.denied", lambda d: d.get("action") == "service_read"
                                  and d.get("principal") == "nurse1")
    assert denied and denied[0]["interface"] == "service_port"
    assert console.cmd(b"\xff\xfe not text").startswith("error malformed command")
    assert console.wait_records("service.malformed", lambda d: True)
    assert console.cmd("reboot").startswith("error unknown command")


def test_a_biomed_reads_status_and_writes_bounded_values_audited_and_kept_across_a_restart(console: Console) -> None:
    assert console.cmd(f"login bio1 {console.pins['bio1']}").startswith("ok logged in as bio1 (biomed)")
    status = console.cmd("status")
    assert status.startswith("ok ") and json.loads(status[3:])["device"] == "auth-test", status
    assert json.loads(console.cmd("get")[3:]) == {"grant_s": 300, "lockout.free_attempts": 3,
                                                   "session_timeout_s": 300}
    assert console.cmd("set grant_s 120") == "ok grant_s=120 (was 300)"
    written = console.wait_records("service.config-written", lambda d: d.get("key") == "grant_s")
    assert written and written[0]["principal"] == "bio1" and written[0]["old"] == 300 and written[0]["new"] == 120
    for bad in ("set grant_s 5", "set grant_s nan", "set lockout.free_attempts 2.5"):
        assert console.cmd(bad).startswith("error "), bad
    refused = console.wait_records("service.write-refused", lambda d: d.get("principal") == "bio1", count=3)
    assert len(refused) == 3, refused
    assert console.cmd("set pump_rate 999").startswith("error usage: set KEY VALUE")
    assert json.loads(console.cmd("get")[3:])["grant_s"] == 120
    # auth restarted: the value a biomed wrote is still in force; the login is not (sessions are not kept)
    old = console.sup.partition_pids()["auth"]
    after = console.sup.events.last_seq
    os.kill(old, signal.SIGKILL)
    ev = console.sup.events.wait_for(lambda e: e.kind == "ready" and e.partition == "auth", 30, after=after)
    assert ev is not None, "auth did not come back"
    assert console.cmd("get").startswith("error action 'service_read' needs an authenticated principal")
    assert console.cmd(f"login bio1 {console.pins['bio1']}").startswith("ok")
    assert json.loads(console.cmd("get")[3:])["grant_s"] == 120


def test_the_reference_pump_ships_the_service_port_disabled() -> None:
    model, _ = load(PUMP_MODEL)
    assert model.interfaces["service_port"].enabled is False
    assert device_interfaces(model, "auth") == ()  # the runtime gives auth no service console at all
    # enabling it in the production profile is a finding the runtime's gate refuses without --allow-debug
    bench, _ = load(MODELS / MODEL)
    assert "ISO002" in {f.rule for f in check(bench).findings}
    assert "ISO002" not in {f.rule for f in check(model).findings}
