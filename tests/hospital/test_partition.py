"""The network partition's entry point with a real Partition object and real channel ends (socketpairs
built from the model), in one process: orders reach ``orders_in`` typed and signed, auth's answer on
``order_replies`` reaches the hospital, audit records go out on ``audit_network``, pump events are
buffered on disk, and the bound ports are reported in a ``listening`` event."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from septum_pump import network
from septum_pump.hospital.pki import HospitalPki, provision_network

from septum.model import load
from septum.runtime import protocol as proto
from septum.runtime.channel import ReceiveEnd, SendEnd, create_pair
from septum.runtime.clock import Clock
from septum.runtime.codec import Codec, field_spec
from septum.runtime.partition import Partition

from .conftest import MODEL, basic_order


def _codec(model: Any, message: str) -> Codec:
    return Codec.build(message, {n: field_spec(f) for n, f in model.messages[message].items()})


def test_network_partition_end_to_end_in_process(pki: HospitalPki, tmp_path: Path, client_for) -> None:
    model, _ = load(MODEL)
    clock = Clock.start()
    inputs: dict[str, ReceiveEnd] = {}
    outputs: dict[str, SendEnd] = {}
    other: dict[str, socket.socket] = {}  # the far end of each channel, held by the test
    for name in ("orders_in", "updates_in", "audit_network", "order_replies", "pump_events"):
        ch = model.channel(name)
        codec = _codec(model, ch.message)
        snd, rcv = create_pair()
        if name in ("order_replies", "pump_events"):
            inputs[name] = ReceiveEnd(name, rcv, codec, queue=64, rate_per_s=None, clock=clock)
            other[name] = snd
        else:
            outputs[name] = SendEnd(name, snd, codec, rate_per_s=ch.rate_per_s)
            other[name] = rcv
    control, supervisor_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    data_dir = provision_network(tmp_path / "data", pki)
    p = Partition("network", inputs=inputs, outputs=outputs, control=control, clock=clock, data_dir=data_dir,
                  config={**model.partitions["network"].config, "reply_timeout_s": 5.0}, heartbeat_ms=None)
    network.main(p)
    loop = threading.Thread(target=p.run)
    loop.start()
    supervisor_end.settimeout(10)
    try:
        ports: dict[str, Any] = {}
        while not ports:
            msg = proto.from_partition.decode(supervisor_end.recv(proto.MAX_CONTROL_MESSAGE))
            if isinstance(msg, proto.Report) and msg.kind == "listening":
                ports = msg.fields
        orders_codec, reply_codec = _codec(model, "InfusionOrder"), _codec(model, "OrderReply")
        received: list[Any] = []

        def auth() -> None:  # the auth service's side of orders_in / order_replies
            other["orders_in"].settimeout(10)
            order = orders_codec.decode(other["orders_in"].recv(65536))
            received.append(order)
            other["order_replies"].send(reply_codec.encoder.encode(reply_codec.make(
                order_id=order.order_id, accepted=True, reason="pre-filled; confirm at the pump")))

        t = threading.Thread(target=auth)
        t.start()

        class _H:  # what client_for needs: the bound ports
            class link:
                https = type("L", (), {"port": ports["https"]})
                mllp = type("L", (), {"port": ports["mllp"]})

        c = client_for(_H)
        status, body = c.send_fhir(basic_order(c, "fhir"))
        t.join(10)
        assert status == 201 and "confirm at the pump" in body["issue"][0]["diagnostics"]
        assert received[0].order_id == "ORD-1001" and received[0].principal == "hospital.example"
        # audit records reach the audit service's channel
        audit_codec = _codec(model, "AuditEvent")
        other["audit_network"].settimeout(10)
        kinds = set()
        while "order_forwarded" not in kinds:
            kinds.add(audit_codec.decode(other["audit_network"].recv(65536)).event)
        # a pump event is kept on disk (no outbound target provisioned)
        event_codec = _codec(model, "PumpEvent")
        other["pump_events"].send(event_codec.encoder.encode(event_codec.make(
            kind="alarm", order_id="ORD-1001", text="occlusion", value=0.0, unit="", at_ms=1)))
        # bounded wait (10 s) for the loop to hand the event to the on-disk buffer
        outbound, tick = data_dir / "outbound", threading.Event()
        for _ in range(200):
            if list(outbound.glob("*.event.json")):
                break
            tick.wait(0.05)
        assert len(list(outbound.glob("*.event.json"))) == 1
    finally:
        p.stop()
        loop.join(10)
