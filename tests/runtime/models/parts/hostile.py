"""A hostile partition that attacks the supervisor through its control channel, and a safety partition
that must not be affected. The attack is chosen by the partition's config (``attack``)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from septum.runtime import protocol as proto
from septum.runtime.partition import Partition


def _raw(p: Partition, data: bytes) -> None:
    p._control.send(data)  # straight onto the control channel: no client-side check


def _encode(msg: Any) -> bytes:
    return proto.encoder.encode(msg)


def hostile(p: Partition) -> None:
    attack = str(p.config.get("attack", ""))
    seconds = float(p.config.get("seconds", 2.0))

    def run() -> None:
        p.event("attack_sent", attack=attack)  # first: every effect of the attack comes after it
        if attack.startswith("reserved:"):
            name = attack.split(":", 1)[1]
            _raw(p, _encode(proto.Report(kind="hello", fields={name: "forged"})))
        elif attack == "forged_kind":
            _raw(p, _encode(proto.Report(kind="safe_state", severity="critical", fields={"why": "forged"})))
        elif attack == "unknown_field":
            _raw(p, proto.encoder.encode({"type": "Beat", "seq": 1, "extra": "merged?"}))
        elif attack == "deep_fields":
            value: Any = "x"
            for _ in range(50):
                value = [value]
            _raw(p, _encode(proto.Report(kind="hello", fields={"deep": value})))
        elif attack == "oversized":
            _raw(p, b"\x00" * (proto.MAX_FROM_PARTITION + 4096))
        elif attack == "foreign_drops":
            _raw(p, _encode(proto.Drops(channel="not_mine", received=1, drops={"size": 1})))
        elif attack == "rt_signal":
            os.kill(os.getpid(), signal.SIGRTMIN + 5)
        elif attack == "flood":
            def flood() -> None:
                drops = _encode(proto.Drops(channel="tick", received=1, drops={"size": 1}))
                report = _encode(proto.Report(kind="noise", fields={"n": 1, "pad": "y" * 200}))
                end = time.monotonic() + seconds
                n = 0
                while time.monotonic() < end:
                    try:
                        p._control.send(drops if n % 2 else report)
                    except OSError:
                        time.sleep(0.001)
                    n += 1
                time.sleep(1.5)  # the supervisor discards what is over its budget: let the budget refill
                p.audit("flood_done", sent=n)  # blocking send: it must arrive

            threading.Thread(target=flood, daemon=True).start()

    p.after(0.1, run)

    if "tick" in p.inputs:
        p.on("tick", lambda msg: None)


def safety(p: Partition) -> None:
    n = {"i": 0}

    def tick() -> None:
        n["i"] = (n["i"] + 1) % 100
        p.send("tick", n=n["i"])

    if "tick" in p.outputs:
        p.every(0.02, tick)
