"""A flooding, malformed-message-sending partition, a receiver that must keep working, and a pinger."""

from __future__ import annotations

from septum.runtime.partition import Partition


def flooder(p: Partition) -> None:
    end = p._outputs["flood"]

    def attack() -> None:
        for bad in (b"\xc1", b"\x92\x01", b"\x91\xa3abc", b"\x91\xcd\xff\xff", b"", b"\x91\x05\x05"):
            end.send_raw(bad)
        sent = full = 0
        for i in range(20000):
            if end.send(end.codec.type(n=i % 100)):
                sent += 1
            else:
                full += 1
        p.event("flood_done", sent=sent, full=full)

    p.after(0.05, attack)


def receiver(p: Partition) -> None:
    state = {"flood": 0}

    @p.handler("flood")
    def on_flood(msg: object) -> None:
        state["flood"] += 1

    @p.handler("ping")
    def on_ping(msg: object) -> None:
        p.event("pong", n=msg.n, flood_handled=state["flood"])  # type: ignore[attr-defined]


def pinger(p: Partition) -> None:
    count = {"n": 0}

    def ping() -> None:
        count["n"] = (count["n"] + 1) % 100
        p.send("ping", n=count["n"])

    p.every(0.02, ping)
