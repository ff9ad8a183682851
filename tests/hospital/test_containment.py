"""What one hostile request can do to the listeners: nothing beyond its own answer. A request whose answer
raises is answered 500 / AR and audited, and the link goes on serving (a hostile client must not be able to
restart the network partition at will); JSON nested deeper than the decoder goes is a plain 400."""

from __future__ import annotations

import pytest
from hospital_client.orders import fhir_request, sign
from septum_pump.hospital import answers

from .conftest import basic_order


def test_json_nested_deeper_than_the_decoder_is_refused_400(make_link, client_for) -> None:
    reasons: list[str] = []
    h = make_link(link_kwargs={"fatal": reasons.append})
    c = client_for(h)
    o = basic_order(c, "fhir")
    _, headers = fhir_request(o, sign(o, c.key))
    status, body = c.post_raw(b"[" * 10000 + b"]" * 10000, headers)
    assert status == 400 and "not JSON" in body["issue"][0]["diagnostics"], body
    assert reasons == [] and h.auth.orders == []


def test_a_request_whose_answer_raises_fails_alone(make_link, client_for, monkeypatch: pytest.MonkeyPatch) -> None:
    reasons: list[str] = []
    h = make_link(link_kwargs={"fatal": reasons.append})
    c = client_for(h)
    real = answers.answer_fhir

    def broken(req, peer, desk):  # type: ignore[no-untyped-def]
        raise ValueError("simulated parser bug")

    monkeypatch.setattr(answers, "answer_fhir", broken)
    status, body = c.send_fhir(basic_order(c, "fhir", order_id="ORD-BUG"))
    assert status == 500 and body["issue"][0]["code"] == "exception"
    _, _, detail = h.audit.wait_for(lambda r: r[0] == "request_failed")
    assert "ValueError: simulated parser bug" in detail
    monkeypatch.setattr(answers, "answer_fhir", real)
    status, body = c.send_fhir(basic_order(c, "fhir", order_id="ORD-OK"))  # on a new connection
    assert status == 201, body
    assert reasons == []
