"""Each attack check can fail: with the scenario's defence switched off, its check reports the attack.

Runs after test_scenarios.py on the same device (``attack_rig``). First the defences that live in this
process (the supervisor's handling of drop reports, the update installer's verification, the device's
logs, the listener the scan probes) are patched with ``monkeypatch`` and restored after each test. Then one
fixture restarts the network and auth partitions once with test-only entry points
(``weakened_partitions``: network without seccomp/Landlock, TLS 1.2 and no client certificate, no order
signature pre-check, no record of unfinished MLLP frames, negative rates accepted; auth without lockout,
nonce guard or signature check) and every scenario whose defence lives there is run against them. The
device is not restored (it is discarded at the end of the session) and is marked ``weakened`` so that no
ordinary scenario test can pass on it.

Every test asserts the specific failure its defence guards against, not merely "not ok".
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from septum_pump.attacks import SCENARIOS, AttackRig, ScenarioResult, run_one
from septum_pump.attacks.surface import tls12_probe
from weakened_partitions import EXTRA_CA

from septum.runtime import control_guard
from septum.runtime import protocol as proto
from septum.services import update_bundle

WEAK_DIR = Path(__file__).resolve().parent  # weakened_partitions.py: imported by the restarted partitions
WEAK_ENTRIES = {"network": "weakened_partitions:network_main", "auth": "weakened_partitions:auth_main"}


def _run(rig: AttackRig, sid: str) -> ScenarioResult:
    res = run_one(rig, SCENARIOS[sid])
    print(res.line())
    for f in res.failures:
        print(f"  reported: {f}")
    return res


def _reported(res: ScenarioResult, *words: str) -> bool:
    """Some failure of the scenario names every one of ``words`` (the check that caught this attack)."""
    return any(all(w in f for w in words) for f in res.failures)


# ---------------------------------------------------------------------------- evidence made after the attack
def test_a_record_from_before_the_attack_never_counts() -> None:
    from septum_pump.attacks.base import after_mark, event_is

    created = {"seq": 0, "time": 990.0, "partition": "audit", "event": "audit.log-created", "message": "",
               "detail": {"key_id": "ab"}}
    pred = after_mark((100, 1000.0, 50), event_is("audit.log-created"))
    assert not pred(created)  # the record every run has from sequence 0 (what credential-search counted)
    assert not pred(created | {"seq": 101})  # later in the log but stamped before the attack began
    assert pred(created | {"seq": 101, "time": 1001.0})
    started = {"seq": 101, "time": 1001.0, "partition": "supervisor", "event": "supervisor.started",
               "message": "", "detail": {"subject": "network", "sup_seq": 2}}
    pred = after_mark((100, 1000.0, 50), event_is("supervisor.started"))
    assert not pred(started)  # logged late, but caused by a supervisor event from before the attack
    assert pred(started | {"detail": {"subject": "network", "sup_seq": 51}})


# ---------------------------------------------------------------------------- the TLS 1.2 probe, unit level
def _tls_server(ctx: ssl.SSLContext | None, close_at_once: bool = False) -> tuple[socket.socket, int]:
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                if close_at_once or ctx is None:
                    continue
                try:
                    with ctx.wrap_socket(conn, server_side=True) as t:
                        t.recv(1)
                except (OSError, ssl.SSLError):
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def _server_ctx(tmp: Path, minimum: ssl.TLSVersion) -> ssl.SSLContext:
    from septum_pump.hospital.pki import issue, make_ca

    leaf = issue(make_ca("probe-test"), "127.0.0.1", server=True, ips=("127.0.0.1",))
    leaf.write(tmp / "c.pem", tmp / "c.key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = minimum
    ctx.load_cert_chain(str(tmp / "c.pem"), str(tmp / "c.key"))
    return ctx


def test_tls12_probe_tells_refusal_from_acceptance_and_from_a_dead_listener(tmp_path: Path) -> None:
    only13, port13 = _tls_server(_server_ctx(tmp_path, ssl.TLSVersion.TLSv1_3))
    any12, port12 = _tls_server(_server_ctx(tmp_path, ssl.TLSVersion.TLSv1_2))
    mutual = _server_ctx(tmp_path, ssl.TLSVersion.TLSv1_2)
    mutual.verify_mode = ssl.CERT_REQUIRED  # TLS 1.2 negotiated, then refused for want of a client certificate
    mutual.load_verify_locations(str(tmp_path / "c.pem"))
    any12_mutual, port12_mutual = _tls_server(mutual)
    mute, port_mute = _tls_server(None, close_at_once=True)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
    port_closed = closed.getsockname()[1]
    try:
        assert tls12_probe(port13)[0] == "refused", tls12_probe(port13)
        assert "protocol_version" in tls12_probe(port13)[1]
        assert tls12_probe(port12)[0] == "accepted"
        assert tls12_probe(port12_mutual)[0] == "accepted", tls12_probe(port12_mutual)
        assert tls12_probe(port_mute)[0] == "dead"  # accepts, then closes before any byte: not "TLS 1.3 only"
        assert tls12_probe(port_closed)[0] == "dead"
    finally:
        for s in (only13, any12, any12_mutual, mute, closed):
            s.close()


# ---------------------------------------------------------------------------- defences in this process
def test_port_scan_fails_on_a_dead_listener(attack_rig: AttackRig, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # a port nobody listens on, in place of the https listener
    try:
        monkeypatch.setattr(attack_rig, "https_port", dead.getsockname()[1])
        res = _run(attack_rig, "port-scan")
    finally:
        dead.close()
    assert not res.ok
    assert _reported(res, "TLS 1.2 downgrade", "dead"), res.failures


def _discard_drop_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor's control guard forgets every ``Drops`` report: receivers' drops are never reported."""
    monkeypatch.setattr(control_guard.ControlGuard, "note_drops", lambda self, msg, now: None)
    monkeypatch.setattr(control_guard.ControlGuard, "due_drops", lambda self, now: [])


def test_net_flood_fails_without_drop_reports(attack_rig: AttackRig, monkeypatch: pytest.MonkeyPatch) -> None:
    _discard_drop_reports(monkeypatch)
    res = _run(attack_rig, "net-flood")
    assert not res.ok
    assert _reported(res, "flood", "orders_in", "not bounded"), res.failures
    assert not res.recorded


def test_net_channels_fails_without_drop_reports(attack_rig: AttackRig, monkeypatch: pytest.MonkeyPatch) -> None:
    _discard_drop_reports(monkeypatch)
    res = _run(attack_rig, "net-channels")
    assert not res.ok
    assert _reported(res, "raw MotorCommand bytes on orders_in", "no drop reported"), res.failures


def test_bad_updates_fails_when_the_installer_skips_the_signature(attack_rig: AttackRig,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def unchecked(data: bytes, trusted: Any, *, expect_target: str | None = None) -> update_bundle.VerifiedBundle:
        box = msgspec.msgpack.decode(data[len(update_bundle.MAGIC):], type=update_bundle._Container)
        m = msgspec.msgpack.decode(box.manifest, type=update_bundle.Manifest)
        return update_bundle.VerifiedBundle(m, update_bundle.parse_version(m.version), box.files, box.manifest,
                                            box.signature)

    monkeypatch.setattr(update_bundle, "verify_bundle", unchecked)
    res = _run(attack_rig, "bad-updates")
    assert not res.ok
    # the first unsigned bundle installs (and raises the floor, so later same-version ones meet anti-rollback)
    assert _reported(res, "update service installer: unsigned-library.sup", "installed"), res.failures
    assert _reported(res, "update service installer: wrong-key-firmware.sup", "installed"), res.failures


def test_credential_search_fails_on_a_logged_pin(attack_rig: AttackRig) -> None:
    log = attack_rig.supervisor.log_path("ui")
    size = log.stat().st_size if log.exists() else 0
    pin = attack_rig.pins["nurse1"]
    with open(log, "ab") as f:  # a device that logs what is typed at the keypad
        f.write(f"keypad: user nurse1 pin {pin}\n".encode())
    try:
        res = _run(attack_rig, "credential-search")
    finally:
        with open(log, "r+b") as f:
            f.truncate(size)
    assert not res.ok
    assert _reported(res, "partition logs free of PINs", "ui.log"), res.failures


# ---------------------------------------------------------------------------- defences inside partitions
def _restart(rig: AttackRig, part: str, after: int) -> None:
    rig.kill(part)
    ev = rig.wait_event(lambda e: e.kind == "ready" and e.partition == part, timeout=60, after=after)
    assert ev is not None, f"{part} did not come back with its defences switched off"


@pytest.fixture(scope="module")
def weak_rig(attack_rig: AttackRig) -> Iterator[AttackRig]:
    sup = attack_rig.supervisor
    real = sup._boot_config

    def boot_config(p: Any) -> proto.Boot:
        boot = real(p)
        entry = WEAK_ENTRIES.get(boot.partition)
        if entry is None:
            return boot
        off = {"landlock": False, "seccomp": False} if boot.partition == "network" else {}
        sandbox = msgspec.structs.replace(boot.sandbox, read_only=[*boot.sandbox.read_only, str(WEAK_DIR)], **off)
        return msgspec.structs.replace(boot, entry=entry, import_path=[*boot.import_path, str(WEAK_DIR)],
                                       sandbox=sandbox)

    # the CA the untrusted-TLS scenario's "rogue" client certificates will come from, trusted by the weak link
    from septum_pump.hospital.pki import make_ca

    rogue = make_ca("Rogue CA")
    extra = sup.data_dir("network") / EXTRA_CA
    extra.write_bytes(rogue.cert_pem)
    os.chmod(extra, 0o644)
    attack_rig.rogue_ca = rogue  # type: ignore[attr-defined]
    sup._boot_config = boot_config  # type: ignore[method-assign]
    attack_rig.weakened = True  # type: ignore[attr-defined]
    after = attack_rig.seq()
    for part in WEAK_ENTRIES:
        _restart(attack_rig, part, after)
    lst = attack_rig.wait_event(lambda e: e.kind == "listening" and e.partition == "network", timeout=30,
                                after=after)
    assert lst is not None, "the weakened network partition never listened"
    attack_rig.https_port, attack_rig.mllp_port = int(lst.fields["https"]), int(lst.fields["mllp"])
    yield attack_rig


def test_net_sandbox_fails_without_seccomp_and_landlock(weak_rig: AttackRig) -> None:
    res = _run(weak_rig, "net-sandbox")
    assert not res.ok
    # without seccomp the libc execve replaces the process before it can report: either way it got out
    assert _reported(res, "socket(AF_UNIX)", "open") or _reported(res, "the attacker's report"), res.failures


def test_backdoor_fails_without_landlock(weak_rig: AttackRig) -> None:
    res = _run(weak_rig, "net-backdoor-listener")
    assert not res.ok
    assert _reported(res, "undeclared TCP listener", "open"), res.failures
    assert _reported(res, "listeners after the attempt", "undeclared listener"), res.failures
    assert not res.recorded  # a bind that worked is no refusal received


def test_untrusted_tls_fails_when_an_unprovisioned_ca_is_trusted(weak_rig: AttackRig,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from septum_pump.attacks import hospital_side

    real = hospital_side.make_ca
    rogue = weak_rig.rogue_ca  # type: ignore[attr-defined]
    monkeypatch.setattr(hospital_side, "make_ca", lambda name="": rogue if name == "Rogue CA" else real(name))
    res = _run(weak_rig, "hospital-untrusted-tls")
    assert not res.ok
    assert _reported(res, "client certificate from a rogue CA on https", "answered"), res.failures


def test_port_scan_fails_when_tls12_is_accepted(weak_rig: AttackRig) -> None:
    res = _run(weak_rig, "port-scan")
    assert not res.ok
    assert _reported(res, "TLS 1.2 downgrade", "accepted"), res.failures


def test_malformed_fails_without_validation_and_framing_records(weak_rig: AttackRig) -> None:
    res = _run(weak_rig, "hospital-malformed")
    assert not res.ok
    assert _reported(res, "FHIR: negative rate"), res.failures
    assert _reported(res, "truncated MLLP frame", "no mllp_rejected record"), res.failures


def test_forged_order_fails_without_signature_checks(weak_rig: AttackRig) -> None:
    res = _run(weak_rig, "hospital-forged-order")
    assert not res.ok
    assert _reported(res, "signed by a key that is not the client certificate's"), res.failures


def test_replay_fails_without_the_nonce_guard(weak_rig: AttackRig) -> None:
    res = _run(weak_rig, "replayed-orders")
    assert not res.ok
    assert _reported(res, "sent again"), res.failures


def test_pin_brute_force_fails_without_lockout(weak_rig: AttackRig) -> None:
    res = _run(weak_rig, "pin-brute-force")
    assert not res.ok
    assert _reported(res, "guesses in a row", "no lockout"), res.failures


def test_net_channels_fails_when_auth_accepts_any_signature(weak_rig: AttackRig) -> None:
    res = _run(weak_rig, "net-channels")
    assert not res.ok
    assert _reported(res, "forged InfusionOrder"), res.failures
