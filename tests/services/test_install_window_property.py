"""Property: whatever sequence of biomed logins, install-window openings, logouts, time passing and update
pushes (by the update server, by the hospital's order client, unsigned), an update chunk reaches the update
service exactly when it was signed by a pinned update server while a biomed's window was open.

The real AuthService runs on a real Partition object with the pump model's channel ends (socketpairs);
the test calls its request handler directly and reads what comes out on ``authorised_updates``."""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given, settings
from hypothesis import strategies as st
from septum_pump.hospital.pki import HospitalPki, issue

from septum.model import load
from septum.runtime.channel import SendEnd, create_pair
from septum.runtime.clock import Clock
from septum.runtime.codec import Codec, field_spec
from septum.runtime.partition import Partition
from septum.services.auth_service import AuthService
from septum.services.credentials import Argon2Params
from septum.services.provisioning import provision_device
from septum.services.service_io import _zero
from septum.services.signed_fields import canonical

MODEL = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump" / "model.yaml"
UPDATE_SERVER = "updates.hospital.example"
GRANT_S = 300.0


class Bench:
    def __init__(self) -> None:
        self.model, _ = load(MODEL)
        self.pki = HospitalPki.generate()
        self.server = issue(self.pki.ca, UPDATE_SERVER, client=True)
        out = Path(tempfile.mkdtemp(prefix="septum-window-"))
        prov = provision_device(MODEL, out / "dev", biomeds=["bio1"], argon2=Argon2Params(time_cost=1, memory_kib=8192),
                                hospital_ca_pem=self.pki.ca.cert_pem,
                                machine_pins={"hospital.example": "hospital_server", UPDATE_SERVER: "update_server"})
        self.pin = prov.pins["bio1"]
        self.auth_dir = prov.folders["auth"]
        self.far: dict[str, socket.socket] = {}
        self.keep: list[socket.socket] = []

    def service(self, data_dir: Path) -> tuple[AuthService, list[float]]:
        outputs: dict[str, SendEnd] = {}
        for ch in self.model.channels:
            if ch.src != "auth":
                continue
            snd, rcv = create_pair()
            rcv.setblocking(False)
            self.keep += [snd, rcv]
            codec = Codec.build(ch.message, {n: field_spec(f) for n, f in self.model.messages[ch.message].items()})
            outputs[ch.name] = SendEnd(ch.name, snd, codec, rate_per_s=None)
            self.far[ch.name] = rcv
        control, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        other.setblocking(False)
        self.keep += [control, other]
        config = {**self.model.partitions["auth"].config, "septum.model": msgspec.to_builtins(self.model)}
        p = Partition("auth", inputs={}, outputs=outputs, control=control, clock=Clock.start(), data_dir=data_dir,
                      config=config, heartbeat_ms=None)
        now = [1000.0]
        p.now = lambda: now[0]  # type: ignore[method-assign]  # device time is the test's
        return AuthService(p), now

    def drain(self, channel: str) -> int:
        n = 0
        while True:
            try:
                self.far[channel].recv(1 << 20)
            except BlockingIOError:
                return n
            n += 1


@pytest.fixture(scope="module")
def bench() -> Bench:
    return Bench()


def _chunk(bench: Bench, svc: AuthService, who: str) -> Any:
    fields = {"bundle_id": "b1", "index": 0, "total": 2, "data": b"x" * 64, "principal": UPDATE_SERVER,
              "nonce": secrets.token_hex(16), "sent_at_ms": int(time.time() * 1000)}
    cred = {"server": bench.server, "hospital": bench.pki.hospital_client}.get(who)
    cert, sig = b"", b""
    if cred is not None:
        if who == "hospital":
            fields["principal"] = "hospital.example"
        cert = cred.cert.public_bytes(serialization.Encoding.DER)
        sig = cred.key.sign(canonical(fields), ec.ECDSA(hashes.SHA256()))
    return svc.p.message("authorised_updates", **fields, cert=cert, signature=sig)


steps = st.lists(st.one_of(
    st.just(("login",)), st.just(("open",)), st.just(("logout",)),
    st.tuples(st.just("wait"), st.floats(1, 400)),
    st.tuples(st.just("push"), st.sampled_from(["server", "hospital", "unsigned"])),
), max_size=12)


@settings(max_examples=40, deadline=None)
@given(steps=steps)
@example(steps=[("push", "server"), ("login",), ("open",), ("push", "server"), ("push", "hospital"),
                ("push", "unsigned"), ("logout",), ("push", "server"), ("login",), ("open",), ("wait", 301.0),
                ("push", "server")])
def test_property_chunks_pass_only_from_the_update_server_inside_an_open_window(bench: Bench,
                                                                               steps: list[tuple[Any, ...]]) -> None:
    data = Path(tempfile.mkdtemp(prefix="septum-window-data-"))
    shutil.copytree(bench.auth_dir, data, dirs_exist_ok=True)
    svc, now = bench.service(data)
    ui = svc.routes.requests["ui_requests"]
    updates = svc.routes.requests["updates_in"]
    session, until, rid = "", -1.0, 0
    for ch in bench.far:
        bench.drain(ch)
    for step in steps:
        if step[0] == "login":
            rid += 1
            before = set(svc.sessions)
            svc.on_request(ui, _ui(svc, rid, "login", user="bio1", pin=bench.pin))
            session = next(iter(set(svc.sessions) - before), session)
            assert session, "the biomed's login failed"
        elif step[0] == "open":
            rid += 1
            svc.on_request(ui, _ui(svc, rid, "install_update", session=session))
            if session and session in svc.sessions:
                until = now[0] + GRANT_S
        elif step[0] == "logout":
            rid += 1
            svc.on_request(ui, _ui(svc, rid, "logout", session=session))
            if session:
                until = -1.0
            session = ""
        elif step[0] == "wait":
            now[0] += step[1]
            if session and session in svc.sessions and now[0] - svc.sessions[session].last_used > 300:
                session = ""  # the session itself expired: a new login is needed (the window runs on)
            svc.sweep()
        else:
            bench.drain("authorised_updates")
            svc.on_request(updates, _chunk(bench, svc, step[1]))
            passed = bench.drain("authorised_updates")
            expected = step[1] == "server" and now[0] <= until
            assert passed == int(expected), (steps, step, now[0], until)


def _ui(svc: AuthService, rid: int, action: str, **fields: Any) -> Any:
    """A UiRequest as the ui partition sends it (every other field at its zero value)."""
    ch = svc.model.channel("ui_requests")
    tp = Codec.build(ch.message, {n: field_spec(f) for n, f in svc.model.messages[ch.message].items()}).type
    info = msgspec.inspect.type_info(tp)
    assert isinstance(info, msgspec.inspect.StructType)
    values = {f.name: _zero(f.type) for f in info.fields}
    values.update(request_id=rid, action=action, **fields)
    return tp(**values)
