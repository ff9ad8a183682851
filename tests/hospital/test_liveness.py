"""Liveness probes (septum.runtime.liveness): declared in the model, handed to the owner by the plan, run
from inside the partition; a listener that stops answering ends the partition with the reason, a healthy
or merely saturated one does not, and the probes themselves are not audited as refused handshakes."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from septum_pump import network
from septum_pump.hospital import servers
from septum_pump.hospital.pki import HospitalPki, provision_network

from septum.model import load
from septum.model.errors import ModelError
from septum.model.loader import loads
from septum.runtime import liveness
from septum.runtime import protocol as proto
from septum.runtime.channel import ReceiveEnd, SendEnd, create_pair
from septum.runtime.clock import Clock
from septum.runtime.codec import Codec, field_spec
from septum.runtime.partition import Partition

from .conftest import MODEL
from .loris import Loris


def _spec(name: str, probe: str = "tls_connect", period: float = 0.1, timeout: float = 0.3,
          failures: int = 3) -> liveness.ProbeSpec:
    return liveness.ProbeSpec(name, probe, period, timeout, failures)


class Recorder:
    def __init__(self) -> None:
        self.fatal: list[str] = []
        self.reports: list[tuple[str, str, str]] = []
        self.done = threading.Event()

    def on_fatal(self, reason: str) -> None:
        self.fatal.append(reason)
        self.done.set()

    def report(self, event: str, severity: str, detail: str) -> None:
        self.reports.append((event, severity, detail))


# ------------------------------------------------------------------------------------------ model and plan
def test_the_pump_model_declares_probes_and_the_plan_hands_them_to_the_owner() -> None:
    model, _ = load(MODEL)
    for name in ("hospital_https", "hospital_mllp"):
        lv = model.interfaces[name].liveness
        assert lv is not None and lv.probe == "tls_connect" and lv.failures >= 1
    cfg = liveness.plan_config(model, "network", {"hospital_https": 41000})
    specs = liveness.specs_from_config(cfg)
    assert set(specs) == {"hospital_https", "hospital_mllp"}
    assert specs["hospital_https"].port == 41000  # this run's port, not the model's 8443
    assert specs["hospital_mllp"].port == 2575
    assert liveness.plan_config(model, "auth") == {}  # owns no interface


BASE = """septum: 1
device: {name: t}
interfaces:
  lan: {kind: network, external: true, port: 8443, authentication: mutual-tls, encryption: tls1.3%s}
partitions:
  p: {runs: "m:main", owns: [lan]}
"""


def test_an_interface_without_liveness_loads_unchanged_and_a_malformed_one_is_a_located_error() -> None:
    model, _ = loads(BASE % "")
    assert model.interfaces["lan"].liveness is None
    assert liveness.plan_config(model, "p") == {}
    model, _ = loads(BASE % ", liveness: {}")
    lv = model.interfaces["lan"].liveness
    assert (lv.probe, lv.period_ms, lv.timeout_ms, lv.failures) == ("tls_connect", 2000, 1000, 3)
    for bad in (", liveness: {probe: ping}", ", liveness: {failures: 0}", ", liveness: {period: 5}"):
        with pytest.raises(ModelError) as exc:
            loads(BASE % bad, "dev.yaml")
        assert "dev.yaml:4:" in str(exc.value), str(exc.value)


def test_malformed_probe_config_is_refused() -> None:
    with pytest.raises(ValueError, match="lan"):
        liveness.specs_from_config({liveness.CONFIG_KEY: {"lan": {"probe": "tls_connect"}}})
    with pytest.raises(ValueError, match="malformed"):
        liveness.specs_from_config({liveness.CONFIG_KEY: {"lan": {"probe": "ping", "period_ms": 1,
                                                                  "timeout_ms": 1, "failures": 1}}})


# ------------------------------------------------------------------------------------------ the probes
def test_a_wedged_listener_fails_its_probes_and_ends_the_partition_with_the_reason() -> None:
    wedged = socket.create_server(("127.0.0.1", 0), backlog=16)  # listens, never accepts: no TLS answer
    rec = Recorder()
    probes = liveness.Liveness({"lan": _spec("lan")}, rec.on_fatal, rec.report)
    probes.watch("lan", "127.0.0.1", wedged.getsockname()[1])
    probes.start()
    try:
        assert rec.done.wait(10)
        [reason] = rec.fatal
        assert reason.startswith("liveness: lan (tls_connect 127.0.0.1:") and "failed 3 probe(s) in a row" in reason
        assert "no TLS answer" in reason
        assert [r[0] for r in rec.reports] == ["liveness_failed"]  # one report, not one per probe
    finally:
        probes.stop()
        wedged.close()


def test_a_closed_listener_fails_a_tcp_connect_probe() -> None:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rec = Recorder()
    probes = liveness.Liveness({"lan": _spec("lan", "tcp_connect", failures=2)}, rec.on_fatal, rec.report)
    probes.watch("lan", "0.0.0.0", port)  # a wildcard bind is probed on loopback
    probes.start()
    try:
        assert rec.done.wait(10)
        assert "ECONNREFUSED" in rec.fatal[0] and "failed 2 probe(s)" in rec.fatal[0]
    finally:
        probes.stop()


def test_a_probe_declared_in_the_model_but_never_registered_is_fatal() -> None:
    rec = Recorder()
    liveness.Liveness({"lan": _spec("lan"), "wifi": _spec("wifi")}, rec.on_fatal).start()
    assert rec.fatal and "wifi" in rec.fatal[0] and "lan" in rec.fatal[0]


def test_the_hospital_listeners_pass_their_probes_even_when_saturated_and_probes_are_not_audited(
        make_link) -> None:
    rec = Recorder()
    probes = liveness.Liveness({"https": _spec("https"), "mllp": _spec("mllp")}, rec.on_fatal, rec.report)
    h = make_link(max_pending=2, link_kwargs={"is_probe": probes.is_probe})
    probes.watch("https", "127.0.0.1", h.link.https.port)
    probes.watch("mllp", "127.0.0.1", h.link.mllp.port)
    probes.start()
    loris = Loris([("127.0.0.1", h.link.https.port)], 10)  # the https listener at its limit meanwhile
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and min(s["probes"] for s in probes.state().values()) < 10:
            time.sleep(0.1)
        loris.open()
        before = probes.state()["https"]["probes"]
        while time.monotonic() < deadline and probes.state()["https"]["probes"] < before + 5:
            time.sleep(0.1)
        assert probes.state()["https"]["probes"] >= before + 5
        assert h.link.server.listeners[0].refused > 0  # the probes met a full listener
        assert rec.fatal == [] and all(s["failed"] == 0 for s in probes.state().values()), probes.state()
        # every probe completed a handshake the pump then refused (no client certificate): not audited
        assert "tls_refused" not in h.audit.kinds()
    finally:
        loris.close()
        probes.stop()


# ------------------------------------------------------------------------------------------ the network partition
def _codec(model: Any, message: str) -> Codec:
    return Codec.build(message, {n: field_spec(f) for n, f in model.messages[message].items()})


def test_the_network_partition_ends_itself_when_its_listener_wedges(pki: HospitalPki, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The real entry point with real channel ends, its listener loop wedged (it stops turning): the
    model's probes find it and the partition calls ``fatal`` with the reason (the supervisor-level restart
    is in test_liveness_restart.py)."""
    model, _ = load(MODEL)
    clock = Clock.start()
    inputs: dict[str, ReceiveEnd] = {}
    outputs: dict[str, SendEnd] = {}
    keep: list[socket.socket] = []
    for name in ("orders_in", "updates_in", "audit_network", "order_replies", "pump_events"):
        ch = model.channel(name)
        snd, rcv = create_pair()
        keep += [snd, rcv]
        if name in ("order_replies", "pump_events"):
            inputs[name] = ReceiveEnd(name, rcv, _codec(model, ch.message), queue=64, rate_per_s=None, clock=clock)
        else:
            outputs[name] = SendEnd(name, snd, _codec(model, ch.message), rate_per_s=ch.rate_per_s)
    control, supervisor_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    cfg = liveness.plan_config(model, "network")
    for entry in cfg[liveness.CONFIG_KEY].values():  # faster than the model's 2 s, same mechanism
        entry.update(period_ms=100, timeout_ms=300)
    p = Partition("network", inputs=inputs, outputs=outputs, control=control, clock=clock,
                  data_dir=provision_network(tmp_path / "data", pki),
                  config={**model.partitions["network"].config, **cfg}, heartbeat_ms=None)
    reasons: list[str] = []
    fatal = threading.Event()

    def record(reason: str, detail: str = "") -> None:
        reasons.append(reason)
        fatal.set()

    p.fatal = record  # type: ignore[method-assign]  # the real one ends the process
    wedge = threading.Event()
    real_loop = servers.Server._loop

    def loop(self: servers.Server) -> None:
        wedge.wait()  # stuck: the listeners stay bound, nothing accepts or answers

    monkeypatch.setattr(servers.Server, "_loop", loop)
    try:
        network.main(p)
        supervisor_end.settimeout(5)
        listening = None
        while listening is None:
            msg = proto.from_partition.decode(supervisor_end.recv(proto.MAX_CONTROL_MESSAGE))
            if isinstance(msg, proto.Report) and msg.kind == "listening":
                listening = msg.fields
        assert sorted(listening["liveness"]) == ["hospital_https", "hospital_mllp"]
        assert fatal.wait(10)
        assert reasons[0].startswith("liveness: hospital_") and "no TLS answer" in reasons[0]
    finally:
        wedge.set()
        monkeypatch.setattr(servers.Server, "_loop", real_loop)
        for s in keep:
            s.close()
