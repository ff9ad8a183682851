"""The hospital link under slow-loris, in one process (auth stood in by FakeAuth): sockets that never finish
a TLS handshake, a request or an MLLP frame cost no thread, are cut at their deadline, are refused over the
connection limit with bounded audit volume, and a valid signed order still gets through."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from hospital_client.client import client_context
from septum_pump.hospital import servers

from .conftest import basic_order
from .loris import Loris, until_accepted

PENDING_LIMIT = 16  # connections per listener in their TLS handshake (the default)
FAST = {"handshake_timeout_s": 1.0, "header_timeout_s": 1.0, "body_timeout_s": 1.0}


def _wait(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def _counted(records: list[tuple[str, str, str]], event: str) -> int:
    """How many occurrences the bounded records of ``event`` account for (one each, or 'N more ...')."""
    n = 0
    for ev, _sev, detail in records:
        if ev == event:
            m = re.match(r"(\d+) more ", detail)
            n += int(m.group(1)) if m else 1
    return n


@pytest.mark.parametrize("per_port", [50, 500])  # 100 and 1,000 connections over the two listeners
def test_slowloris_costs_no_thread_is_cut_at_the_deadline_and_a_valid_order_gets_through(
        make_link, client_for, per_port: int) -> None:
    h = make_link(**FAST)
    c = client_for(h)
    threads_before = threading.active_count()
    loris = Loris([("127.0.0.1", h.link.https.port), ("127.0.0.1", h.link.mllp.port)], per_port)
    try:
        loris.open()
        assert loris.connected == 2 * per_port  # the attack itself happened
        # over the limit, connections are closed at once: what stays open is what holds a handshake slot
        assert _wait(lambda: loris.open_count() <= 2 * PENDING_LIMIT, 20), loris.open_count()
        assert threading.active_count() == threads_before  # no thread per socket
        server = h.link.server
        assert server.limits.max_pending == PENDING_LIMIT
        assert all(lst.accepted >= per_port for lst in server.listeners), server.stats()
        assert all(lst.refused > 0 for lst in server.listeners)  # more than the limit came at once
        assert all(lst.pending <= server.limits.max_pending for lst in server.listeners)
        # the ones holding a slot keep dribbling (each byte would reset a per-read timeout); the handshake
        # deadline closes them all the same
        deadline = time.monotonic() + 20
        while loris.poll_closed() < len(loris.socks) and time.monotonic() < deadline:
            loris.dribble()
            time.sleep(0.3)
        assert loris.poll_closed() == len(loris.socks), server.stats()
        h.audit.wait_for(lambda r: r[0] == "connection_timeout" and "TLS handshake not complete" in r[2])
        # the link answers a valid signed order
        ids = iter(range(1000))
        (status, body), _ = until_accepted(
            lambda: c.send_fhir(basic_order(c, "fhir", order_id=f"ORD-L{next(ids)}")),
            lambda answer: answer[0] == 201, timeout=20)
        assert status == 201, body
        assert h.auth.orders
    finally:
        loris.close()


def test_refusals_over_the_limit_are_counted_with_bounded_audit_volume(make_link) -> None:
    h = make_link(max_pending=4, max_sessions=2, handshake_timeout_s=30.0)
    loris = Loris([("127.0.0.1", h.link.https.port)], 400)
    started = time.monotonic()
    try:
        loris.open()
        assert loris.connected == 400
        # the ones over the limit were closed at once (RST), not left hanging
        assert _wait(lambda: loris.poll_closed() >= 400 - 4, 20), loris.poll_closed()
        time.sleep(1.5)  # the loop flushes its per-second summaries
        elapsed = time.monotonic() - started
        with h.audit.cond:
            records = list(h.audit.records)
        refusals = [r for r in records if r[0] == "connection_refused"]
        assert refusals and len(refusals) <= 2 * (int(elapsed) + 2)  # one in full + one summary per second
        lst = h.link.server.listeners[0]
        assert (lst.accepted, lst.pending, lst.refused) == (400, 4, 396)
        assert _counted(records, "connection_refused") == 396  # ...and every refusal is counted
    finally:
        loris.close()


def _authenticated(port: int, hospital_dir: Path) -> ssl.SSLSocket:
    ctx = client_context(hospital_dir / "hospital-ca.pem", hospital_dir / "client.pem", hospital_dir / "client.key")
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.parametrize("partial", [b"POST /fhir/MedicationRequest HTTP/1.1\r\nHost: x",  # headers
                                     b"POST /fhir/MedicationRequest HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"])
def test_a_slow_request_from_a_hospital_is_cut_at_its_deadline(make_link, hospital_dir: Path, partial: bytes) -> None:
    h = make_link(**FAST)
    with _authenticated(h.link.https.port, hospital_dir) as tls:
        tls.sendall(partial)
        answer = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # a byte now and then: a per-read timeout would never fire
            try:
                tls.sendall(b"x")
            except OSError:
                break
            tls.settimeout(0.3)
            try:
                data = tls.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            answer += data
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    h.audit.wait_for(lambda r: r[0] == "connection_timeout" and "not complete in time" in r[2])
    h.audit.wait_for(lambda r: r[0] == "http_rejected" and "408" in r[2])


def test_a_slow_mllp_frame_is_cut_at_its_deadline(make_link, hospital_dir: Path) -> None:
    h = make_link(**FAST)
    with _authenticated(h.link.mllp.port, hospital_dir) as tls:
        tls.sendall(b"\x0bMSH|^~\\&|")
        closed = False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not closed:
            try:
                tls.sendall(b"x")
                tls.settimeout(0.3)
                closed = tls.recv(4096) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
        assert closed
    h.audit.wait_for(lambda r: r[0] == "mllp_rejected" and "not complete in time" in r[2])


def test_idle_keep_alive_connection_is_closed(make_link, hospital_dir: Path) -> None:
    h = make_link(idle_timeout_s=0.5)
    with _authenticated(h.link.https.port, hospital_dir) as tls:
        tls.settimeout(10)
        assert tls.recv(4096) == b""  # closed by the pump, without a word, after the idle time
    h.audit.wait_for(lambda r: r[0] == "connection_closed" and "idle" in r[2])


def test_a_failing_listener_loop_is_fatal_not_silent(make_link, monkeypatch: pytest.MonkeyPatch) -> None:
    reasons: list[str] = []
    h = make_link(link_kwargs={"fatal": reasons.append})

    def broken(self: servers.Server, lst: servers.Listener) -> None:
        raise RuntimeError("simulated bug in accept")

    monkeypatch.setattr(servers.Server, "_accept", broken)
    with socket.create_connection(("127.0.0.1", h.link.https.port), timeout=5):
        assert _wait(lambda: bool(reasons), 10)
    assert "listener loop failed" in reasons[0] and "simulated bug in accept" in reasons[0]
    h.audit.wait_for(lambda r: r[0] == "listener_failed")


def test_connection_limits_fit_the_partitions_file_descriptors() -> None:
    lim = servers.Limits()
    assert lim.fitted(2, 1000) == lim
    small = lim.fitted(2, 30)
    assert 2 * (small.max_pending + small.max_sessions) <= 30 and small.max_sessions >= 1
    with pytest.raises(ValueError, match="max_open_files"):
        lim.fitted(2, 3)
    with pytest.raises(ValueError, match="handshake_timeout_s"):
        servers.Limits.from_settings({"handshake_timeout_s": "soon"})


def test_bounded_audit_gives_each_cause_its_own_window() -> None:
    records: list[tuple[str, str, str]] = []
    t = servers.Tally(lambda *r: records.append(r), "tls_refused", "warning", "TLS handshake(s) refused")
    t("no certificate 1", 0.0, key="PEER_DID_NOT_RETURN_A_CERTIFICATE")
    t("no certificate 2", 0.1, key="PEER_DID_NOT_RETURN_A_CERTIFICATE")
    t("unknown CA 1", 0.2, key="CERTIFICATE_VERIFY_FAILED")  # not hidden by the flood of the other cause
    for i in range(100):
        t(f"garbage {i}", 0.3, key=f"reason {i}")  # more causes than MAX_KEYS share one window
    t.flush(0.5)
    details = [d for _, _, d in records]
    assert details[:3] == ["no certificate 1", "unknown CA 1", "garbage 0"]
    assert len(records) <= 2 * (servers.Tally.MAX_KEYS + 1)
    assert _counted(records, "tls_refused") == 103 == t.total
