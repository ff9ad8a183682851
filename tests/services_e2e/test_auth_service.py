"""The auth service under the real runtime, with test relays in place of the pump's ui, network and
handlers (models/auth_device.yaml). Argon2 runs with the library's lowest accepted cost (t=1, 8 MiB) so
that brute-force tests are quick; production provisioning uses the RFC 9106 defaults."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import HERE, MODELS, require_root, running, tmpdir

from septum.runtime.events import Event
from septum.runtime.supervisor import Supervisor, remove_state_dir
from septum.services import audit_log
from septum.services.credentials import Argon2Params
from septum.services.provisioning import provision_device
from septum.services.signed_fields import canonical

sys.path.insert(0, str(MODELS))
sys.path.insert(0, str(HERE.parents[1] / "examples" / "infusion_pump"))
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from septum_pump.hospital.pki import HospitalPki, issue, make_ca
from svc_parts.board import Board

CHEAP = Argon2Params(time_cost=1, memory_kib=8192)


class Device:
    def __init__(self, sup: Supervisor, board: Board, pins: dict[str, str], pki: HospitalPki) -> None:
        self.sup, self.board, self.pins, self.pki = sup, board, pins, pki
        self.rid = 0

    def request(self, **fields: Any) -> dict[str, Any]:
        """Send a UiRequest from the front panel; the AuthReply the ui partition got."""
        self.rid += 1
        after = self.sup.events.last_seq
        full = {"request_id": self.rid, "user": "", "pin": "", "session": "", "dose_rate": 0.0, "reason": ""}
        full.update(fields)
        self.board.send("keypad", "ui_requests", **full)
        ev = self.sup.events.wait_for(lambda e: e.kind == "received" and e.partition == "ui"
                                      and e.fields.get("request_id") == self.rid, 15, after=after)
        assert ev is not None, f"no reply to {fields}"
        return dict(ev.fields)

    def login(self, user: str = "nurse1", pin: str | None = None) -> dict[str, Any]:
        return self.request(action="login", user=user, pin=self.pins[user] if pin is None else pin)

    def order(self, *, signer: Any = None, cert: Any = None, tamper: bool = False, **over: Any) -> dict[str, Any]:
        cred = self.pki.hospital_client
        key = signer or cred.key
        der = (cert or cred.cert).public_bytes(serialization.Encoding.DER)
        order = {"order_id": over.pop("order_id", secrets.token_hex(4)), "drug": "morphine", "dose_rate": 2.0,
                 "principal": "hospital.example", "nonce": secrets.token_hex(16),
                 "sent_at_ms": int(time.time() * 1000), **over}
        sig = key.sign(canonical(order), ec.ECDSA(hashes.SHA256()))
        if tamper:
            order["dose_rate"] = 200.0
        return self.send_order({**order, "cert": der, "signature": sig})

    def send_order(self, order: dict[str, Any]) -> dict[str, Any]:
        after = self.sup.events.last_seq
        self.board.send("test_port", "orders_in", **order)
        ev = self.sup.events.wait_for(lambda e: e.kind == "received" and e.partition == "network"
                                      and e.fields.get("order_id") == order["order_id"], 15, after=after)
        assert ev is not None, "no order reply"
        return dict(ev.fields)

    def received(self, partition: str, after: int, pred: Any = lambda f: True) -> Event | None:
        return self.sup.events.wait_for(lambda e: e.kind == "received" and e.partition == partition
                                        and pred(e.fields), 10, after=after)

    def audit_records(self) -> list[audit_log.Record]:
        entries, _ = audit_log.read_entries(self.sup.data_dir("audit") / "audit.log")
        return [e.body for e in entries if isinstance(e.body, audit_log.Record)]


@pytest.fixture
def device() -> Iterator[Device]:
    require_root()
    out = tmpdir("septum-prov-")
    pki = HospitalPki.generate()
    prov = provision_device(MODELS / "auth_device.yaml", out / "dev", clinicians=["nurse1"], argon2=CHEAP,
                            hospital_ca_pem=pki.ca.cert_pem, machine_pins={"hospital.example": "hospital_server"})
    board = Board()
    try:
        with running("auth_device.yaml", provision=prov.folders, hardware=board, check=False) as sup:
            yield Device(sup, board, prov.pins, pki)
    finally:
        board.close()
        remove_state_dir(out)


def test_login_then_authorised_action_is_forwarded_with_principal(device: Device) -> None:
    denied = device.request(action="start_infusion", dose_rate=5.0)
    assert denied["ok"] is False and "needs an authenticated principal" in denied["reason"]
    reply = device.login()
    assert reply["ok"] is True and reply["role"] == "clinician" and len(reply["session"]) >= 24
    after = device.sup.events.last_seq
    ok = device.request(action="start_infusion", dose_rate=5.0, session=reply["session"])
    assert ok["ok"] is True
    cmd = device.received("pump_control", after, lambda f: f["channel"] == "commands")
    assert cmd is not None
    assert cmd.fields["action"] == "start_infusion" and cmd.fields["principal"] == "nurse1"
    assert cmd.fields["role"] == "clinician" and cmd.fields["dose_rate"] == 5.0
    # clear_fault goes to the safety monitor on its own channel
    after = device.sup.events.last_seq
    assert device.request(action="clear_fault", session=reply["session"], reason="checked")["ok"] is True
    reset = device.received("safety_monitor", after)
    assert reset is not None and reset.fields["principal"] == "nurse1" and reset.fields["reason"] == "checked"
    # logout ends the session
    assert device.request(action="logout", session=reply["session"])["ok"] is True
    assert device.request(action="start_infusion", session=reply["session"])["ok"] is False


def test_wrong_pin_denied_and_brute_force_locks_out_across_a_restart(device: Device) -> None:
    wrong = "".join(str((int(c) + 1) % 10) for c in device.pins["nurse1"])
    for _ in range(3):
        r = device.login(pin=wrong)
        assert r["ok"] is False and r["reason"] == "bad credential"
    r = device.login(pin=wrong)
    assert r["ok"] is False and "locked out for 30 s" in r["reason"]
    r = device.login()  # the right PIN while locked: refused without even checking it
    assert r["ok"] is False and "locked out" in r["reason"]
    # restarting auth does not reset the lockout (it is persisted in its data dir)
    after = device.sup.events.last_seq
    os.kill(device.sup.partition_pids()["auth"], signal.SIGKILL)
    assert device.sup.events.wait_for(lambda e: e.kind == "ready" and e.partition == "auth", 15, after=after)
    r = device.login()
    assert r["ok"] is False and "locked out" in r["reason"]
    assert device.login(user="mallory", pin="480213")["ok"] is False
    recs = device.audit_records()
    fails = [x for x in recs if x.event == "auth.login-failed"]
    assert len(fails) >= 6 and '"why": "wrong secret"' in fails[0].message
    assert any('"why": "attempt during lockout"' in x.message for x in fails)


def test_break_glass_without_login_is_forwarded_audited_at_alert_and_alerted(device: Device) -> None:
    after = device.sup.events.last_seq
    r = device.request(action="emergency_stop")
    assert r["ok"] is True
    cmd = device.received("pump_control", after, lambda f: f["action"] == "emergency_stop")
    assert cmd is not None and cmd.fields["principal"] == "unauthenticated"
    alert = device.sup.events.wait_for(lambda e: e.kind == "breakglass.emergency_stop", 5, after=after)
    assert alert is not None and alert.severity == "critical" and alert.partition == "auth"
    # the patient's bolus needs no login either (the PCA button is the credential); a start does
    assert device.request(action="patient_bolus")["ok"] is True
    device.sup.stop()
    recs = device.audit_records()
    bg = [x for x in recs if x.partition == "auth" and x.event == "auth.allowed" and "emergency_stop" in x.message]
    assert bg and bg[0].severity == "alert"
    assert any(x.event == "breakglass.emergency_stop" and x.partition == "auth" for x in recs)


def test_signed_order_accepted_once_replay_forgery_and_untrusted_cert_rejected(device: Device) -> None:
    after = device.sup.events.last_seq
    r = device.order(order_id="ord-1")
    assert r["accepted"] is True
    cmd = device.received("pump_control", after, lambda f: f["action"] == "accept_remote_order")
    assert cmd is not None and cmd.fields["principal"] == "hospital.example"
    assert cmd.fields["role"] == "hospital_server" and cmd.fields["order_id"] == "ord-1"
    # the very same order again: a replay
    cred = device.pki.hospital_client
    order = {"order_id": "ord-2", "drug": "morphine", "dose_rate": 2.0, "principal": "hospital.example",
             "nonce": secrets.token_hex(16), "sent_at_ms": int(time.time() * 1000)}
    signed = {**order, "cert": cred.cert.public_bytes(serialization.Encoding.DER),
              "signature": cred.key.sign(canonical(order), ec.ECDSA(hashes.SHA256()))}
    assert device.send_order(signed)["accepted"] is True
    r = device.send_order(signed)
    assert r["accepted"] is False and "replayed" in r["reason"]
    # an order altered after signing
    r = device.order(order_id="ord-3", tamper=True)
    assert r["accepted"] is False and "signature does not verify" in r["reason"]
    # a certificate from another CA, signed with its own key
    rogue = issue(make_ca("rogue CA"), "hospital.example", client=True)
    r = device.order(order_id="ord-4", signer=rogue.key, cert=rogue.cert)
    assert r["accepted"] is False and "does not chain" in r["reason"]
    # a stale order
    r = device.order(order_id="ord-5", sent_at_ms=int(time.time() * 1000) - 600_000)
    assert r["accepted"] is False and "expired" in r["reason"]
    # a hospital principal cannot act on the front panel's actions
    r = device.order(order_id="ord-6", principal="someone-else")
    assert r["accepted"] is False and "signed by 'hospital.example'" in r["reason"]


def test_bad_input_is_rejected_with_a_reason_and_auth_keeps_running(device: Device) -> None:
    pid = device.sup.partition_pids()["auth"]
    r = device.request(action="login", user="", pin="")
    assert r["ok"] is False and r["reason"]
    r = device.request(action="start_infusion", session="forged-session-token")
    assert r["ok"] is False and "no valid session" in r["reason"]
    r = device.request(action="accept_remote_order")  # a hospital action from the front panel
    assert r["ok"] is False and r["reason"]
    r = device.send_order({"order_id": "ord-u", "drug": "x", "dose_rate": 1.0, "principal": "", "nonce": "",
                           "sent_at_ms": 0, "cert": b"", "signature": b""})
    assert r["accepted"] is False and "no certificate" in r["reason"]
    r = device.send_order({"order_id": "ord-d", "drug": "x", "dose_rate": 1.0, "principal": "", "nonce": "",
                           "sent_at_ms": 0, "cert": b"\x30\x03junk", "signature": b"sig"})
    assert r["accepted"] is False and "not valid DER" in r["reason"]
    r = device.order(order_id="ord-x")
    assert r["accepted"] is True  # a well-formed order still goes through afterwards
    assert device.sup.partition_pids()["auth"] == pid
    assert not [e for e in device.sup.events.history if e.kind == "exited" and e.partition == "auth"]
