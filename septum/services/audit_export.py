"""Reading audit records out: filters, plain text, JSON lines and RFC 5424 syslog.

Export works on records only (checkpoints are integrity data, not events). Export does not verify
signatures; ``septum audit verify`` does, and the CLI refuses to pretend a damaged log is whole.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgspec

from .audit_log import SEVERITY_RANK, LogEntry, Record

# RFC 5424 facility 13 is "log audit".
SYSLOG_FACILITY = 13
# SD-IDs need an IANA private enterprise number; 32473 is the one reserved for documentation (RFC 5612).
# A manufacturer replaces it with its own through the ``sd_id`` argument.
DEFAULT_SD_ID = "septum@32473"
_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
_SD_NAME_BAD = re.compile(r'[^\x21-\x7e]|[= \]"]')


def parse_time(text: str) -> float:
    """ISO 8601 (naive means UTC) or Unix seconds -> Unix seconds; ValueError with a reason otherwise."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time nor Unix seconds") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value.timestamp()


@dataclass(frozen=True)
class RecordFilter:
    partitions: frozenset[str] = frozenset()
    min_severity: str | None = None  # keep this severity and anything more severe
    since: float | None = None
    until: float | None = None
    event_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.min_severity is not None and self.min_severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.min_severity!r}; one of {', '.join(SEVERITY_RANK)}")

    def matches(self, rec: Record) -> bool:
        if self.partitions and rec.partition not in self.partitions:
            return False
        if self.min_severity is not None and SEVERITY_RANK[rec.severity] > SEVERITY_RANK[self.min_severity]:
            return False
        if self.since is not None and rec.time < self.since:
            return False
        if self.until is not None and rec.time > self.until:
            return False
        return self.event_prefix is None or rec.event.startswith(self.event_prefix)


def select(entries: Iterable[LogEntry], flt: RecordFilter) -> Iterator[tuple[int, Record]]:
    for e in entries:
        if isinstance(e.body, Record) and flt.matches(e.body):
            yield e.seq, e.body


def rfc3339(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_text(seq: int, rec: Record) -> str:
    who = f" principal={rec.principal}" if rec.principal else ""
    detail = "".join(f" {k}={v}" for k, v in rec.detail.items())
    return f"{seq:>8} {rfc3339(rec.time)} {rec.severity:<9} {rec.partition} {rec.event}{who}{detail} {rec.message}"


class _JsonRecord(msgspec.Struct):
    seq: int
    time: str
    partition: str
    event: str
    severity: str
    message: str
    principal: str
    detail: dict[str, str | int | float | bool]


_json = msgspec.json.Encoder()


def to_json_line(seq: int, rec: Record) -> str:
    return _json.encode(
        _JsonRecord(seq, rfc3339(rec.time), rec.partition, rec.event, rec.severity, rec.message,
                    rec.principal, rec.detail)
    ).decode()


def _header_field(value: str, limit: int) -> str:
    # Header fields are PRINTUSASCII without spaces; an empty one is the NILVALUE "-".
    cleaned = _PRINTUSASCII.sub("_", value)[:limit]
    return cleaned or "-"


def _sd_name(name: str) -> str:
    return _SD_NAME_BAD.sub("_", name)[:32] or "_"


def _sd_value(value: object) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def to_syslog(seq: int, rec: Record, *, hostname: str = "-", sd_id: str = DEFAULT_SD_ID) -> str:
    """One RFC 5424 message: facility log-audit, APP-NAME the partition, MSGID the event."""
    pri = SYSLOG_FACILITY * 8 + SEVERITY_RANK[rec.severity]
    params = {"seq": seq, **({"principal": rec.principal} if rec.principal else {}), **rec.detail}
    sd = "[" + _sd_name(sd_id) + "".join(f' {_sd_name(k)}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    msg = rec.message
    if msg and not msg.isascii():
        msg = "\ufeff" + msg  # MSG-UTF8 must start with a BOM
    header = (
        f"<{pri}>1 {rfc3339(rec.time)} {_header_field(hostname, 255)} {_header_field(rec.partition, 48)} - "
        f"{_header_field(rec.event, 32)} {sd}"
    )
    # One record per line: a newline inside the message would split it on most transports.
    return header + (" " + msg.replace("\n", "\\n") if msg else "")
