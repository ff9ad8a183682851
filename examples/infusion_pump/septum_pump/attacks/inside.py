"""Scenarios run by attacker code inside the network partition's sandbox (see ``inside_network``)."""

from __future__ import annotations

import json
from typing import Any

from ..rig import PUMP_DIR, RigError
from .base import Check, Scenario, ScenarioResult, event_is
from .device import AttackRig


def _results(ev: Any) -> list[list[str]]:
    return [list(map(str, r)) for r in json.loads(ev.fields.get("results", "[]"))]


def _drops(rig: AttackRig, after: int, channel: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """The runtime's drop report for ``channel`` (the receiver counts every refused message)."""
    ev = rig.wait_event(lambda e: e.kind == "channel_drops" and e.fields.get("channel") == channel,
                        timeout=timeout, after=after)
    return dict(ev.fields) if ev is not None else None


def channels(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("net-channels", "compromised network partition sends motor/rate commands")
    chk = Check(rig, res)
    after = rig.seq()
    ev = rig.inside("channels")
    replies = json.loads(ev.fields.get("replies", "{}"))
    for name, outcome, detail in _results(ev):
        if outcome == "info":
            continue
        if name.startswith("raw MotorCommand"):
            ch = name.rsplit(" ", 1)[-1]
            drops = _drops(rig, after, ch)
            chk.expect(name, drops is not None, f"runtime: strict decoding at {ch}'s receiver dropped it "
                       f"({(drops or {}).get('last_error', '')})"[:160], "no drop reported by the receiver")
        elif name.startswith("forged InfusionOrder"):
            verdict = replies.get("ATK-FORGED-1")
            chk.expect(name, verdict is not None and not verdict[0], f"auth refused: {(verdict or ['', ''])[1]}"[:160],
                       f"auth answered {verdict}")
        else:
            chk.expect(name, outcome == "blocked", f"runtime: {detail}", f"{outcome}: {detail}")
    return chk.finish(event_is("auth.denied", partition="auth", contains="orders_in"),
                      event_is("supervisor.channel_drops", contains="orders_in"),
                      names=("auth.denied for the forged order", "channel_drops for the raw bytes"))


def sandbox(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("net-sandbox", "compromised network partition tries to leave its sandbox")
    chk = Check(rig, res)
    sup = rig.supervisor
    pids = sup.partition_pids()
    dirs = {k: str(sup.data_dir(k)) for k in pids}
    try:
        # the attempts take well under a second; a partition replaced by an exec never reports at all
        ev = rig.inside("sandbox", timeout=20.0, pids=pids, data_dirs=dirs, code_dir=str(PUMP_DIR / "septum_pump"),
                        or_until=lambda e: e.kind == "exited" and e.partition == "network")
        if ev.kind != "attack_report":
            raise RigError(f"the network partition exited during the attempts ({ev.fields.get('how')})")
    except RigError as exc:  # no report: e.g. an exec replaced the process before it could say so
        chk.got_through("the attacker's report on its sandbox attempts", f"{exc}; network pid "
                        f"{pids.get('network')} -> {sup.partition_pids().get('network')}")
        return chk.finish(event_is("refused_call", partition="network"),
                          names=("the refused exec reported by the partition's audit hook",))
    for name, outcome, detail in _results(ev):
        how = ("seccomp/Landlock/uid" if "Errno" in detail or "PermissionError" in detail
               or "EPERM" in detail or "EACCES" in detail else "runtime")
        chk.expect(name, outcome == "blocked", f"{how}: {detail}"[:120], f"{outcome}: {detail}")
    if sup.partition_pids().get("network") != pids.get("network"):
        chk.got_through("keep running after exec", "the network partition process was replaced or died")
    # exec attempts are refused by the audit hook, which reports them; that report reaches the audit log
    return chk.finish(event_is("refused_call", partition="network"),
                      names=("the refused exec reported by the partition's audit hook",))


def backdoor(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("net-backdoor-listener", "compromised network partition opens its own TCP listener")
    chk = Check(rig, res)
    from .surface import _listening_inodes, _socket_inodes

    ev = rig.inside("backdoor", port=0)
    refusals: list[tuple[str, str]] = []
    for name, outcome, detail in _results(ev):
        chk.expect(name, outcome == "blocked", f"Landlock: {detail}", f"{outcome}: {detail}")
        refusals.append((name, detail))
    # checked from outside too, while a listener that worked is still held open: the network partition's
    # listening sockets are only its declared ports
    pid = rig.supervisor.partition_pids().get("network")
    if pid is None:
        chk.got_through("network partition still running after the attempt", "it is gone")
    else:
        mine = {port for ino, port in _listening_inodes(pid).items() if ino in _socket_inodes(pid)}
        extra = mine - {rig.https_port, rig.mllp_port}
        chk.expect(f"network partition's TCP listeners after the attempt: {sorted(mine)}", not extra,
                   "only the declared hospital_https/hospital_mllp ports", f"undeclared listener(s) {sorted(extra)}")
    # Landlock refuses the bind with EACCES and records nothing: the evidence is the refusal the attack got
    return chk.finish(refusals=refusals)


def flood(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("net-flood", "compromised network partition floods every channel it holds")
    chk = Check(rig, res)
    after = rig.seq()
    n = 2000
    ev = rig.inside("flood", n=n)
    for name, _outcome, detail in _results(ev):
        ch = name.rsplit(" ", 1)[-1]
        drops = _drops(rig, after, ch)
        if drops is not None:
            chk.stopped(f"{name} ({detail})", f"runtime rate/queue bound at {ch}'s receiver: "
                        f"{ {k: v for k, v in dict(drops.get('drops') or {}).items() if v} } dropped and reported")
        else:
            chk.got_through(name, "the receiver reported no drops: the flood was not bounded")
    # the device still serves its users: a clinician can still log in through auth
    ok = rig.login()
    chk.expect("clinician login during the flood's aftermath", ok, "auth still answers the front panel",
               "the clinician could not log in after the flood")
    return chk.finish(event_is("supervisor.channel_drops", contains="orders_in"),
                      event_is("supervisor.channel_drops", contains="audit_network"),
                      names=("channel_drops orders_in", "channel_drops audit_network"))


SCENARIOS = [
    Scenario("net-channels", "compromised network partition sends motor or rate commands",
             "send on motor_cmd/commands/program/fault_reset/drug_library/auth_replies (no handle); MotorCommand "
             "fields and raw MotorCommand bytes on orders_in/updates_in; a forged 999 mL/h order",
             "no channel end (KeyError), typed codec, strict decoding at the receiver, auth's signature check",
             channels),
    Scenario("net-sandbox", "compromised network partition tries to leave its sandbox",
             "AF_UNIX/AF_PACKET/AF_NETLINK sockets, read other partitions' data and keys, write outside its data "
             "dir, exec (three ways), ptrace/ /proc/pid/mem / signal the safety partitions, setuid, unshare, "
             "io_uring, bpf, mount",
             "seccomp-BPF, Landlock, own uid, PEP 578 hook (exec)", sandbox),
    Scenario("net-flood", "compromised network partition floods its channels",
             "2000 messages as fast as it can on orders_in, updates_in and audit_network",
             "per-channel token bucket and queue bound at the receiver; drops counted and reported", flood),
    Scenario("net-backdoor-listener", "compromised network partition opens an undeclared TCP listener",
             "bind+listen on 127.0.0.1 (a telnet-style backdoor); its listeners checked from outside",
             "Landlock (ABI >= 4): a partition with network binds only its own interfaces' ports (EACCES, not "
             "audited: the evidence is the refusal the attack received)", backdoor),
]
