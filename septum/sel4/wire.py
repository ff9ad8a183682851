"""The wire layout of a typed seL4 channel, in Python: one ring per channel in the channel's memory region.

This is the reference for the C that ``septum.sel4.c_channels`` generates (the generator takes its offsets,
sizes and bounds from here) and the Python side of the tests that encode here and decode in C, and back.
docs/sel4.md ("Typed channels in C: wire layout") describes the same layout for users.

Everything is little-endian (aarch64 runs little-endian) and packed: fields follow each other in model
order with no alignment padding, so a payload is exactly ``septum.gen.layout.message_size`` bytes and fits
the slot the layout allocates. Each field has a fixed size (its bound), so every field has a fixed offset.

The encoding is canonical: a valid payload has exactly one byte string per message (unused string, list and
absent-field bytes are zero), so ``encode(decode(b)) == b`` for every payload the receiver accepts.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from septum.errors import SeptumError
from septum.model.schema import MessageField

MAGIC = 0x47525053  # b"SPRG" read as a little-endian u32
LAYOUT_VERSION = 1
RING_HEADER_SIZE = 64  # septum.gen.layout.RING_HEADER
SLOT_HEADER_SIZE = 8  # septum.gen.layout.SLOT_HEADER
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT32_MAX = 2**32 - 1

# ring header offsets
OFF_MAGIC, OFF_VERSION, OFF_HEADER_SIZE, OFF_SLOT_SIZE, OFF_SLOTS, OFF_PAYLOAD_SIZE, OFF_FINGERPRINT = (
    0, 4, 6, 8, 12, 16, 20)
OFF_WRITE_INDEX = 24  # u64, 8-aligned
# slot header offsets
OFF_SLOT_LEN, OFF_SLOT_SEQ = 0, 4

# Why a receiver refused a payload. The C code uses the same numbers (SEPTUM_REFUSED_*); the first failing
# field in model order decides the reason.
REFUSALS: dict[str, int] = {
    "LENGTH": 1,  # the slot's length word is not this message's payload size
    "PRESENCE": 2,  # an optional field's presence byte is neither 0 nor 1
    "BOOL": 3,  # a bool byte is neither 0 nor 1
    "ENUM": 4,  # an enum index is not below the number of values
    "INT_RANGE": 5,  # an int outside the model's [min, max]
    "FLOAT_NONFINITE": 6,  # NaN or an infinity
    "FLOAT_RANGE": 7,  # a finite float outside the model's [min, max]
    "STR_LEN": 8,  # a str byte length over its capacity, or more characters than max_len
    "UTF8": 9,  # a str that is not well-formed UTF-8
    "BYTES_LEN": 10,  # a bytes length over max_len
    "LIST_COUNT": 11,  # a list count over max_items
    "PADDING": 12,  # a byte the layout leaves unused is not zero
}

_SCALAR_SIZE = {"int": 8, "float": 8, "bool": 1, "enum": 4}


class Refusal(SeptumError, ValueError):
    """A payload the receiver refuses (or a value a sender must not send): ``reason`` is a key of REFUSALS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.code = REFUSALS[reason]


@dataclass(frozen=True)
class FieldLayout:
    """One field: where it sits in the payload and what a receiver accepts in it."""

    name: str
    type: str  # str bytes int float bool enum list
    item: str | None  # the item type of a list
    optional: bool
    offset: int  # of the presence byte if optional, else of the value
    size: int  # bytes including the presence byte
    max_len: int  # str: characters; bytes: bytes (also per list item)
    max_items: int
    values: tuple[str, ...]
    int_lo: int
    int_hi: int
    float_lo: float | None
    float_hi: float | None

    @property
    def value_offset(self) -> int:
        return self.offset + (1 if self.optional else 0)

    @property
    def item_size(self) -> int:
        return _value_size(self.item or self.type, self.max_len, 0, 0)

    @property
    def str_capacity(self) -> int:
        """Bytes reserved for one str value: UTF-8 needs at most 4 bytes per character."""
        return 4 * self.max_len


@dataclass(frozen=True)
class MessageLayout:
    name: str
    fields: tuple[FieldLayout, ...]
    size: int  # payload bytes
    fingerprint: int  # FNV-1a 32 of the canonical schema: a receiver built for another schema refuses the ring


def _value_size(kind: str, max_len: int, max_items: int, item_size: int) -> int:
    if kind in _SCALAR_SIZE:
        return _SCALAR_SIZE[kind]
    if kind == "str":
        return 4 + 4 * max_len
    if kind == "bytes":
        return 4 + max_len
    return 4 + max_items * item_size  # list


def _int_bounds(f: MessageField) -> tuple[int, int]:
    lo = INT64_MIN if f.min is None else max(INT64_MIN, math.ceil(f.min))
    hi = INT64_MAX if f.max is None else min(INT64_MAX, math.floor(f.max))
    return lo, hi


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def canonical_schema(name: str, fields: Mapping[str, MessageField]) -> str:
    """The text the fingerprint is taken over: everything that changes what a receiver accepts."""
    parts = [f"septum-wire/{LAYOUT_VERSION}", name]
    for fname, f in fields.items():
        parts.append(f"{fname}:{f.type}:{f.items}:{int(f.optional)}:{f.max_len}:{f.max_items}:"
                     f"{f.min!r}:{f.max!r}:{','.join(f.values)}")
    return "\n".join(parts)


def message_layout(name: str, fields: Mapping[str, MessageField]) -> MessageLayout:
    """The payload layout of one message type. ValueError for a field that cannot be laid out."""
    out: list[FieldLayout] = []
    offset = 0
    for fname, f in fields.items():
        item = f.items if f.type == "list" else None
        if f.type == "list":
            if item is None or item == "list" or f.max_items is None:
                raise ValueError(f"field '{fname}' of message '{name}' is a list without scalar items and max_items")
        kind = item or f.type
        if kind in ("str", "bytes") and f.max_len is None:
            raise ValueError(f"field '{fname}' of message '{name}' is a {kind} without max_len")
        if kind == "enum" and not 0 < len(f.values) <= 65535:
            raise ValueError(f"field '{fname}' of message '{name}' is an enum with {len(f.values)} values "
                             "(1..65535 fit the uint16_t index)")
        max_len = f.max_len or 0
        max_items = f.max_items or 0
        item_size = _value_size(kind, max_len, 0, 0)
        size = _value_size(f.type, max_len, max_items, item_size) + (1 if f.optional else 0)
        lo, hi = _int_bounds(f)
        out.append(FieldLayout(fname, f.type, item, f.optional, offset, size, max_len, max_items, tuple(f.values),
                               lo, hi, None if f.min is None else float(f.min),
                               None if f.max is None else float(f.max)))
        offset += size
    return MessageLayout(name, tuple(out), offset, fnv1a32(canonical_schema(name, fields).encode()))


# -- payload encode / decode --------------------------------------------------------------------------------
def _enc_scalar(kind: str, f: FieldLayout, v: Any, buf: bytearray, at: int) -> None:
    """Write one value at ``at``; raise Refusal for a value the receiver would refuse (the sender never sends it)."""
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{f.name}: expected an int, got {type(v).__name__}")
        if not f.int_lo <= v <= f.int_hi:
            raise Refusal("INT_RANGE", f"{f.name}: {v} outside [{f.int_lo}, {f.int_hi}]")
        struct.pack_into("<q", buf, at, v)
    elif kind == "float":
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(f"{f.name}: expected a float, got {type(v).__name__}")
        v = float(v)
        _check_float(f, v)
        struct.pack_into("<d", buf, at, v)
    elif kind == "bool":
        if not isinstance(v, bool):
            raise TypeError(f"{f.name}: expected a bool, got {type(v).__name__}")
        buf[at] = int(v)
    elif kind == "enum":
        if v not in f.values:
            raise Refusal("ENUM", f"{f.name}: {v!r} is not one of {list(f.values)}")
        struct.pack_into("<I", buf, at, f.values.index(v))
    elif kind == "str":
        if not isinstance(v, str):
            raise TypeError(f"{f.name}: expected a str, got {type(v).__name__}")
        if len(v) > f.max_len:
            raise Refusal("STR_LEN", f"{f.name}: {len(v)} characters, at most {f.max_len}")
        try:
            data = v.encode("utf-8")
        except UnicodeEncodeError:
            raise Refusal("UTF8", f"{f.name}: not encodable as UTF-8 (a lone surrogate)") from None
        struct.pack_into("<I", buf, at, len(data))
        buf[at + 4:at + 4 + len(data)] = data
    elif kind == "bytes":
        if not isinstance(v, bytes | bytearray | memoryview):
            raise TypeError(f"{f.name}: expected bytes, got {type(v).__name__}")
        data = bytes(v)
        if len(data) > f.max_len:
            raise Refusal("BYTES_LEN", f"{f.name}: {len(data)} bytes, at most {f.max_len}")
        struct.pack_into("<I", buf, at, len(data))
        buf[at + 4:at + 4 + len(data)] = data
    else:
        raise AssertionError(kind)


def _check_float(f: FieldLayout, v: float) -> None:
    if not math.isfinite(v):
        raise Refusal("FLOAT_NONFINITE", f"{f.name}: {v}")
    if (f.float_lo is not None and v < f.float_lo) or (f.float_hi is not None and v > f.float_hi):
        raise Refusal("FLOAT_RANGE", f"{f.name}: {v} outside [{f.float_lo}, {f.float_hi}]")


def encode(layout: MessageLayout, values: Mapping[str, Any]) -> bytes:
    """The payload of one message. Refusal for a value the receiver would refuse, TypeError/KeyError for misuse."""
    unknown = set(values) - {f.name for f in layout.fields}
    if unknown:
        raise KeyError(f"{layout.name}: unknown field(s) {sorted(unknown)}")
    buf = bytearray(layout.size)
    for f in layout.fields:
        v = values.get(f.name)
        if v is None:
            if not f.optional:
                raise KeyError(f"{layout.name}: field '{f.name}' is required")
            continue  # presence byte and value stay zero
        if f.optional:
            buf[f.offset] = 1
        at = f.value_offset
        if f.type == "list":
            items = list(v)
            if len(items) > f.max_items:
                raise Refusal("LIST_COUNT", f"{f.name}: {len(items)} items, at most {f.max_items}")
            struct.pack_into("<I", buf, at, len(items))
            for i, item in enumerate(items):
                _enc_scalar(f.item or "", f, item, buf, at + 4 + i * f.item_size)
        else:
            _enc_scalar(f.type, f, v, buf, at)
    return bytes(buf)


def _zero(data: bytes, start: int, end: int, what: str) -> None:
    if any(data[start:end]):
        raise Refusal("PADDING", f"{what}: unused bytes {start}..{end} are not zero")


def _dec_scalar(kind: str, f: FieldLayout, data: bytes, at: int) -> Any:
    if kind == "int":
        (v,) = struct.unpack_from("<q", data, at)
        if not f.int_lo <= v <= f.int_hi:
            raise Refusal("INT_RANGE", f"{f.name}: {v} outside [{f.int_lo}, {f.int_hi}]")
        return v
    if kind == "float":
        (v,) = struct.unpack_from("<d", data, at)
        _check_float(f, v)
        return v
    if kind == "bool":
        if data[at] > 1:
            raise Refusal("BOOL", f"{f.name}: byte {data[at]}")
        return bool(data[at])
    if kind == "enum":
        (i,) = struct.unpack_from("<I", data, at)
        if i >= len(f.values):
            raise Refusal("ENUM", f"{f.name}: index {i} of {len(f.values)} values")
        return f.values[i]
    (n,) = struct.unpack_from("<I", data, at)
    cap = f.str_capacity if kind == "str" else f.max_len
    if n > cap:
        raise Refusal("STR_LEN" if kind == "str" else "BYTES_LEN", f"{f.name}: length {n}, capacity {cap}")
    raw = data[at + 4:at + 4 + n]
    if kind == "str":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal("UTF8", f"{f.name}: not well-formed UTF-8") from None
        if len(text) > f.max_len:
            raise Refusal("STR_LEN", f"{f.name}: {len(text)} characters, at most {f.max_len}")
        value: Any = text
    else:
        value = raw
    _zero(data, at + 4 + n, at + 4 + cap, f.name)
    return value


def decode(layout: MessageLayout, data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Decode and validate one payload exactly as the generated C does; Refusal names the first failure."""
    data = bytes(data)
    if len(data) != layout.size:
        raise Refusal("LENGTH", f"{layout.name}: {len(data)} bytes, the payload is {layout.size}")
    out: dict[str, Any] = {}
    for f in layout.fields:
        at = f.value_offset
        if f.optional:
            present = data[f.offset]
            if present > 1:
                raise Refusal("PRESENCE", f"{f.name}: presence byte {present}")
            if not present:
                _zero(data, at, f.offset + f.size, f.name)
                out[f.name] = None
                continue
        if f.type == "list":
            (count,) = struct.unpack_from("<I", data, at)
            if count > f.max_items:
                raise Refusal("LIST_COUNT", f"{f.name}: {count} items, at most {f.max_items}")
            step = f.item_size
            out[f.name] = [_dec_scalar(f.item or "", f, data, at + 4 + i * step) for i in range(count)]
            _zero(data, at + 4 + count * step, at + 4 + f.max_items * step, f.name)
        else:
            out[f.name] = _dec_scalar(f.type, f, data, at)
    return out


def refusal(layout: MessageLayout, data: bytes) -> str | None:
    """The reason ``decode`` refuses ``data``, or None if it accepts it."""
    try:
        decode(layout, data)
    except Refusal as exc:
        return exc.reason
    return None


# -- the ring -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RingHeader:
    magic: int
    version: int
    header_size: int
    slot_size: int
    slots: int
    payload_size: int
    fingerprint: int
    write_index: int


@dataclass(frozen=True)
class RingLayout:
    """Where a channel's ring sits in its region (sizes from septum.gen.layout.plan_system)."""

    slot_size: int
    slots: int
    region_size: int
    message: MessageLayout

    def __post_init__(self) -> None:
        if self.slot_size < SLOT_HEADER_SIZE + self.message.size or self.slot_size % 8:
            raise ValueError(f"slot size {self.slot_size} cannot hold a {self.message.size}-byte payload")
        if RING_HEADER_SIZE + self.slots * self.slot_size > self.region_size:
            raise ValueError(f"{self.slots} slots of {self.slot_size} bytes overrun a {self.region_size}-byte region")

    def slot_offset(self, index: int) -> int:
        """Offset of the slot that message number ``index`` (0-based, as the write index counts) goes to."""
        return RING_HEADER_SIZE + (index % self.slots) * self.slot_size

    def header(self, write_index: int = 0) -> bytes:
        h = bytearray(RING_HEADER_SIZE)
        struct.pack_into("<IHHIIII", h, 0, MAGIC, LAYOUT_VERSION, RING_HEADER_SIZE, self.slot_size, self.slots,
                         self.message.size, self.message.fingerprint)
        struct.pack_into("<Q", h, OFF_WRITE_INDEX, write_index)
        return bytes(h)

    def write(self, region: bytearray, index: int, payload: bytes) -> None:
        """Publish message ``index`` the way the C sender does (slot, then seq, then write index)."""
        at = self.slot_offset(index)
        struct.pack_into("<II", region, at, len(payload), seq_writing(index))
        region[at + SLOT_HEADER_SIZE:at + SLOT_HEADER_SIZE + len(payload)] = payload
        struct.pack_into("<I", region, at + OFF_SLOT_SEQ, seq_done(index))
        struct.pack_into("<Q", region, OFF_WRITE_INDEX, index + 1)

    def read_slot(self, region: bytes | bytearray, index: int) -> tuple[int, int, bytes]:
        """(length word, sequence word, payload bytes) of the slot message ``index`` went to."""
        at = self.slot_offset(index)
        length, seq = struct.unpack_from("<II", region, at)
        return length, seq, bytes(region[at + SLOT_HEADER_SIZE:at + SLOT_HEADER_SIZE + self.message.size])


def decode_header(data: bytes | bytearray) -> RingHeader:
    magic, version, header_size, slot_size, slots, payload_size, fingerprint = struct.unpack_from("<IHHIIII", data, 0)
    (write_index,) = struct.unpack_from("<Q", data, OFF_WRITE_INDEX)
    return RingHeader(magic, version, header_size, slot_size, slots, payload_size, fingerprint, write_index)


def seq_writing(index: int) -> int:
    """The sequence word while message ``index`` is being written (odd: a reader must not use the slot)."""
    return (2 * index + 1) & UINT32_MAX


def seq_done(index: int) -> int:
    """The sequence word once message ``index`` is complete (even, never 0: 0 is a slot never written)."""
    return (2 * index + 2) & UINT32_MAX
