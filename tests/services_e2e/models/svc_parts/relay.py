"""Test partition: relays test-rig packets from its device to its output channels, and reports every
message it receives as an event (so a test sees what reached it, and from which channel).

A packet is msgpack ``{"channel": NAME, "fields": {...}}`` on any device the partition owns."""

from __future__ import annotations

from typing import Any

import msgspec

from septum.runtime.partition import Partition

_decode = msgspec.msgpack.Decoder(dict[str, Any]).decode


def main(p: Partition) -> None:
    def on_packet(data: bytes) -> None:
        if not data:
            return
        try:
            packet = _decode(data)
            ok = p.send(str(packet["channel"]), **packet["fields"])
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as exc:
            p.event("relay_refused", error=str(exc)[:200])
            return
        p.event("relayed", channel=packet["channel"], ok=ok)

    for dev in p.devices:
        p.on_device(dev, on_packet)

    def report(channel: str) -> Any:
        def on_msg(msg: Any) -> None:
            fields = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in msgspec.structs.asdict(msg).items()}
            p.event("received", channel=channel, **fields)
        return on_msg

    for ch in p.inputs:
        p.on(ch, report(ch))
