"""Test partition: streams numbered audit records (channel and p.audit) when told to by a timer."""

from __future__ import annotations

from septum.runtime.partition import Partition


def main(p: Partition) -> None:
    total = int(p.config.get("count", 100))
    per_tick = int(p.config.get("per_tick", 20))
    state = {"i": 0}

    def burst() -> None:
        # a few records per tick, so the stream is still flowing when a test kills the audit partition
        for _ in range(per_tick):
            i = state["i"]
            if i >= total:
                p.event("producer_done", count=total)
                timer.cancel()
                return
            if not p.send("audit_producer", event="test.record", severity="notice", detail=f"record {i}",
                          at_ms=i):
                p.event("producer_full", at=i)
                return
            p.audit("test.p_audit", severity="notice", n=i)
            state["i"] = i + 1

    timer = p.every(0.01, burst)
