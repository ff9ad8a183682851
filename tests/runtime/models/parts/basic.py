"""Partitions for the runtime tests: a producer, an echo, and a consumer that reports what it got."""

from __future__ import annotations

from septum.runtime.partition import Partition


def producer(p: Partition) -> None:
    count = int(p.config.get("count", 3))
    sent = {"n": 0}

    def tick() -> None:
        if sent["n"] < count:
            p.send("numbers", value=sent["n"], label=f"n{sent['n']}")
            sent["n"] += 1

    p.every(0.01, tick)


def consumer(p: Partition) -> None:
    @p.handler("numbers")
    def got(msg: object) -> None:
        p.event("got", value=msg.value, label=msg.label, t=p.now())  # type: ignore[attr-defined]
