"""Update chunks pushed by the hospital's update server: ``POST /septum/update``, one chunk per request.

The update server splits a manufacturer-signed bundle (``septum update make``) into chunks of at most 64 KiB
and signs each chunk with its TLS client key, as the hospital signs an order: ECDSA P-256/SHA-256 over
``signed_fields.canonical`` of ``{bundle_id, index, total, data, principal, nonce, sent_at_ms}``. This
partition completes the chunk with what only the TLS session knows (the peer's identity as ``principal``,
its certificate as ``cert``), checks the framing and the signature only to answer a bad one at once (auth
checks both again: this partition is not trusted), forwards it to auth on ``updates_in`` and waits,
bounded, for auth's ``UpdateAck``. Auth accepts a chunk only from a pinned update server while a biomed
has opened an install window at the pump; the update service then reassembles, verifies the
manufacturer's signature and the anti-rollback floor, installs and health-checks.

Request headers: ``X-Septum-Bundle-Id`` (letters, digits, ``._:-``, <= 64), ``X-Septum-Chunk``
(``index/total``, 0-based), ``X-Septum-Update-Nonce`` (16-64 characters, unique),
``X-Septum-Update-Sent-At`` (ms since the Unix epoch), ``X-Septum-Update-Signature`` (base64 DER);
``Content-Type: application/octet-stream``; the body is the chunk. Answers (JSON ``{"accepted", "reason"}``):
``200`` auth accepted the chunk for installation, ``202`` forwarded but no answer within ``reply_timeout_s``,
``400`` malformed, ``403`` bad signature or refused by auth (no install window, unknown identity, replay),
``503`` busy. The install outcome (installed, refused by signature or anti-rollback, rolled back by the
health check) is decided after the last chunk and recorded in the audit log (``update.installed`` /
``update.refused``).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable
from typing import Any

import msgspec

from . import httpio
from .intake import Peer
from .tls import verify_order_signature

UPDATE_PATH = "/septum/update"
_BUNDLE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_NONCE = re.compile(r"^[A-Za-z0-9._:\-]{16,64}$")

Forward = Callable[[msgspec.Struct], bool]
Audit = Callable[[str, str, str], None]


class ChunkRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class _Waiter:
    __slots__ = ("accepted", "done", "reason")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.accepted = False
        self.reason = ""


def _answer(status: int, accepted: bool, reason: str, close: bool) -> bytes:
    return httpio.response(status, httpio.json_body({"accepted": accepted, "reason": reason}),
                           content_type="application/json", close=close)


def chunk_fields(req: httpio.Request, peer: Peer) -> dict[str, Any]:
    """The chunk a request carries (without ``cert``/``signature``), or ChunkRefused(400) with the reason."""
    h = req.headers
    bid = h.get("x-septum-bundle-id", "")
    if not _BUNDLE_ID.match(bid):
        raise ChunkRefused(400, "X-Septum-Bundle-Id missing or not 1-64 of letters, digits, ._:-")
    index_s, slash, total_s = h.get("x-septum-chunk", "").partition("/")
    if not (slash and index_s.isdigit() and total_s.isdigit() and len(index_s) <= 5 and len(total_s) <= 5):
        raise ChunkRefused(400, "X-Septum-Chunk missing or not index/total")
    nonce = h.get("x-septum-update-nonce", "")
    if not _NONCE.match(nonce):
        raise ChunkRefused(400, "X-Septum-Update-Nonce missing or not 16-64 of letters, digits, ._:-")
    sent = h.get("x-septum-update-sent-at", "")
    if not sent.isdigit() or len(sent) > 16:
        raise ChunkRefused(400, "X-Septum-Update-Sent-At missing or not milliseconds since the epoch")
    return {"bundle_id": bid, "index": int(index_s), "total": int(total_s), "data": req.body,
            "principal": peer.identity, "nonce": nonce, "sent_at_ms": int(sent)}


class UpdateDesk:
    """Thread-safe like the order desk: connection workers call ``answer``, the event loop ``on_reply``."""

    def __init__(self, chunk_type: type[msgspec.Struct], forward: Forward, audit: Audit, *,
                 reply_timeout_s: float = 2.0, max_in_flight: int = 16) -> None:
        self.chunk_type, self.forward, self.audit = chunk_type, forward, audit
        self.reply_timeout_s, self.max_in_flight = reply_timeout_s, max_in_flight
        self._lock = threading.Lock()
        self._waiting: dict[tuple[str, int], _Waiter] = {}

    def answer(self, req: httpio.Request, peer: Peer) -> bytes:
        close = not req.keep_alive
        if req.method != "POST":
            return _answer(405, False, "only POST is accepted", close)
        try:
            return self._submit(req, peer, close)
        except ChunkRefused as exc:
            self.audit("update_chunk_rejected", "warning", f"update chunk from {peer.identity[:128]!r} at "
                       f"{peer.address}: {exc.status} {exc.reason}")
            return _answer(exc.status, False, exc.reason, close)

    def _submit(self, req: httpio.Request, peer: Peer, close: bool) -> bytes:
        ctype = req.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/octet-stream":
            raise ChunkRefused(400, "Content-Type must be application/octet-stream")
        fields = chunk_fields(req, peer)
        try:
            signature = base64.b64decode(req.headers.get("x-septum-update-signature", ""), validate=True)
        except (binascii.Error, ValueError):
            raise ChunkRefused(400, "X-Septum-Update-Signature is not base64") from None
        if not signature:
            raise ChunkRefused(403, "the chunk is not signed (X-Septum-Update-Signature)")
        problem = verify_order_signature(fields, peer.cert_der, signature)
        if problem is not None:
            raise ChunkRefused(403, problem.replace("order", "update chunk"))
        try:  # the model's bounds (data <= 64 KiB, index/total <= 4096, lengths) decide, not a copy of them
            # (the generated types are array-like: build, then decode exactly as a receiver would)
            raw = msgspec.msgpack.encode(self.chunk_type(**fields, cert=peer.cert_der, signature=signature))
            chunk = msgspec.msgpack.decode(raw, type=self.chunk_type)
        except (msgspec.ValidationError, TypeError, ValueError) as exc:
            raise ChunkRefused(400, f"chunk out of bounds: {exc}"[:200]) from None
        key = (fields["bundle_id"], fields["index"])
        waiter = _Waiter()
        with self._lock:
            if key in self._waiting or len(self._waiting) >= self.max_in_flight:
                busy = True
            else:
                busy = False
                self._waiting[key] = waiter
        if busy:
            self.audit("update_chunk_busy", "notice", f"chunk {key[1]} of {key[0]!r}: already awaiting auth")
            return _answer(503, False, "this chunk (or too many) is already awaiting authorisation; retry", close)
        try:
            if not self.forward(chunk):
                self.audit("update_chunk_busy", "warning", f"chunk {key[1]} of {key[0]!r}: updates_in full")
                return _answer(503, False, "the pump is busy (update channel full); retry later", close)
            self.audit("update_chunk_forwarded", "info", f"chunk {key[1]}/{fields['total']} of {key[0]!r} from "
                       f"{peer.identity[:128]!r} to auth")
            if not waiter.done.wait(self.reply_timeout_s):
                return _answer(202, False, f"forwarded; no authorisation answer within {self.reply_timeout_s:g} s",
                               close)
        finally:
            with self._lock:
                if self._waiting.get(key) is waiter:
                    del self._waiting[key]
        if waiter.accepted:
            return _answer(200, True, waiter.reason or "accepted for installation", close)
        self.audit("update_chunk_refused", "warning", f"chunk {key[1]} of {key[0]!r} from {peer.identity[:128]!r}: "
                   f"auth refused: {waiter.reason}")
        return _answer(403, False, waiter.reason or "refused by the pump's authorisation service", close)

    def on_reply(self, bundle_id: str, index: int, accepted: bool, reason: str) -> None:
        with self._lock:
            waiter = self._waiting.get((bundle_id, index))
        if waiter is None:
            self.audit("update_reply_late", "notice", f"auth answered chunk {index} of {bundle_id!r} after the "
                       f"wait: accepted={accepted} {reason}")
            return
        waiter.accepted, waiter.reason = accepted, reason
        waiter.done.set()
