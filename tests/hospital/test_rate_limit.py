"""orders_in's declared rate applied by the sender: an order beyond it is refused at once with the reason
(FHIR 429 + Retry-After, HL7 AR + ERR), audited with bounded volume and never forwarded; orders within it
are forwarded and answered as before. Time is a fake clock the test moves, so nothing depends on timing."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hospital_client import orders
from hospital_client.client import msa
from hypothesis import example, given, settings
from hypothesis import strategies as st
from septum_pump.hospital import answers, hl7_orders, httpio
from septum_pump.hospital.intake import OrderDesk
from septum_pump.hospital.link import SetupError
from septum_pump.hospital.pki import HospitalPki
from septum_pump.hospital.ratelimit import OrderRate, RefusalSummary, retry_after_s

from septum.model import load
from septum.runtime.token_bucket import TokenBucket

from .conftest import MODEL, basic_order
from .intake_helpers import Recorder, peer_of

RATE = 5.0  # what the tests configure; the model's own value is checked separately below


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_model_declares_a_rate_for_orders_in() -> None:
    # the network partition reads it from its sending end (Partition.output_rate), never from a copy
    model, _ = load(MODEL)
    assert model.channel("orders_in").rate_per_s is not None


# ------------------------------------------------------------------------------------------ the bucket
def test_bucket_admits_a_burst_then_refuses_with_the_wait_and_refills() -> None:
    clock = FakeClock()
    rate = OrderRate(RATE, clock=clock)
    admitted = [rate.take() is None for _ in range(int(RATE) + 3)]
    assert admitted.count(True) == rate.capacity == RATE - 1  # one token of headroom below auth's burst
    assert admitted == sorted(admitted, reverse=True)  # the refusals come only after the burst
    wait = rate.take()
    assert wait == pytest.approx(1 / RATE)
    clock.t += 1 / RATE
    assert rate.take() is None and rate.take() is not None
    rate.refund()  # an order that never entered the channel gives its token back
    assert rate.take() is None


def test_retry_after_is_in_real_seconds_rounded_up() -> None:
    clock = FakeClock()
    rate = OrderRate(RATE, clock=clock, to_real=lambda device_s: device_s / 0.01)  # device time 100x slower
    while rate.take() is None:
        pass
    wait = rate.take()
    assert wait is not None and wait == pytest.approx(20.0)
    assert retry_after_s(0.01) == 1 and retry_after_s(20.0) == 20 and retry_after_s(20.2) == 21


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "5/s"])
def test_a_bad_rate_is_a_setup_error(bad: Any, make_link) -> None:
    with pytest.raises(ValueError):
        OrderRate(bad)
    with pytest.raises(SetupError):
        make_link(link_kwargs={"orders_rate_per_s": bad})


_GAP = st.one_of(st.just(0.0), st.just(1 / RATE), st.floats(0.0, 0.5))  # bursts, paced, anything
_LAG = st.one_of(st.just(0.0), st.just(0.99), st.floats(0.0, 0.99))


@settings(max_examples=300, deadline=None)
@given(gaps=st.lists(_GAP, min_size=1, max_size=60), lags=st.lists(_LAG, min_size=60, max_size=60))
@example(gaps=[0.0] * 5 + [1 / RATE], lags=[0.99] * 5 + [0.0] * 55)  # a queued burst, then a prompt order
def test_what_the_sender_admits_the_receiver_never_drops(gaps: list[float], lags: list[float]) -> None:
    """Orders the sender admitted reach auth's bucket (the runtime's own TokenBucket) later, in order, each
    after a queueing lag of up to 1/rate (99% of it: exactly 1/rate is the float boundary): the headroom
    token means auth drops none of them."""
    clock = FakeClock()
    rate = OrderRate(RATE, clock=clock)
    receiver = TokenBucket(RATE, clock.t)  # both buckets start full at the same moment
    sent: list[float] = []
    for gap in gaps:
        clock.t += gap
        if rate.take() is None:
            sent.append(clock.t)
    arrival = -1.0
    for at, lag in zip(sent, lags, strict=False):
        arrival = max(arrival, at + lag / RATE)  # FIFO: an order cannot overtake the one before it
        assert receiver.admit(arrival), f"auth would drop an order sent at {at}: {sent}"


def test_without_the_headroom_a_queued_burst_makes_auth_drop() -> None:
    """Why the sender keeps one token back: the same bucket on both sides is not enough."""
    receiver = TokenBucket(RATE, 0.0)
    # a full burst sent at 0 sits 50 ms in the queue; the next order, sent when a token is due, does not
    assert all(receiver.admit(0.05) for _ in range(int(RATE)))
    assert not receiver.admit(1 / RATE)


def test_refusal_audit_is_bounded_per_second_and_counts_everything() -> None:
    clock, records = FakeClock(), []
    summary = RefusalSummary(lambda *r: records.append(r), "order_rate_limited", clock=clock)
    for i in range(100):
        summary(f"order {i}")
    assert [r[2] for r in records] == ["order 0"]  # one full record for the first second
    summary.flush()
    assert len(records) == 2 and records[1][2].startswith("99 more order(s)")
    clock.t += 1.0
    summary("order 100")
    summary.flush()  # nothing left to summarise: no empty record
    assert len(records) == 3 and summary.total == 101


# ------------------------------------------------------------------------------------------ the answers
def _desk(order_type: Any, clock: FakeClock, audit: Any = lambda *a: None) -> tuple[OrderDesk, Recorder]:
    rec = Recorder()
    desk = OrderDesk(order_type, rec.forward, audit, reply_timeout_s=1.0, rate=OrderRate(RATE, clock=clock))
    rec.desk = desk
    return desk, rec


def _fhir(pki: HospitalPki, desk: OrderDesk, order_id: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    order = orders.make_order(principal="hospital.example", source="fhir", order_id=order_id, patient_id="MRN-1",
                              drug="heparin", concentration=100.0, concentration_unit="units/mL", dose_rate=1000.0,
                              dose_unit="units/h", vtbi_ml=250.0, care_area="icu")
    body, headers = orders.fhir_request(order, orders.sign(order, pki.hospital_client.key))
    req = httpio.Request("POST", "/fhir/MedicationRequest", {k.lower(): v for k, v in headers.items()}, body)
    data, _ = answers.answer_fhir(req, peer_of(pki), desk)
    head, _, out = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), fields, json.loads(out)


def test_fhir_refusal_is_429_with_operation_outcome_and_retry_after(pki, order_type) -> None:
    clock = FakeClock()
    desk, rec = _desk(order_type, clock)
    statuses = [_fhir(pki, desk, f"ORD-F{i}")[0] for i in range(int(RATE) - 1)]
    assert statuses == [201] * (int(RATE) - 1)
    status, head, body = _fhir(pki, desk, "ORD-FX")
    assert status == 429 and head["Retry-After"] == "1"
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    assert issue["severity"] == "error" and issue["code"] == "throttled"
    assert "rate limit" in issue["diagnostics"] and "not forwarded" in issue["diagnostics"]
    assert [o.order_id for o in rec.orders] == [f"ORD-F{i}" for i in range(int(RATE) - 1)]
    assert desk.counts["rate_limited"] == 1 and desk.counts["forwarded"] == int(RATE) - 1


def test_an_invalid_order_is_refused_for_its_content_and_spends_no_token(pki, order_type) -> None:
    clock = FakeClock()
    desk, rec = _desk(order_type, clock)
    order = orders.make_order(principal="hospital.example", source="fhir", order_id="ORD-BAD", patient_id="MRN-1",
                              drug="heparin", concentration=100.0, concentration_unit="units/mL", dose_rate=-1.0,
                              dose_unit="units/h", vtbi_ml=250.0, care_area="icu")
    body, headers = orders.fhir_request(order, orders.sign(order, pki.hospital_client.key))
    req = httpio.Request("POST", "/fhir/MedicationRequest", {k.lower(): v for k, v in headers.items()}, body)
    for _ in range(10):
        data, _ = answers.answer_fhir(req, peer_of(pki), desk)
        assert data.startswith(b"HTTP/1.1 422")
    assert [_fhir(pki, desk, f"ORD-{i}")[0] for i in range(int(RATE) - 1)] == [201] * (int(RATE) - 1)
    assert len(rec.orders) == int(RATE) - 1 and desk.counts["rate_limited"] == 0


# ------------------------------------------------------------------------------------------ over TLS
def _rated_link(make_link: Any, clock: FakeClock, answer: str = "accept", **config: Any) -> Any:
    return make_link(answer=answer, link_kwargs={"orders_rate_per_s": RATE, "clock": clock}, **config)


def _counted_refusals(records: list[tuple[str, str, str]]) -> int:
    """Refusals the audit accounts for: one per full record plus the counts of the summaries."""
    n = 0
    for event, _, detail in records:
        if event == "order_rate_limited":
            m = re.match(r"(\d+) more order\(s\)", detail)
            n += int(m.group(1)) if m else 1
    return n


def test_burst_above_the_rate_gets_explicit_refusals_in_both_formats(make_link, client_for) -> None:
    clock = FakeClock()
    h = _rated_link(make_link, clock)
    c = client_for(h)
    burst = int(RATE) + 3
    fhir = [c.send_fhir(basic_order(c, "fhir", order_id=f"F-{i}")) for i in range(burst)]
    assert [s for s, _ in fhir] == [201] * (int(RATE) - 1) + [429] * 4
    assert all("rate limit" in b["issue"][0]["diagnostics"] for s, b in fhir if s == 429)

    clock.t += 1.0  # a second later the bucket is full again
    hl7 = [c.send_hl7(basic_order(c, "hl7v2", order_id=f"H-{i}")) for i in range(burst)]
    assert [msa(r)[0] for r in hl7] == ["AA"] * (int(RATE) - 1) + ["AR"] * 4
    for reply in hl7[int(RATE) - 1:]:
        msg = hl7_orders.parse(reply.encode())
        assert "RRG^O16" in reply  # a usable RGV^O15 still gets its order reply
        [err] = msg.all("ERR")
        assert err[3].startswith("207^") and "rate limit" in err[8] and "retry after 1 s" in err[8]

    forwarded = [o.order_id for o in h.auth.orders]
    assert forwarded == [f"F-{i}" for i in range(int(RATE) - 1)] + [f"H-{i}" for i in range(int(RATE) - 1)]
    h.link.flush()
    assert _counted_refusals(h.audit.records) == 8 == h.link.desk.counts["rate_limited"]


def test_orders_within_the_rate_are_all_forwarded_and_answered(make_link, client_for) -> None:
    clock = FakeClock()
    h = _rated_link(make_link, clock)
    c = client_for(h)
    statuses, acks = [], []
    for i in range(12):  # well past one burst, each order a token's time after the one before
        statuses.append(c.send_fhir(basic_order(c, "fhir", order_id=f"F-{i}"))[0])
        clock.t += 1 / RATE
        acks.append(msa(c.send_hl7(basic_order(c, "hl7v2", order_id=f"H-{i}")))[0])
        clock.t += 1 / RATE
    assert statuses == [201] * 12 and acks == ["AA"] * 12
    assert len(h.auth.orders) == 24 and h.link.desk.counts["rate_limited"] == 0
    assert "order_rate_limited" not in h.audit.kinds()


def test_pending_is_only_said_of_forwarded_orders(make_link, client_for) -> None:
    clock = FakeClock()
    h = _rated_link(make_link, clock, answer="silent", reply_timeout_s=0.2)
    c = client_for(h)
    statuses = [c.send_fhir(basic_order(c, "fhir", order_id=f"S-{i}"))[0] for i in range(int(RATE))]
    assert statuses == [202] * (int(RATE) - 1) + [429]
    assert [o.order_id for o in h.auth.orders] == [f"S-{i}" for i in range(int(RATE) - 1)]


def test_a_full_channel_is_busy_and_costs_no_rate(make_link, client_for) -> None:
    clock = FakeClock()
    h = _rated_link(make_link, clock, answer="full")
    c = client_for(h)
    # the orders never entered the channel, so they give their tokens back: busy every time, never 429
    assert [c.send_fhir(basic_order(c, "fhir", order_id=f"B-{i}"))[0] for i in range(int(RATE) + 2)] == [503] * 7
    h.auth.answer = "accept"
    assert c.send_fhir(basic_order(c, "fhir", order_id="B-ok"))[0] == 201
