"""Test partition that is not the update service but asks the supervisor to activate partition code.

A packet on its device is msgpack ``{"target", "version", "manifest", "signature"}``; the answer is
reported as an ``activation_result`` event."""

from __future__ import annotations

from typing import Any

import msgspec

from septum.runtime import protocol as proto
from septum.runtime.partition import Partition

_decode = msgspec.msgpack.Decoder(dict[str, Any]).decode


def main(p: Partition) -> None:
    def on_packet(data: bytes) -> None:
        if not data:
            return
        req = _decode(data)
        p.request_activation("intruder-1", req["target"], req["version"], req["manifest"], req["signature"])

    def on_result(msg: proto.ActivateResult) -> None:
        p.event("activation_result", request_id=msg.request_id, status=msg.status, reason=msg.reason)

    for dev in p.devices:
        p.on_device(dev, on_packet)
    p.on_activation_result(on_result)
