"""The one token bucket (septum.runtime.token_bucket), and the event loops' inlined copy of it: both loops,
driven with the same random arrival times as the class, must admit and deny exactly the same messages."""

from __future__ import annotations

import math
import socket
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from septum.runtime import partition as partition_mod
from septum.runtime import protocol as proto
from septum.runtime.channel import ReceiveEnd, SendEnd, create_pair
from septum.runtime.clock import Clock
from septum.runtime.codec import Codec
from septum.runtime.partition import Partition
from septum.runtime.token_bucket import TokenBucket, default_capacity

pytestmark = pytest.mark.timeout(300)


# ------------------------------------------------------------------------------------------ the class
def test_a_full_bucket_admits_its_burst_then_refills_at_the_rate() -> None:
    b = TokenBucket(4.0, 10.0)
    assert [b.admit(10.0) for _ in range(6)] == [True] * 4 + [False] * 2
    assert b.wait() == pytest.approx(0.25)
    assert not b.admit(10.2)  # 0.8 of a token
    assert b.admit(10.25) and not b.admit(10.25)


def test_the_burst_is_one_seconds_worth_and_never_under_one_token() -> None:
    assert default_capacity(50.0) == 50.0 and default_capacity(0.2) == 1.0
    b = TokenBucket(2.0, 0.0)
    assert b.admit(0.0) and b.admit(0.0) and not b.admit(0.0)
    assert sum(b.admit(100.0) for _ in range(5)) == 2, "idle time refills up to the capacity, not beyond"


def test_time_running_backwards_refills_nothing_and_is_not_counted_twice() -> None:
    b = TokenBucket(1.0, 0.0)
    assert b.admit(5.0) and not b.admit(5.0)
    assert not b.admit(4.0)  # an older timestamp: nothing added
    assert not b.admit(5.5)  # half a token since 5.0, not 1.5 since 4.0
    assert b.admit(6.0)


def test_refund_and_an_explicit_capacity() -> None:
    b = TokenBucket(10.0, 0.0, capacity=2.0)
    assert b.admit(0.0) and b.admit(0.0) and not b.admit(0.0)
    b.refund()
    assert b.admit(0.0)
    b.refund()
    b.refund()
    b.refund()
    assert b.tokens == 2.0, "a refund never exceeds the capacity"


def test_a_zero_rate_admits_its_one_token_and_then_nothing() -> None:
    b = TokenBucket(0, 0.0)  # the model accepts "0/s"
    assert b.admit(0.0) and not b.admit(1e9)
    assert b.wait() == math.inf


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "5"])
def test_a_bad_rate_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        TokenBucket(bad, 0.0)


@pytest.mark.parametrize("bad", [0.5, float("inf")])
def test_a_bad_capacity_is_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(1.0, 0.0, capacity=bad)


# ------------------------------------------------------------------------------------------ the inline copies
def _codec() -> Codec:
    return Codec.build("M", {"n": {"type": "int", "min": 0}, "s": {"type": "str", "max_len": 4}})


VALID = msgspec.msgpack.encode([1, "x"])
MALFORMED = msgspec.msgpack.encode([1, "toolong"])  # decodes, fails validation
KINDS = ("ok", "malformed", "oversize")
DEADLINE_S = 20.0


def reference(rate: float, start: float, events: list[tuple[float, int, str]], inputs: int) -> list[str]:
    """What each message's fate must be: the channel's checks in their order (size, rate, decoding), with
    one ``TokenBucket`` per input fed the message's arrival time in device seconds."""
    buckets = [TokenBucket(rate, start) for _ in range(inputs)]
    out = []
    for at, i, kind in events:
        if kind == "oversize":
            out.append("oversize")
        elif not buckets[i].admit(at):
            out.append("rate")
        else:
            out.append("ok" if kind == "ok" else "malformed")
    return out


def run_loop(rate: float, clock: Clock, events: list[tuple[float, int, str]], inputs: int,
             monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], float, str]:
    """Run the real event loop (single-input with one input, the polling loop with more) in this thread; a
    driver thread sets the loop's clock to each message's arrival time (``time.monotonic`` seconds), sends
    it and waits until the loop has accounted for it. Returns each message's fate, the device time the
    buckets started at, and which loop ran."""
    codec = _codec()
    base = clock.origin
    fake = [base]
    monkeypatch.setattr(partition_mod, "_loop_clock", lambda: fake[0])
    tx, rx = [], {}
    for i in range(inputs):
        snd, rcv = create_pair()
        tx.append(SendEnd(f"in{i}", snd, codec))
        rx[f"in{i}"] = ReceiveEnd(f"in{i}", rcv, codec, queue=16, rate_per_s=rate, clock=clock)
    bucket = rx["in0"].bucket
    assert bucket is not None
    start = bucket.last
    ctl, sup = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    p = Partition("p", inputs=rx, outputs={}, control=ctl, clock=clock, data_dir=Path("/tmp"), config={},
                  heartbeat_ms=None)
    for name in rx:
        p.on(name, lambda msg: None)
    loops: list[str] = []
    for loop in ("_run_single", "_run_polling"):
        real = getattr(p, loop)

        def spy(*a: Any, _real: Any = real, _name: str = loop) -> None:
            loops.append(_name)
            _real(*a)
        monkeypatch.setattr(p, loop, spy)
    fates: list[str] = []
    failure: list[str] = []

    def counters() -> dict[str, int]:
        out = {"ok": 0}
        for r in rx.values():
            out["ok"] += r.received
            for reason in ("malformed", "oversize", "rate"):
                out[reason] = out.get(reason, 0) + r.drops[reason]
        return out

    def drive() -> None:
        try:
            for at, i, kind in events:
                before = counters()
                fake[0] = at
                data = {"ok": VALID, "malformed": MALFORMED, "oversize": b"\x00" * (codec.max_size + 10)}[kind]
                tx[i].send_raw(data)
                end = time.monotonic() + DEADLINE_S
                while (after := counters()) == before:
                    if time.monotonic() > end:
                        failure.append(f"message {len(fates)} was never accounted for")
                        return
                    time.sleep(0.0002)
                changed = [k for k in after if after[k] != before.get(k, 0)]
                fates.append(changed[0] if len(changed) == 1 else f"several: {changed}")
        finally:
            sup.send(proto.encoder.encode(proto.Stop("test")))

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    p.run()
    driver.join(DEADLINE_S)
    for s in (ctl, sup, *(e.sock for e in tx), *(r.sock for r in rx.values())):
        s.close()
    assert not failure, failure
    return fates, start, loops[0]


def arrivals(gaps: list[float], clock: Clock) -> tuple[list[float], list[float]]:
    """Arrival times as the loop's clock reads them (real seconds) and as device time, computed the way
    ``Clock.now`` does: (reading - origin) * scale."""
    real, device, t = [], [], 0.0
    for g in gaps:
        t += g
        real.append(clock.origin + t / clock.scale)
        device.append((real[-1] - clock.origin) * clock.scale)
    return real, device


_RATE = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0, 40.0]), st.floats(0.1, 100.0))
_GAP = st.one_of(st.just(0.0), st.sampled_from([0.1, 0.25, 1.0 / 3.0, 1.0]), st.floats(0.0, 2.0))
_EVENTS = st.lists(st.tuples(_GAP, st.integers(0, 2), st.sampled_from(KINDS),), min_size=1, max_size=30)


@pytest.mark.parametrize("inputs", [1, 3])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rate=_RATE, scale=st.sampled_from([1.0, 10.0, 0.25]), raw=_EVENTS)
@example(rate=5.0, scale=1.0, raw=[(0.0, 0, "ok")] * 7 + [(0.2, 0, "ok"), (0.0, 0, "ok")])  # burst, refill
@example(rate=2.0, scale=1.0, raw=[(0.0, 0, "ok")] * 3 + [(5.0, 0, "ok")] * 1 + [(0.0, 0, "ok")] * 3)  # cap
def test_both_event_loops_decide_exactly_as_the_token_bucket(inputs: int, rate: float, scale: float,
                                                              raw: list[tuple[float, int, str]],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # the fake time runs an hour ahead of real time, so that no real deadline (the waker's) comes near
    clock = Clock(origin=time.monotonic() + 3600.0, scale=scale)
    real, device = arrivals([g for g, _, _ in raw], clock)
    with monkeypatch.context() as mp:
        fates, start, loop = run_loop(rate, clock, [(t, i % inputs, k) for t, (_, i, k) in zip(real, raw, strict=True)],
                                      inputs, mp)
    assert loop == ("_run_single" if inputs == 1 else "_run_polling")
    expected = reference(rate, start, [(t, i % inputs, k) for t, (_, i, k) in zip(device, raw, strict=True)], inputs)
    assert fates == expected
