"""Attacks by a compromised partition on the trusted base itself (issue 11): the supervisor, the sandbox's
system-call filter, the disk, and the hospital link's connection handling.

The supervisor-facing scenarios send what a hostile partition can put on its control channel (Reports whose
fields collide with the supervisor's own, a flood of ``Drops`` and ``Report``) or die in ways the supervisor
must handle (a real-time signal). Each passes only when the supervisor is still running afterwards, the
safety partitions and the audit service were not touched, and the supervisor's own record of what it did
is in the audit log, made after the attack began. ``rt-signal-exit`` kills the attacking network partition
(it is restarted under its policy), so the registry runs it last.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import time
from pathlib import Path
from typing import Any

from ..rig import CLINICIAN, RigError
from .base import Check, Scenario, ScenarioResult, event_is
from .device import AttackRig

SAFETY = ("safety_monitor", "pump_control")
UNTOUCHED = ("safety_monitor", "pump_control", "audit", "auth", "ui", "update")  # the attacker is network
RSS_BOUND_MIB = 64  # supervisor memory growth allowed under a flood (the issue saw 31 MiB -> 1.5 GiB)
FLOOD_S = 5.0
SLOW_CONNECTIONS = 100  # per listener
ORDER_DEADLINE_S = 30.0  # a valid order during the slow-loris must be answered within this (6 handshake deadlines)
SLOW_CUT_S = 30.0  # from the last slow connection opened: each must have been closed by the pump by then
RECONNECT_S = 1.0  # a refused hospital client connects again after this
QUOTA_MIB = 300
QUOTA_ERRORS = ("ENOSPC", "EDQUOT", "EFBIG")


def _results(ev: Any) -> list[list[str]]:
    return [list(map(str, r)) for r in json.loads(ev.fields.get("results", "[]"))]


def supervisor_alive(rig: AttackRig) -> tuple[bool, str]:
    """Is the supervisor thread still running the device (not crashed, not halted, not safe-stated)?"""
    sup = rig.supervisor
    thread = getattr(sup, "_thread", None)
    if thread is None or not thread.is_alive():
        return False, f"the supervisor thread is dead (outcome reads {sup.outcome!r})"
    if sup.outcome != "running":
        return False, f"the device outcome is {sup.outcome!r}"
    return True, "the supervisor thread is running the device"


def _untouched(chk: Check, rig: AttackRig, before: dict[str, int]) -> None:
    """Every partition but the attacker runs the same process as before the attack."""
    now = rig.supervisor.partition_pids()
    for part in UNTOUCHED:
        same = part in before and now.get(part) == before[part]
        chk.expect(f"{part} unaffected", same, f"{part} still runs as pid {now.get(part)}",
                   f"{part} pid {before.get(part)} -> {now.get(part)} (killed or restarted)")


def _supervisor_record(subject: str, *starts: str, contains: tuple[str, ...] = ()) -> Any:
    """A supervisor audit record about ``subject`` whose event starts with one of ``starts`` (or, when
    ``contains`` is given, whose event name contains one of those words)."""

    def pred(rec: dict[str, Any]) -> bool:
        if rec.get("partition") != "supervisor":
            return False
        detail = rec.get("detail") if isinstance(rec.get("detail"), dict) else {}
        if detail.get("subject") != subject:
            return False
        name = str(rec.get("event", ""))
        return any(name.startswith(s) for s in starts) or any(w in name for w in contains)

    return pred


def _inside(chk: Check, rig: AttackRig, family: str, timeout: float, **params: Any) -> Any:
    """The attacker's report, or None (recorded as a failure: a supervisor that stops forwarding events
    has been taken down by the attack)."""
    try:
        return rig.inside(family, timeout=timeout, **params)
    except RigError as exc:
        alive, why = supervisor_alive(rig)
        chk.got_through(f"{family}: the attacker's report", f"{exc}; {why}" if not alive else str(exc))
        return None


# ---------------------------------------------------------------------------------------------- scenarios
def report_fields(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("sup-report-fields", "Reports whose fields collide with the supervisor's own")
    chk = Check(rig, res)
    before = rig.supervisor.partition_pids()
    mark = chk.mark()
    ev = _inside(chk, rig, "report_fields", timeout=15.0)
    alive, why = supervisor_alive(rig)
    refusal = chk.since(mark, _supervisor_record("network", "supervisor.control_refused")) if alive else None
    for name, _outcome, _detail in (_results(ev) if ev is not None else []):
        # each Report is stopped only if the supervisor lived through it and recorded a refusal
        chk.expect(name, alive and refusal is not None,
                   f"supervisor refused it: {((refusal or {}).get('detail') or {}).get('reason', '')}"[:140],
                   why if not alive else "no supervisor.control_refused record after the attack began")
    chk.expect("the supervisor survives the Reports", alive, why, why)
    if alive:
        _untouched(chk, rig, before)
    return chk.finish(_supervisor_record("network", "supervisor.control_refused"),
                      names=("supervisor.control_refused (network)",))


def rt_signal(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("rt-signal-exit", "the network partition dies of a real-time signal")
    chk = Check(rig, res)
    before = rig.supervisor.partition_pids()
    after = rig.seq()
    ev = _inside(chk, rig, "rt_signal", timeout=15.0, offset=5)
    if ev is not None:
        exited = rig.wait_event(lambda e: e.kind == "exited" and e.partition == "network", timeout=10, after=after)
        alive, why = supervisor_alive(rig)
        chk.expect("the supervisor handles the exit", alive and exited is not None,
                   f"exit recorded: {(exited.fields.get('how') if exited else '')}", why if not alive else
                   "no exit event for the network partition")
        if alive:
            ready = rig.wait_event(lambda e: e.kind == "ready" and e.partition == "network", timeout=15,
                                   after=after)
            chk.expect("the network partition's restart policy (always) applies", ready is not None,
                       "restarted and ready again", "the network partition was not restarted")
            _untouched(chk, rig, before)
            lst = rig.wait_event(lambda e: e.kind == "listening" and e.partition == "network", timeout=10,
                                 after=after)
            if lst is not None:  # the restarted link listens on the same configured ports
                rig.https_port, rig.mllp_port = int(lst.fields["https"]), int(lst.fields["mllp"])
    return chk.finish(_supervisor_record("network", "supervisor.exited"),
                      _supervisor_record("network", "supervisor.restart"),
                      names=("supervisor.exited (network, real-time signal)", "supervisor.restart (network)"))


def _rss_mib() -> float:
    """VmRSS of this process: the rig's supervisor runs in it."""
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def control_flood(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("control-flood", "Drops and Reports on the control channel as fast as possible")
    chk = Check(rig, res)
    before = rig.supervisor.partition_pids()
    after = rig.seq()
    rss0 = _rss_mib()
    try:
        ev = rig.inside("control_flood", timeout=FLOOD_S + 20.0, seconds=FLOOD_S,
                        or_until=lambda e: e.kind == "exited" and e.partition == "network")
    except RigError:
        ev = None
    if ev is not None and ev.kind != "attack_report":
        ev = None  # the attacker was stopped before it could report (judged below)
    rss1 = _rss_mib()
    flood = "; ".join(f"{name} ({detail})" for name, _o, detail in (_results(ev) if ev is not None else []))
    if ev is None:
        # no report: the flooding partition itself may have been stopped (its heartbeats are part of the
        # budget it spent), which is a defence only if the supervisor did it and restarts it by its policy
        gone = rig.wait_event(lambda e: e.kind == "exited" and e.partition == "network", timeout=1, after=after)
        back = gone is not None and rig.wait_event(
            lambda e: e.kind == "ready" and e.partition == "network", timeout=30, after=gone.seq) is not None
        chk.expect(f"control flood for {FLOOD_S:g} s (no report: the attacker was stopped)", back,
                   f"the supervisor stopped the flooding partition ({(gone.fields.get('reason') if gone else '')})"
                   " and restarted it by its policy",
                   "the attacker never reported and was not stopped and restarted by the supervisor")
        lst = rig.wait_event(lambda e: e.kind == "listening" and e.partition == "network", timeout=10, after=after)
        if lst is not None:
            rig.https_port, rig.mllp_port = int(lst.fields["https"]), int(lst.fields["mllp"])
    alive, why = supervisor_alive(rig)
    chk.expect(f"the supervisor survives the flood {flood}".strip(), alive, why, why)
    silent = [e for e in rig.events("heartbeat_missed") if e.seq > after and e.partition in SAFETY]
    chk.expect("no safety partition declared silent during the flood", not silent,
               "safety heartbeats judged on time", f"heartbeat_missed for {[e.partition for e in silent]}")
    grew = rss1 - rss0
    chk.expect(f"supervisor memory under the flood ({rss0:.0f} -> {rss1:.0f} MiB)", grew <= RSS_BOUND_MIB,
               f"grew {grew:.1f} MiB (bound {RSS_BOUND_MIB} MiB)", f"grew {grew:.1f} MiB, bound {RSS_BOUND_MIB} MiB")
    if alive:
        _untouched(chk, rig, before)
        ok, why = rig._act("login", [("user", CLINICIAN), ("pin", rig.pins.get(CLINICIAN, "")), ("login", "")],
                           timeout=15.0)
        chk.expect("clinician login after the flood", ok, "auth and the front panel still answer",
                   f"the clinician could not log in after the flood: {why}")
    return chk.finish(_supervisor_record("network", "supervisor.control_throttled", contains=("throttl",)),
                      names=("the supervisor's record of throttling the network partition's control channel",))


def namespaces(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("sandbox-namespaces", "clone/clone3 into new namespaces, personality, memfd_create")
    chk = Check(rig, res)
    ev = rig.inside("namespaces")
    refusals: list[tuple[str, str]] = []
    for name, outcome, detail in _results(ev):
        chk.expect(name, outcome == "blocked", f"seccomp: {detail}", f"{outcome}: {detail}")
        refusals.append((name, detail))
    if rig.supervisor.partition_pids().get("network") is None:
        chk.got_through("the attacker keeps running", "the network partition died during the attempts")
    return chk.finish(refusals=refusals)


def data_quota(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("data-quota", f"{QUOTA_MIB} MiB written into the network partition's data folder")
    chk = Check(rig, res)
    ev = rig.inside("fill_disk", timeout=180.0, mib=QUOTA_MIB)
    for name, outcome, detail in _results(ev):
        refused = outcome == "blocked" and any(e in detail for e in QUOTA_ERRORS)
        chk.expect(name, refused, f"disk quota: {detail}", f"{outcome}: {detail}")
    # the audit log lives on the same host: it must still take new records (a login is one) and verify
    mark = chk.mark()
    ok = rig.login()
    rec = chk.since(mark, event_is("auth.login", partition="auth"))
    chk.expect("the audit log still writes after the attempt", ok and rec is not None and
               rec.get("event") == "auth.login", f"audit #{(rec or {}).get('seq')} auth.login written",
               "no new audit record after the disk attack")
    return chk.finish(lambda r: r.get("event") == "auth.login" and r.get("partition") == "auth",
                      names=("an audit record written after the attack (auth.login)",))


def slow_loris(rig: AttackRig) -> ScenarioResult:
    from hospital_client.client import msa
    from hospital_client.orders import fhir_request, hl7_message, sign

    from .hospital_side import client, order

    res = ScenarioResult("slow-loris", f"{SLOW_CONNECTIONS} connections per listener sending 3 bytes each")
    chk = Check(rig, res)
    held: list[socket.socket] = []
    counts: list[str] = []
    opened_at = time.monotonic()
    try:
        for port in (rig.https_port, rig.mllp_port):
            opened = 0
            for _ in range(SLOW_CONNECTIONS):
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=5.0)
                    s.sendall(b"\x16\x03\x01")  # the start of a TLS record, and then nothing
                    held.append(s)
                    opened += 1
                except OSError:
                    break
            opened_at = time.monotonic()
            counts.append(f"{opened} to :{port}")
        c = client(rig)
        c.timeout = ORDER_DEADLINE_S
        try:
            o = order(c, "fhir", "LORIS-FHIR")
            body, headers = fhir_request(o, sign(o, c.key))

            def fhir() -> tuple[bool, str]:
                status, out = c.post_raw(body, headers)
                return status in (201, 202), f"HTTP {status} {str(out)[:80]}"

            _deliver(chk, c, "a valid signed FHIR order during the slow-loris", fhir)
            h = order(c, "hl7v2", "LORIS-HL7")
            msg = hl7_message(h, sign(h, c.key), control_id="LORIS0001")

            def hl7() -> tuple[bool, str]:
                code, text = msa(c.send_hl7_raw(msg))
                return code in ("AA", "CA"), f"MSA {code} {text[:60]}"

            _deliver(chk, c, "a valid signed HL7 order during the slow-loris", hl7)
        finally:
            c.close()
        # the pump's per-connection deadlines must have cut every silent connection by now (or soon)
        open_now = _still_open(held, opened_at + SLOW_CUT_S)
        chk.expect(f"{len(held)} silent connections ({', '.join(counts)}, 3 bytes each) cut by the pump within "
                   f"{SLOW_CUT_S:g} s", bool(held) and not open_now,
                   "handshake deadline: every one closed by the pump",
                   f"{len(open_now)} of {len(held)} still open after {SLOW_CUT_S:g} s")
    finally:
        for s in held:
            s.close()
    return chk.finish(event_is("order_forwarded", partition="network", contains="LORIS-FHIR"),
                      event_is("order_forwarded", partition="network", contains="LORIS-HL7"),
                      names=("order_forwarded LORIS-FHIR", "order_forwarded LORIS-HL7"))


def _still_open(socks: list[socket.socket], until: float) -> list[socket.socket]:
    """The sockets the peer has not closed by ``until`` (monotonic time)."""
    left = list(socks)
    while left:
        wait = until - time.monotonic()
        if wait <= 0:
            break
        ready, _, _ = select.select(left, [], [], min(wait, 1.0))
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:  # closed or reset by the pump (an alert first is fine too: read again)
                left.remove(s)
    return left


def _deliver(chk: Check, c: Any, what: str, send: Any) -> None:
    """Send as a hospital interface engine does: a connection the pump refuses or resets is opened again
    (after a pause) until the deadline; the verdict is whether the order was answered within it."""
    t0 = time.monotonic()
    tries = 0
    last = ""
    while time.monotonic() - t0 < ORDER_DEADLINE_S:
        tries += 1
        try:
            ok, last = send()
        except (OSError, http.client.HTTPException) as exc:
            c.close()
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(RECONNECT_S)
            continue
        chk.expect(what, ok, f"{last} after {time.monotonic() - t0:.1f} s ({tries} connection(s))", last)
        return
    chk.got_through(what, f"no answer within {ORDER_DEADLINE_S:g} s ({tries} connections; last: {last})"[:200])


SCENARIOS = [
    Scenario("sandbox-namespaces", "compromised network partition makes namespaces or executable memory",
             "clone and clone3 with CLONE_NEWUSER/NEWNS/NEWNET/NEWPID (alone and with NEWUSER) via raw syscalls; "
             "personality(READ_IMPLIES_EXEC); memfd_create",
             "seccomp: clone flags checked, clone3 ENOSYS, personality and memfd_create refused (no audit "
             "record: the evidence is the refusal received)", namespaces),
    Scenario("data-quota", "compromised network partition fills the disk",
             f"write {QUOTA_MIB} MiB into its data folder (on the filesystem that holds the audit log)",
             "the data folder's quota (ENOSPC/EDQUOT/EFBIG); the audit log still writes and verifies", data_quota),
    Scenario("slow-loris", "slow-loris on the hospital listeners",
             f"{SLOW_CONNECTIONS} TCP connections to each TLS listener sending 3 bytes and then nothing; a valid "
             f"signed FHIR and HL7 order meanwhile (answer within {ORDER_DEADLINE_S:g} s)",
             "bounded connections with handshake/header/body deadlines; no thread per idle socket", slow_loris),
    Scenario("control-flood", "compromised network partition floods the supervisor's control channel",
             f"Drops and Report messages as fast as the socket takes them for {FLOOD_S:g} s",
             "per-partition control rate/size/queue bounds, safety heartbeats judged independently, "
             f"supervisor memory bounded ({RSS_BOUND_MIB} MiB growth), throttling audited", control_flood),
    Scenario("sup-report-fields", "control Reports with fields named partition/source/severity/kind",
             "Reports whose fields collide with the supervisor's own event arguments",
             "closed control protocol: reserved fields refused and audited; the supervisor, the safety "
             "partitions and audit keep running", report_fields),
    Scenario("rt-signal-exit", "the network partition dies of a real-time signal",
             "kill itself with SIGRTMIN+5",
             "the supervisor handles every exit status and signal: restart policy applied, exit audited, "
             "others unaffected", rt_signal),
]
