"""TEST EQUIPMENT: a hostile network partition for the hostile-neighbour property test.

It stands in for the pump's network partition (same uid, sandbox and channels as the model grants it) and
does whatever the test asks through command files dropped into its data folder: raw bytes and floods on
its control channel and its output channels, raising, hanging, exiting with any code, dying of any signal.
Nothing here is part of the pump.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from septum.runtime import protocol as proto
from septum.runtime.partition import Partition

COMMAND = "hostile-command.json"


def _control(p: Partition, data: bytes) -> None:
    try:
        p._control.send(data, socket.MSG_DONTWAIT)  # no client-side checks: straight to the supervisor
    except OSError:
        pass


def _channel(p: Partition, name: str, data: bytes) -> None:
    end = p._outputs.get(name)
    if end is None:
        return
    try:
        end.sock.send(data, socket.MSG_DONTWAIT)
    except OSError:
        pass


def _flood_control(p: Partition, what: str, seconds: float) -> int:
    inputs = list(p._inputs) or ["x"]
    msgs = {
        "drops": proto.encoder.encode({"type": "Drops", "channel": inputs[0], "received": 1, "drops": {"size": 1}}),
        "report": proto.encoder.encode({"type": "Report", "kind": "noise", "fields": {"pad": "z" * 300}}),
        "beat": proto.encoder.encode({"type": "Beat", "seq": 1}),
        "garbage": b"\xc1\xff\x00" * 20,
    }
    data = msgs.get(what, msgs["garbage"])
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        _control(p, data)
        n += 1
    return n


def run_action(p: Partition, action: list[Any]) -> None:
    op = action[0]
    if op == "report":  # an arbitrary report, as a map: any kind, severity and field names
        _control(p, proto.encoder.encode({"type": "Report", "kind": action[1], "severity": action[2],
                                          "fields": action[3]}))
    elif op == "raw_control":
        _control(p, bytes.fromhex(action[1]))
    elif op == "control_flood":
        _flood_control(p, action[1], action[2])
    elif op == "channel_raw":
        _channel(p, action[1], bytes.fromhex(action[2]))
    elif op == "channel_flood":
        for i in range(action[2]):
            _channel(p, action[1], bytes([i % 256]) * 40)
    elif op == "raise":
        raise RuntimeError("hostile partition raises")
    elif op == "hang":
        time.sleep(action[1])
    elif op == "exit":
        os._exit(action[1])
    elif op == "signal":
        os.kill(os.getpid(), action[1])


def main(p: Partition) -> None:
    cmd = Path(p.data_dir) / COMMAND

    def poll() -> None:
        try:
            text = cmd.read_text()
        except OSError:
            return
        cmd.unlink()
        actions = json.loads(text)
        p.audit("hostile_actions", count=len(actions))
        for action in actions:
            run_action(p, action)

    p.every(0.02 * getattr(p.clock, "scale", 1.0), poll)  # every 20 ms of real time
