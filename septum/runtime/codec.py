"""Typed message codecs generated from the model's ``messages``.

Every message type becomes a frozen msgspec Struct whose fields carry their bounds (``Meta``), so the
receiving side validates a message completely while decoding it: unknown fields, wrong types, strings
that are too long and numbers out of range are all decode errors. Fields the model left unbounded get
the conservative defaults below, because a runtime channel must never accept an unbounded value.

This module takes *plain* field descriptions (dicts, as carried in the partition's boot configuration)
rather than ``septum.model`` objects so that a partition process does not import the YAML loader.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from septum.errors import SeptumError

# Bounds applied when the model does not give one (the analysis flags unbounded fields separately).
DEFAULT_MAX_LEN = 65536
DEFAULT_MAX_ITEMS = 1024
# Upper bound on one encoded message: SEQPACKET messages larger than the socket buffer cannot be sent.
MAX_ENCODED = 200 * 1024

_SCALARS = {"str", "bytes", "int", "float", "bool", "enum"}


class CodecError(SeptumError, ValueError):
    """A message schema that cannot be turned into a codec (a model problem, reported before start)."""


def field_spec(field: Any) -> dict[str, Any]:
    """Plain-dict form of a ``septum.model.MessageField`` (what travels in the boot configuration)."""
    return {
        "type": field.type,
        "max_len": field.max_len,
        "min": field.min,
        "max": field.max,
        "values": list(field.values),
        "items": field.items,
        "max_items": field.max_items,
        "optional": field.optional,
    }


def _num_meta(kind: str, spec: Mapping[str, Any]) -> Meta | None:
    lo, hi = spec.get("min"), spec.get("max")
    kw: dict[str, Any] = {}
    if kind == "int":
        if lo is not None:
            kw["ge"] = math.ceil(lo)
        if hi is not None:
            kw["le"] = math.floor(hi)
    else:
        if lo is not None:
            kw["ge"] = float(lo)
        if hi is not None:
            kw["le"] = float(hi)
    return Meta(**kw) if kw else None


def _scalar_type(kind: str, spec: Mapping[str, Any], where: str) -> Any:
    if kind in ("str", "bytes"):
        base: Any = str if kind == "str" else bytes
        return Annotated[base, Meta(max_length=spec.get("max_len") or DEFAULT_MAX_LEN)]
    if kind in ("int", "float"):
        base = int if kind == "int" else float
        meta = _num_meta(kind, spec)
        return Annotated[base, meta] if meta is not None else base
    if kind == "bool":
        return bool
    if kind == "enum":
        values = tuple(spec.get("values") or ())
        if not values:
            raise CodecError(f"{where}: an enum field needs 'values'")
        return Literal[values]
    raise CodecError(f"{where}: unknown field type {kind!r}")


def _field_type(spec: Mapping[str, Any], where: str) -> Any:
    kind = spec["type"]
    if kind == "list":
        item = spec.get("items")
        if item not in _SCALARS:
            raise CodecError(f"{where}: a list field needs 'items' of a scalar type, not {item!r}")
        # For a list, max_len/min/max/values describe each item; max_items bounds the list.
        inner = _scalar_type(item, spec, where)
        return Annotated[list[inner], Meta(  # type: ignore[valid-type]  # built at run time from the model
            max_length=spec.get("max_items") or DEFAULT_MAX_ITEMS)]
    return _scalar_type(kind, spec, where)


def _max_scalar_size(kind: str, spec: Mapping[str, Any]) -> int:
    if kind in ("str", "bytes"):
        n = spec.get("max_len") or DEFAULT_MAX_LEN
        return 5 + n * (4 if kind == "str" else 1)  # utf-8: at most 4 bytes per code point
    if kind == "enum":
        return 5 + 4 * max(len(v) for v in spec.get("values") or ("",))
    return 9  # int, float, bool, nil


def max_encoded_size(fields: Mapping[str, Mapping[str, Any]]) -> int:
    """A safe upper bound of the msgpack size of one message (array encoding), capped at MAX_ENCODED."""
    total = 5
    for spec in fields.values():
        if spec["type"] == "list":
            items = spec.get("max_items") or DEFAULT_MAX_ITEMS
            total += 5 + items * _max_scalar_size(spec["items"], spec)
        else:
            total += _max_scalar_size(spec["type"], spec)
    return min(total, MAX_ENCODED)


def _finite_check(float_fields: tuple[str, ...], list_float_fields: tuple[str, ...]) -> Any:
    # msgspec accepts NaN/inf for an unbounded float; a device message must not carry them.
    def __post_init__(self: Any) -> None:
        for name in float_fields:
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number")
        for name in list_float_fields:
            v = getattr(self, name)
            if v is not None and not all(math.isfinite(x) for x in v):
                raise ValueError(f"{name} must contain finite numbers")

    return __post_init__


def message_type(name: str, fields: Mapping[str, Mapping[str, Any]]) -> type[msgspec.Struct]:
    """Build the Struct type of one message. Raises CodecError on an unusable schema."""
    defs: list[Any] = []
    floats: list[str] = []
    list_floats: list[str] = []
    for fname, spec in fields.items():
        where = f"message {name}.{fname}"
        tp = _field_type(spec, where)
        if spec["type"] == "float":
            floats.append(fname)
        if spec["type"] == "list" and spec.get("items") == "float":
            list_floats.append(fname)
        if spec.get("optional"):
            defs.append((fname, tp | None, None))
        else:
            defs.append((fname, tp))
    namespace = {}
    if floats or list_floats:
        namespace["__post_init__"] = _finite_check(tuple(floats), tuple(list_floats))
    try:
        return msgspec.defstruct(
            name,
            defs,
            namespace=namespace,
            frozen=True,
            kw_only=True,
            forbid_unknown_fields=True,
            array_like=True,  # compact and fast; unknown trailing elements are still rejected
        )
    except (TypeError, ValueError) as exc:
        raise CodecError(f"message {name}: {exc}") from None


@dataclass(frozen=True)
class Codec:
    """Encoder and strict decoder for one message type (one per channel end)."""

    message: str
    type: type[msgspec.Struct]
    max_size: int
    encoder: msgspec.msgpack.Encoder
    decoder: msgspec.msgpack.Decoder[Any]

    @classmethod
    def build(cls, message: str, fields: Mapping[str, Mapping[str, Any]]) -> Codec:
        tp = message_type(message, fields)
        return cls(
            message=message,
            type=tp,
            max_size=max_encoded_size(fields),
            encoder=msgspec.msgpack.Encoder(),
            decoder=msgspec.msgpack.Decoder(tp),
        )

    def encode(self, msg: msgspec.Struct) -> bytes:
        if type(msg) is not self.type:
            raise TypeError(f"expected a {self.message} message, got {type(msg).__name__}")
        return self.encoder.encode(msg)

    def make(self, **fields: Any) -> msgspec.Struct:
        """Build a message and validate it exactly as the receiver will (raises ValidationError)."""
        try:
            obj = self.type(**fields)
        except TypeError as exc:
            raise msgspec.ValidationError(f"{self.message}: {exc}") from None
        return self.decoder.decode(self.encoder.encode(obj))

    def decode(self, data: bytes | memoryview) -> msgspec.Struct:
        """Decode strictly; raises msgspec.ValidationError / DecodeError (or ValueError) when malformed."""
        return self.decoder.decode(data)


DecodeErrors = (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError)
