"""Canonical bytes of a message's fields, for end-to-end signatures across untrusted partitions.

A machine principal (the hospital server) signs an order with its TLS client key; the network partition
only carries it; the auth service verifies. Both ends must encode the same fields the same way, whatever
the transport (FHIR JSON, HL7 v2), so the signature covers msgpack of the fields sorted by name, with the
signature and certificate themselves left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

UNSIGNED = ("cert", "signature")
_encoder = msgspec.msgpack.Encoder()


def canonical(fields: Mapping[str, Any] | msgspec.Struct, exclude: tuple[str, ...] = UNSIGNED) -> bytes:
    if isinstance(fields, msgspec.Struct):
        fields = msgspec.structs.asdict(fields)
    return _encoder.encode(sorted((k, v) for k, v in fields.items() if k not in exclude))
