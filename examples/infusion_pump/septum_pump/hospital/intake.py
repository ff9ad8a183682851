"""The order desk: what happens to an order once a transport has parsed it, whatever the transport.

1. complete it with what only the TLS session knows (the peer's identity as ``principal``, its
   certificate as ``cert``), 2. run our own checks (``validate.check_order``) and verify the hospital's
   signature (auth verifies again: this partition is not trusted), 3. apply ``orders_in``'s declared rate
   (``ratelimit.OrderRate``): an order beyond it is refused now, because auth would drop it unanswered,
   4. forward it to auth on ``orders_in``, 5. wait (bounded) for the answer and tell the transport the
   outcome ("pending" therefore means forwarded, never dropped here). The answer is auth's ``OrderReply``
   when auth refuses; when auth forwards the order, it is pump_control's ``OrderVerdict`` (the drug
   library and care area check at arrival, ``septum_pump.order_check``): refused (hard limit, unknown
   drug, wrong care area...), pre-filled, or pre-filled needing a soft-limit override at the pump. This
   partition only relays that verdict; it checks no limit itself (it is not trusted).

An accepted order is only *pre-filled* at the pump: a clinician must confirm it there (pump_control and
ui enforce that and expire unconfirmed orders); the answer to the hospital says so. Every refusal is
audited with its reason. Thread-safe: transports call ``submit`` from their connection threads while the
partition's event loop calls ``on_reply``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from .ratelimit import OrderRate, RefusalSummary, retry_after_s
from .tls import verify_order_signature
from .validate import OrderRejected, check_order

Forward = Callable[[msgspec.Struct], bool]
Audit = Callable[[str, str, str], None]  # (event, severity, detail)


@dataclass(frozen=True)
class Peer:
    identity: str  # SAN DNS name / URI / CN of the TLS client certificate
    cert_der: bytes
    address: str = ""


@dataclass(frozen=True)
class Outcome:
    status: str  # accepted | rejected | pending | busy | rate_limited
    reason: str
    order_id: str = ""
    field: str = ""
    code: str = ""  # FHIR issue type for a rejection
    stage: str = ""  # validation | auth | library (pump_control's verdict) | transport
    retry_after_s: int = 0  # rate_limited: whole seconds until the rate admits an order again
    needs_override: bool = False  # accepted, with soft-limit excesses: a clinician must override at the pump


# pump_control's OrderVerdict values
VERDICT_REFUSED, VERDICT_PREFILLED, VERDICT_NEEDS_OVERRIDE = "refused", "prefilled", "needs_override"


class _Waiter:
    __slots__ = ("accepted", "authorised", "done", "reason", "verdict")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.accepted = False
        self.authorised = False  # auth forwarded it; the verdict is still to come
        self.reason = ""
        self.verdict = ""  # pump_control's, once it arrived


class OrderDesk:
    def __init__(self, order_type: type[msgspec.Struct], forward: Forward, audit: Audit, *,
                 reply_timeout_s: float = 2.0, max_in_flight: int = 16, rate: OrderRate | None = None,
                 expect_verdict: bool = False) -> None:
        self.order_type = order_type
        # True when pump_control answers each forwarded order (the model's ``order_verdicts``): auth's
        # acceptance then only means "forwarded", and the hospital's answer waits for the verdict
        self.expect_verdict = expect_verdict
        self.forward = forward
        self.audit = audit
        self.rate = rate  # None: no sender-side bound (auth's bound still applies, unanswered)
        self.rate_refusals = RefusalSummary(audit, "order_rate_limited")
        self.reply_timeout_s = reply_timeout_s
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiter] = {}
        self.counts: dict[str, int] = {"accepted": 0, "rejected": 0, "pending": 0, "busy": 0, "forwarded": 0,
                                       "rate_limited": 0}

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def reject(self, exc: OrderRejected, peer: Peer | None, source: str, order_id: str = "") -> Outcome:
        """Audit and describe a refusal (also used by transports for errors found before ``submit``)."""
        self._count("rejected")
        who = peer.identity if peer is not None else "?"
        self.audit("order_rejected", "warning",
                   f"{source} order {order_id[:64]!r} from {who[:128]!r} refused: {exc.reason}")
        return Outcome("rejected", exc.reason, order_id, exc.field, exc.code, "validation")

    def submit(self, fields: dict[str, Any], peer: Peer) -> Outcome:
        source = str(fields.get("source", "?"))
        order_id = fields.get("order_id")
        order_id = order_id if isinstance(order_id, str) else ""
        fields = {**fields, "principal": peer.identity, "cert": peer.cert_der}
        try:
            order = check_order(fields, self.order_type)
            signed = msgspec.structs.asdict(order)
            problem = verify_order_signature(signed, peer.cert_der, order.signature)  # type: ignore[attr-defined]
            if problem is not None:
                raise OrderRejected(problem, field="signature", code="security")
        except OrderRejected as exc:
            return self.reject(exc, peer, source, order_id)
        waiter = _Waiter()
        with self._lock:
            if order_id in self._waiting:
                busy = f"order {order_id!r} is already awaiting authorisation"
            elif len(self._waiting) >= self.max_in_flight:
                busy = f"{self.max_in_flight} orders are already awaiting authorisation; retry later"
            else:
                busy = ""
                self._waiting[order_id] = waiter
        if busy:
            self._count("busy")
            self.audit("order_busy", "notice", f"{source} order {order_id!r} from {peer.identity!r}: {busy}")
            return Outcome("busy", busy, order_id, stage="transport")
        # the rate is taken last, after everything that can refuse the order for another reason, so an
        # invalid or duplicate order does not spend a token that a valid one then lacks
        if self.rate is not None and (wait := self.rate.take()) is not None:
            with self._lock:
                if self._waiting.get(order_id) is waiter:
                    del self._waiting[order_id]
            return self._rate_limited(self.rate, source, order_id, peer, wait)
        try:
            if not self.forward(order):
                if self.rate is not None:
                    self.rate.refund()
                self._count("busy")
                self.audit("order_busy", "warning", f"{source} order {order_id!r}: orders_in channel full")
                return Outcome("busy", "the pump is busy (order channel full); retry later", order_id,
                               stage="transport")
            self._count("forwarded")
            self.audit("order_forwarded", "info", f"{source} order {order_id!r} from {peer.identity!r} to auth")
            if not waiter.done.wait(self.reply_timeout_s):
                self._count("pending")
                if waiter.authorised:
                    return Outcome("pending", "authorised; the pump's drug-library check did not answer within "
                                   f"{self.reply_timeout_s:g} s", order_id, stage="library")
                return Outcome("pending", f"forwarded; no authorisation answer within {self.reply_timeout_s:g} s",
                               order_id, stage="auth")
        finally:
            with self._lock:
                if self._waiting.get(order_id) is waiter:
                    del self._waiting[order_id]
        if waiter.verdict:
            return self._verdict(waiter, source, order_id, peer)
        if waiter.accepted:
            self._count("accepted")
            return Outcome("accepted", waiter.reason or "pre-filled at the pump; a clinician must confirm it there",
                           order_id, stage="auth")
        self._count("rejected")
        return Outcome("rejected", waiter.reason or "refused by the pump's authorisation service", order_id,
                       code="forbidden", stage="auth")

    def _rate_limited(self, rate: OrderRate, source: str, order_id: str, peer: Peer, wait_s: float) -> Outcome:
        self._count("rate_limited")
        retry = retry_after_s(wait_s)
        reason = (f"rate limit: the pump takes at most {rate.rate:g} orders/s; this order was not "
                  f"forwarded and will not be processed; retry after {retry} s")
        self.rate_refusals(f"{source} order {order_id[:64]!r} from {peer.identity[:128]!r} refused: {reason}")
        return Outcome("rate_limited", reason, order_id, code="throttled", stage="transport", retry_after_s=retry)

    def _verdict(self, waiter: _Waiter, source: str, order_id: str, peer: Peer) -> Outcome:
        if waiter.verdict == VERDICT_REFUSED:
            self._count("rejected")
            self.audit("order_rejected", "warning", f"{source} order {order_id[:64]!r} from {peer.identity[:128]!r} "
                       f"refused by the pump's drug library: {waiter.reason}")
            return Outcome("rejected", waiter.reason, order_id, code="business-rule", stage="library")
        self._count("accepted")
        soft = waiter.verdict == VERDICT_NEEDS_OVERRIDE
        return Outcome("accepted", waiter.reason, order_id, code="business-rule" if soft else "", stage="library",
                       needs_override=soft)

    def on_verdict(self, order_id: str, verdict: str, reason: str) -> None:
        """pump_control's verdict on a forwarded order (it checked it against its drug library)."""
        with self._lock:
            waiter = self._waiting.get(order_id)
        if waiter is None:
            self.audit("order_reply_late", "notice",
                       f"the pump's verdict on order {order_id!r} came after the wait: {verdict} {reason}")
            return
        waiter.verdict = verdict if verdict in (VERDICT_REFUSED, VERDICT_PREFILLED, VERDICT_NEEDS_OVERRIDE) \
            else VERDICT_REFUSED
        waiter.reason = reason
        waiter.done.set()

    def on_reply(self, order_id: str, accepted: bool, reason: str) -> None:
        with self._lock:
            waiter = self._waiting.get(order_id)
        if waiter is None:
            # the hospital was already told "pending"; the outcome is still recorded
            self.audit("order_reply_late", "notice",
                       f"auth answered order {order_id!r} after the wait: accepted={accepted} {reason}")
            return
        if waiter.verdict:
            return  # pump_control's verdict came first: it is the answer (it implies auth forwarded it)
        if accepted and self.expect_verdict:
            waiter.authorised = True  # forwarded to pump_control: wait on for its verdict
            return
        waiter.accepted = accepted
        waiter.reason = reason
        waiter.done.set()
