"""Updates pushed by the hospital's update server over the hospital link, end to end on the real pump.

The update server's chunks (each signed with its TLS client key) enter at the network partition's
``POST /septum/update``, go to auth on ``updates_in``, and reach the update service only while a biomed has
opened an install window at the pump's keypad; then the manufacturer signature, the anti-rollback floor and
the health check decide. Every test checks the outcome on the device (the library the therapy partitions
run, the update service's ``current`` slot) and the records the push itself produced in the audit log.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.crypto.keys import load_private_key
from septum.runtime.sandbox.probe import probe
from septum.services.provisioning import drug_library_bundle

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "examples" / "infusion_pump", ROOT / "examples" / "hospital_client"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from hospital_client import updates  # noqa: E402
from septum_pump.hospital.pki import Credential, issue  # noqa: E402
from septum_pump.rig import LIBRARY, UPDATE_SERVER, PumpRig  # noqa: E402

CHUNK = 2048  # the pump's library is ~5 kB: three chunks, so a transfer can be cut in the middle


class Bench:
    def __init__(self, rig: PumpRig) -> None:
        self.rig = rig
        assert rig.provisioned is not None and rig.provisioned.manufacturer_key is not None
        self.key = load_private_key(rig.provisioned.manufacturer_key)
        self.server = issue(rig.pki.ca, UPDATE_SERVER, client=True)
        self.folder = Path(rig._mkdtemp("septum-update-server-"))
        self.server.write(self.folder / "server.pem", self.folder / "server.key")
        (self.folder / "ca.pem").write_bytes(rig.pki.ca.cert_pem)
        self.n = 0

    def ctx(self, cred: Credential | None = None) -> ssl.SSLContext:
        cred = cred or self.server
        d = Path(self.rig._mkdtemp("septum-cred-"))
        cred.write(d / "c.pem", d / "c.key")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(cafile=str(self.folder / "ca.pem"))
        ctx.load_cert_chain(str(d / "c.pem"), str(d / "c.key"))
        return ctx

    def push(self, bundle: bytes, *, cred: Credential | None = None, signer: Any = None,
             only: set[int] | None = None, bid: str | None = None, chunk: int = CHUNK
             ) -> tuple[str, list[updates.ChunkAnswer]]:
        self.n += 1
        bid = bid or f"push-{self.n}-{os.getpid()}"
        cred = cred or self.server
        key = signer or cred.key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        from hospital_client.orders import identity_of

        out = updates.push("127.0.0.1", self.rig.ports["hospital_https"], self.ctx(cred), key,
                           identity_of(cred.cert), bundle, bid, chunk=chunk, only=only)
        return bid, out

    def library(self, version: int, key: Ed25519PrivateKey | None = None) -> bytes:
        text = LIBRARY.read_bytes()
        current = int(yaml.safe_load(text)["version"])
        data = text.replace(f"version: {current}\n".encode(), f"version: {version}\n".encode(), 1)
        assert int(yaml.safe_load(data)["version"]) == version
        return drug_library_bundle(key or self.key, data, version)

    def current(self) -> str:
        return os.readlink(self.rig.supervisor.data_dir("update") / "slots" / "drug_library" / "current")

    def slots(self) -> list[str]:
        return sorted(os.listdir(self.rig.supervisor.data_dir("update") / "slots" / "drug_library" / "slots"))

    def key_press(self, key: str, value: str = "") -> None:
        self.rig.sim.press_key(key, value)

    def open_window(self) -> dict[str, Any]:
        after = self.rig.seq()
        assert self.rig.login(user="biomed1"), "the provisioned biomed could not log in"
        self.key_press("install_update")
        ev = self.rig.wait_event(lambda e: e.kind == "auth_reply" and e.fields.get("action") == "install_update",
                                 timeout=10, after=after)
        assert ev is not None, "no answer to install_update"
        return dict(ev.fields)

    def records(self, after: int, event: str, partition: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.rig.audit_records() if r["seq"] > after and r["event"] == event
                and (partition is None or r["partition"] == partition)]

    def wait_record(self, after: int, event: str, pred: Any = lambda r: True, timeout: float = 15.0
                    ) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for r in self.records(after, event):
                if pred(r):
                    return r
            time.sleep(0.1)
        return None

    def last_audit_seq(self) -> int:
        recs = self.rig.audit_records()
        return recs[-1]["seq"] if recs else -1

    def library_versions(self, after_seq: int) -> set[int]:
        return {int(e.fields["version"]) for e in self.rig.events("drug_library_installed")
                if e.seq > after_seq and e.partition in ("pump_control", "safety_monitor")}


def _detail(r: dict[str, Any] | None) -> dict[str, Any]:
    """A service's record detail (JSON text on its audit channel), else the record's fields."""
    if r is None:
        return {}
    try:
        out = json.loads(r.get("detail") or "")
    except ValueError:
        out = None
    return out if isinstance(out, dict) else dict(r.get("fields") or {})


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    if not probe().root:
        print("SKIP: the pump runs partitions under their own uids and needs root")
        pytest.skip("needs root (partitions run under their own uids)")
    with PumpRig(time_scale=10.0, services="real") as rig:
        yield Bench(rig)


def test_a_push_outside_an_install_window_is_refused_by_auth_with_the_reason(bench: Bench) -> None:
    mark = bench.last_audit_seq()
    before = bench.current()
    _, answers = bench.push(bench.library(50))
    assert answers and answers[0].status == 403 and not answers[0].accepted, answers
    assert "no install_update window open" in answers[0].reason, answers[0]
    denied = bench.wait_record(mark, "auth.denied", lambda r: "window" in _detail(r).get("reason", ""))
    assert denied is not None and _detail(denied)["principal"] == UPDATE_SERVER, denied
    assert bench.records(mark, "update.installed") == [] and bench.current() == before


def test_a_good_library_pushed_in_a_window_is_verified_installed_and_run(bench: Bench) -> None:
    mark, seq = bench.last_audit_seq(), bench.rig.seq()
    reply = bench.open_window()
    assert reply["ok"] is True, reply
    opened = bench.wait_record(mark, "auth.window-opened")
    assert opened is not None and _detail(opened)["principal"] == "biomed1", opened
    bid, answers = bench.push(bench.library(10))
    assert [a.status for a in answers] == [200] * len(answers) and len(answers) >= 3, answers
    done = bench.wait_record(mark, "update.installed", lambda r: _detail(r).get("bundle_id") == bid)
    assert done is not None and _detail(done)["version"] == "10", done
    assert bench.rig.wait_until(lambda: bench.library_versions(seq) == {10}, timeout=10), bench.library_versions(seq)
    assert bench.current() == "slots/10"
    allowed = [r for r in bench.records(mark, "auth.allowed") if _detail(r).get("action") == "install_update"
               and _detail(r).get("principal") == UPDATE_SERVER]
    assert len(allowed) == len(answers)  # every chunk was authorised, and audited


def test_forged_and_misattributed_pushes_are_refused_and_the_library_stays(bench: Bench) -> None:
    assert bench.open_window()["ok"] is True
    mark, seq = bench.last_audit_seq(), bench.rig.seq()
    before = bench.current()
    # a bundle signed by a key the manufacturer never trusted: auth lets the chunks through, the update
    # service refuses the bundle on its signature
    bid, answers = bench.push(bench.library(11, key=Ed25519PrivateKey.generate()))
    assert all(a.status == 200 for a in answers), answers
    refused = bench.wait_record(mark, "update.refused", lambda r: _detail(r).get("bundle_id") == bid)
    assert refused is not None and "not a trusted update key" in _detail(refused)["reason"], refused
    # chunks signed by another key than the TLS client's: refused at once, never forwarded
    _, answers = bench.push(bench.library(12), signer=ec.generate_private_key(ec.SECP256R1()))
    assert answers[0].status == 403 and "does not verify" in answers[0].reason, answers
    # the hospital's order client is not an update server: auth refuses its role
    _, answers = bench.push(bench.library(13), cred=bench.rig.pki.hospital_client)
    assert answers[0].status == 403 and "may not perform 'install_update'" in answers[0].reason, answers
    time.sleep(1.0)
    assert bench.current() == before and bench.library_versions(seq) == set()
    assert bench.records(mark, "update.installed") == []


def test_an_older_library_is_refused_by_anti_rollback(bench: Bench) -> None:
    assert bench.open_window()["ok"] is True
    mark, seq = bench.last_audit_seq(), bench.rig.seq()
    before = bench.current()
    bid, answers = bench.push(bench.library(4))  # signed by the manufacturer, but older than what runs
    assert all(a.status == 200 for a in answers), answers
    refused = bench.wait_record(mark, "update.refused", lambda r: _detail(r).get("bundle_id") == bid)
    assert refused is not None and "anti-rollback" in _detail(refused)["reason"], refused
    assert bench.current() == before and bench.library_versions(seq) == set()


def _cut_mid_chunk(bench: Bench, bid: str, bundle: bytes) -> None:
    """Send the headers and half the body of chunk 1, then cut the TCP connection."""
    fields, sig = list(updates.signed_chunks(bundle, bid, UPDATE_SERVER, bench.server.key, chunk=CHUNK))[1]
    head = [f"POST {updates.PATH} HTTP/1.1", "Host: pump", f"Content-Length: {len(fields['data'])}"]
    head += [f"{k}: {v}" for k, v in updates.headers_for(fields, sig).items()]
    raw = socket.create_connection(("127.0.0.1", bench.rig.ports["hospital_https"]), timeout=10)
    tls = bench.ctx().wrap_socket(raw, server_hostname="127.0.0.1")
    tls.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + fields["data"][: len(fields["data"]) // 2])
    tls.close()


def test_interrupted_pushes_leave_the_old_library_in_force_and_nothing_half_installed(bench: Bench) -> None:
    assert bench.open_window()["ok"] is True
    mark, seq = bench.last_audit_seq(), bench.rig.seq()
    before, slots = bench.current(), bench.slots()
    bundle = bench.library(20)
    # 1. a truncated transfer: the update server stops after the first chunk
    bid, answers = bench.push(bundle, only={0})
    assert [a.status for a in answers] == [200]
    r = bench.wait_record(mark, "update.refused", lambda r: _detail(r).get("bundle_id") == bid, timeout=30)
    assert r is not None and "incomplete: 1 of 3 chunks" in _detail(r)["reason"], r
    # 2. the connection cut in the middle of a chunk: that chunk never reaches auth, the bundle never completes
    bid2, answers = bench.push(bundle, only={0})
    _cut_mid_chunk(bench, bid2, bundle)
    r = bench.wait_record(mark, "update.refused", lambda r: _detail(r).get("bundle_id") == bid2, timeout=30)
    assert r is not None and "incomplete: 1 of 3 chunks" in _detail(r)["reason"], r
    # 3. the update partition killed in the middle of the transfer: it restarts with nothing half-installed
    bid3, answers = bench.push(bundle, only={0, 1})
    assert [a.status for a in answers] == [200, 200]
    kill_seq = bench.rig.seq()
    bench.rig.kill("update")
    assert bench.rig.wait_event(lambda e: e.kind == "ready" and e.partition == "update", timeout=30,
                                after=kill_seq) is not None, "the update partition did not come back"
    _, answers = bench.push(bundle, only={2}, bid=bid3)  # the rest of the killed transfer arrives
    time.sleep(1.0)
    assert bench.records(mark, "update.installed") == []
    assert bench.current() == before and bench.slots() == slots  # no slot, no staging folder left behind
    assert 20 not in bench.library_versions(seq)
    # and a whole push afterwards installs (the window is still open)
    bid4, answers = bench.push(bundle)
    assert all(a.status == 200 for a in answers), answers
    ok = bench.wait_record(mark, "update.installed", lambda r: _detail(r).get("bundle_id") == bid4)
    assert ok is not None and bench.current() == "slots/20"


def test_the_window_closes_on_logout_and_pushes_are_refused_again(bench: Bench) -> None:
    assert bench.open_window()["ok"] is True
    mark = bench.last_audit_seq()
    bench.key_press("logout")
    closed = bench.wait_record(mark, "auth.window-closed")
    assert closed is not None and _detail(closed)["reason"] == "logged out", closed
    _, answers = bench.push(bench.library(30))
    assert answers[0].status == 403 and "no install_update window open" in answers[0].reason, answers


def test_the_window_expires_after_grant_s_and_is_audited(bench: Bench) -> None:
    assert bench.open_window()["ok"] is True
    mark = bench.last_audit_seq()
    # grant_s is 300 device-seconds: 30 s real at this rig's time scale of 10, closed by auth's sweep
    closed = bench.wait_record(mark, "auth.window-closed", timeout=60)
    assert closed is not None and _detail(closed)["reason"] == "expired", closed
    _, answers = bench.push(bench.library(31))
    assert answers[0].status == 403 and "no install_update window open" in answers[0].reason, answers


def test_the_running_pump_keeps_no_key_or_credential_in_clear(bench: Bench) -> None:
    """The rig provisions the pump with a device key: the TLS key is encrypted, the audit key and the
    credential file are sealed; nothing under the device's state folder holds them in clear."""
    rig = bench.rig
    assert rig.device_key is not None
    scalar = rig.pki.pump.key.private_numbers().private_value.to_bytes(32, "big")
    needles = [b"BEGIN PRIVATE KEY", b"BEGIN EC PRIVATE KEY", b"$argon2id$", scalar]
    hits = []
    for f in rig.supervisor.state_dir.rglob("*"):
        if f.is_file() and not f.is_symlink():  # the data disk images too, block for block
            data = f.read_bytes()
            hits += [f"{f}: {n[:20]!r}" for n in needles if n in data]
    assert hits == [], hits
    net = rig.supervisor.data_dir("network")
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in (net / "server.key").read_bytes()
    assert (net / "server.key.pass.sealed").exists()
    assert (rig.supervisor.data_dir("audit") / "audit.key.sealed").exists()
    assert (rig.supervisor.data_dir("auth") / "credentials.json.sealed").exists()


def _ui_bundle(bench: Bench, version: str, *, broken: bool = False) -> bytes:
    """The ui partition's code (the whole septum_pump package, as on its import path, ~600 kB: pushed in
    the client's 60 KiB chunks, so the transfer fits assembly_timeout_s, 6 s real at this rig's time scale),
    signed by the manufacturer; ``broken``: its entry point raises, so the supervisor's health check fails."""
    from septum.services.update_bundle import make_bundle

    pkg = ROOT / "examples" / "infusion_pump" / "septum_pump"
    files = {f"septum_pump/{p.relative_to(pkg)}": p.read_bytes() for p in sorted(pkg.rglob("*.py"))
             if "__pycache__" not in p.parts}
    if broken:
        ui = files["septum_pump/ui.py"]
        entry = b"def main(p: Partition) -> None:\n"
        files["septum_pump/ui.py"] = ui.replace(entry, entry + b"    raise RuntimeError('bad build')\n")
        assert files["septum_pump/ui.py"] != ui
    return make_bundle(bench.key, target="ui", kind="partition", version=version, files=files)


def test_ui_code_pushed_in_a_window_is_health_checked_then_run_or_rolled_back(bench: Bench) -> None:
    sup = bench.rig.supervisor
    assert bench.open_window()["ok"] is True
    mark = bench.last_audit_seq()
    # a build whose entry point fails: the supervisor's health check fails, the old code runs again
    bid, answers = bench.push(_ui_bundle(bench, "2.0.0", broken=True), chunk=updates.CHUNK)
    assert len(answers) > 1 and all(a.status == 200 for a in answers), answers
    refused = bench.wait_record(mark, "update.refused", lambda r: _detail(r).get("bundle_id") == bid, timeout=60)
    assert refused is not None, "no outcome for the broken ui build"
    assert "rolled-back" in _detail(refused)["reason"] and "bad build" in _detail(refused)["reason"], refused
    assert sup.code_version("ui") == "" and any(e.kind == "code_rolled_back" and e.partition == "ui"
                                                 for e in sup.events.history)
    assert bench.rig.wait_event(lambda e: e.kind == "ready" and e.partition == "ui", timeout=30, after=0)
    # the good build of the same version: activated after its health check, and the ui works on it
    assert bench.open_window()["ok"] is True
    bid, answers = bench.push(_ui_bundle(bench, "2.0.0"), chunk=updates.CHUNK)
    assert all(a.status == 200 for a in answers), answers
    done = bench.wait_record(mark, "update.installed", lambda r: _detail(r).get("bundle_id") == bid, timeout=60)
    assert done is not None and "ui 2.0.0 running" in _detail(done)["reason"], done
    assert sup.code_version("ui") == "2.0.0"
    assert bench.rig.login(user="biomed1"), "the ui on its new code does not log in"
    # and an older build is refused by the anti-rollback floor, the new code keeps running
    assert bench.open_window()["ok"] is True
    bid, answers = bench.push(_ui_bundle(bench, "1.5.0"), chunk=updates.CHUNK)
    old = bench.wait_record(mark, "update.refused", lambda r: _detail(r).get("bundle_id") == bid, timeout=60)
    assert old is not None and "anti-rollback" in _detail(old)["reason"], old
    assert sup.code_version("ui") == "2.0.0"
