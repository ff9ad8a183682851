"""What every Septum service partition needs: the running model, its audit channel, and message filling.

A service partition is generic: it learns its channels, roles and actions from the model the supervisor
runs (handed over in its boot configuration under ``MODEL_CONFIG_KEY``), never from its own copy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from septum.errors import InvariantBroken, SeptumError
from septum.model.schema import Model
from septum.runtime.partition import Partition
from septum.runtime.protocol import MODEL_CONFIG_KEY
from septum.staged_write import write_atomic

# Fields never copied from a request into anything the service sends on (credentials stay in auth).
SECRET_FIELDS = frozenset({"pin", "badge", "secret", "password", "session", "cert", "signature"})
AUDIT_SEVERITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")


class ServiceSetupError(SeptumError, RuntimeError):
    """The service cannot run as provisioned (missing key, no model); the message says what to do."""


def service_model(p: Partition) -> Model:
    raw = p.config.get(MODEL_CONFIG_KEY)
    if raw is None:
        raise ServiceSetupError(f"{p.name}: started without the device model (run it under septum's supervisor)")
    try:
        return msgspec.convert(raw, Model)
    except msgspec.ValidationError as exc:
        raise ServiceSetupError(f"{p.name}: the device model handed over is unusable ({exc})") from None


def fields_of(tp: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(tp.__struct_fields__)


def _zero(t: Any) -> Any:
    mi = msgspec.inspect
    if isinstance(t, mi.UnionType):
        return None if any(isinstance(x, mi.NoneType) for x in t.types) else _zero(t.types[0])
    if isinstance(t, mi.StrType):
        return ""
    if isinstance(t, mi.BytesType):
        return b""
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, mi.IntType):
        return max(0, t.ge or 0) if t.le is None or t.le >= 0 else t.le
    if isinstance(t, mi.FloatType):
        lo = t.ge if t.ge is not None else (t.gt if t.gt is not None else 0.0)
        return max(0.0, float(lo))
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.ListType):
        return []
    return None


def build(p: Partition, channel: str, source: Mapping[str, Any] | msgspec.Struct | None = None,
          **fill: Any) -> msgspec.Struct:
    """A message for ``channel``: same-named fields copied from ``source`` (never secrets), ``fill`` only
    where the message has that field, the rest zero values. Raises msgspec.ValidationError if invalid."""
    tp = p.message_type(channel)
    info = msgspec.inspect.type_info(tp)
    if not isinstance(info, msgspec.inspect.StructType):
        raise InvariantBroken(f"channel {channel!r}: its codec is not a Struct")
    src: Mapping[str, Any]
    if source is None:
        src = {}
    elif isinstance(source, msgspec.Struct):
        src = msgspec.structs.asdict(source)
    else:
        src = source
    values: dict[str, Any] = {}
    for f in info.fields:
        if f.name in fill:
            values[f.name] = fill[f.name]
        elif f.name in src and f.name not in SECRET_FIELDS:
            values[f.name] = src[f.name]
        else:
            values[f.name] = _zero(f.type)
    return p.message(channel, **values)


class Auditor:
    """Sends this service's audit records on its audit channel (``AuditEvent``-shaped: event, severity,
    detail, at_ms); when there is none or it is full, the record goes to the supervisor with ``p.audit``
    (which the supervisor feeds to the audit service), so no record is lost silently."""

    def __init__(self, p: Partition, model: Model) -> None:
        self.p = p
        self.channel: str | None = None
        audit_parts = {n for n, q in model.partitions.items() if q.service == "audit"}
        for ch in model.channels:
            if ch.src == p.name and ch.dst in audit_parts and ch.name in p.outputs:
                self.channel = ch.name
                break
        self._severities: tuple[str, ...] = ()
        self._max_detail = 1024
        if self.channel is not None:
            info = msgspec.inspect.type_info(p.message_type(self.channel))
            if not isinstance(info, msgspec.inspect.StructType):
                raise InvariantBroken(f"channel {self.channel!r}: its codec is not a Struct")
            for f in info.fields:
                if f.name == "severity" and isinstance(f.type, msgspec.inspect.LiteralType):
                    self._severities = tuple(str(v) for v in f.type.values)
                if f.name == "detail" and isinstance(f.type, msgspec.inspect.StrType) and f.type.max_length:
                    self._max_detail = f.type.max_length
        self.fallbacks = 0

    def _severity(self, severity: str) -> str:
        if not self._severities or severity in self._severities:
            return severity
        # the nearest allowed level that is at least as severe
        rank = AUDIT_SEVERITIES.index(severity) if severity in AUDIT_SEVERITIES else 5
        for s in reversed(AUDIT_SEVERITIES[: rank + 1]):
            if s in self._severities:
                return s
        return self._severities[-1]

    def __call__(self, event: str, severity: str = "notice", **detail: Any) -> None:
        text = json.dumps(detail, sort_keys=True, default=str, ensure_ascii=False)
        if self.channel is not None:
            if len(text) > self._max_detail:
                text = text[: self._max_detail - 3] + "..."
            try:
                msg = build(self.p, self.channel, event=event[:64], severity=self._severity(severity),
                            detail=text, at_ms=int(self.p.clock.wall() * 1000))
                if self.p.send(self.channel, msg):
                    return
            except msgspec.ValidationError:
                pass
        self.fallbacks += 1
        sev = severity if severity in ("info", "notice", "warning", "error", "critical") else (
            "critical" if severity in ("alert", "emergency") else "notice")
        self.p.audit(event, severity=sev, **{k: v if isinstance(v, str | int | float | bool) else str(v)
                                             for k, v in detail.items()})


def write_state(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Replace a small state file atomically (``septum.staged_write``), fsynced unless ``sync`` is False."""
    write_atomic(path, data, sync=sync)


def wall_now() -> float:
    """Real wall-clock time: certificates and remote timestamps live in the real world, not device time."""
    return time.time()
