"""Pushing a manufacturer-signed update bundle to the pump as the hospital's update server.

The pump takes it only while a biomed has opened an install window at the pump (the *install update* key
after logging in). The bundle is cut into chunks of at most 64 KiB; each chunk is one ``POST /septum/update``
signed with this client's TLS key (ECDSA P-256/SHA-256 over ``signed_fields.canonical`` of
``{bundle_id, index, total, data, principal, nonce, sent_at_ms}``; see the pump's
``septum_pump/hospital/update_desk.py``). The identity in the client certificate must be pinned to the
``update_server`` role on the pump (``septum provision --pin-identity updates.hospital.example=update_server``).
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from septum.services.signed_fields import canonical

PATH = "/septum/update"
CHUNK = 60 * 1024


@dataclass(frozen=True)
class ChunkAnswer:
    index: int
    status: int
    accepted: bool
    reason: str


def signed_chunks(bundle: bytes, bundle_id: str, principal: str, key: ec.EllipticCurvePrivateKey, *,
                  chunk: int = CHUNK) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(fields, signature) for each chunk of ``bundle``, signed just before it is sent (the pump refuses a
    chunk signed more than 30 s before it arrives)."""
    parts = [bundle[i:i + chunk] for i in range(0, len(bundle), chunk)] or [b""]
    for i, data in enumerate(parts):
        fields = {"bundle_id": bundle_id, "index": i, "total": len(parts), "data": data, "principal": principal,
                  "nonce": secrets.token_hex(16), "sent_at_ms": int(time.time() * 1000)}
        yield fields, key.sign(canonical(fields), ec.ECDSA(hashes.SHA256()))


def headers_for(fields: dict[str, Any], signature: bytes) -> dict[str, str]:
    return {"Content-Type": "application/octet-stream", "X-Septum-Bundle-Id": fields["bundle_id"],
            "X-Septum-Chunk": f"{fields['index']}/{fields['total']}", "X-Septum-Update-Nonce": fields["nonce"],
            "X-Septum-Update-Sent-At": str(fields["sent_at_ms"]),
            "X-Septum-Update-Signature": base64.b64encode(signature).decode()}


def push(host: str, port: int, ctx: ssl.SSLContext, key: ec.EllipticCurvePrivateKey, principal: str,
         bundle: bytes, bundle_id: str, *, chunk: int = CHUNK, only: set[int] | None = None,
         timeout: float = 10.0) -> list[ChunkAnswer]:
    """Send the chunks (``only``: just those indexes, e.g. to leave a transfer unfinished); stops at the
    first chunk the pump refuses. Returns the pump's answer to each chunk sent."""
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    answers: list[ChunkAnswer] = []
    try:
        for fields, sig in signed_chunks(bundle, bundle_id, principal, key, chunk=chunk):
            if only is not None and fields["index"] not in only:
                continue
            conn.request("POST", PATH, body=fields["data"], headers=headers_for(fields, sig))
            resp = conn.getresponse()
            body = json.loads(resp.read() or b"{}")
            answers.append(ChunkAnswer(fields["index"], resp.status, bool(body.get("accepted")),
                                       str(body.get("reason", ""))))
            if resp.status != 200:
                break
    finally:
        conn.close()
    return answers
