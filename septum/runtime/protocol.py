"""Messages on a partition's control channel (a SEQPACKET pair between supervisor and partition).

The supervisor writes ``Boot`` (the partition's whole configuration) before the process starts, so
boot reads it without a round trip; later it may send ``Stop``. The partition sends ``Ready``,
``Beat`` (heartbeat), ``Report`` (an event or audit record to forward), ``Drops`` (channel drop
counters) and ``Fatal`` (why it is about to exit). The update service may send ``Activate`` (run new
code in a partition); the supervisor answers any partition that sends it with ``ActivateResult``.
msgspec msgpack, strictly typed: never pickle.

Everything a partition sends is untrusted input to the supervisor (the trusted base). The messages it
may send form a closed protocol: unknown fields are refused (``forbid_unknown_fields``), every string,
byte string and map has a bound, and what a ``Report`` may carry is checked again by
``septum.runtime.control_guard`` (reserved field names, reserved event kinds, nesting and size).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec


class ChannelEnd(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    fd: int
    message: str
    peer: str
    rate_per_s: float | None = None
    queue: int = 16


class DeviceEnd(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # the owned interface
    fd: int
    kind: str


class SandboxSpec(msgspec.Struct, frozen=True, kw_only=True):
    landlock: bool
    seccomp: bool
    network: bool
    read_only: list[str]
    read_write: list[str]
    syscall_groups: list[str] = []
    bind_ports: list[int] = []


class Boot(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    partition: str
    entry: str  # "module:function"
    import_path: list[str]
    data_dir: str
    config: dict[str, Any]
    clock_origin: float
    clock_scale: float
    clock_wall: float
    heartbeat_ms: int | None
    inputs: list[ChannelEnd]
    outputs: list[ChannelEnd]
    messages: dict[str, dict[str, dict[str, Any]]]
    sandbox: SandboxSpec
    control_fd: int
    devices: list[DeviceEnd] = []  # owned hardware interfaces (septum.runtime.devices)


class Stop(msgspec.Struct, frozen=True, tag=True):
    reason: str = ""


# Bounds on what a partition may send (the supervisor refuses anything outside them).
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
EventKind = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.\-]{0,63}$")]
ShortText = Annotated[str, msgspec.Meta(max_length=500)]
LongText = Annotated[str, msgspec.Meta(max_length=4000)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
ReportSeverity = Literal["info", "notice", "warning", "error", "critical"]
MAX_REPORT_FIELDS = 64
MAX_DROP_REASONS = 16


class _FromPartition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag=True):
    """Base of every message a partition sends: closed (unknown fields are an error, never merged)."""


class Ready(_FromPartition, frozen=True, tag="Ready"):
    pass


class Beat(_FromPartition, frozen=True, tag="Beat"):
    seq: Count


class Report(_FromPartition, frozen=True, kw_only=True, tag="Report"):
    kind: EventKind
    severity: ReportSeverity = "info"
    audit: bool = False
    fields: Annotated[dict[Name, Any], msgspec.Meta(max_length=MAX_REPORT_FIELDS)] = {}


class Drops(_FromPartition, frozen=True, kw_only=True, tag="Drops"):
    channel: Name
    received: Count
    drops: Annotated[dict[Name, Count], msgspec.Meta(max_length=MAX_DROP_REASONS)]
    last_error: ShortText = ""


class Fatal(_FromPartition, frozen=True, kw_only=True, tag="Fatal"):
    reason: Annotated[str, msgspec.Meta(max_length=1024)]
    detail: LongText = ""


class Activate(_FromPartition, frozen=True, kw_only=True, tag="Activate"):
    """Run version ``version`` of ``target``'s code, staged by the update service. Honoured only from the
    ``service: update`` partition; the supervisor re-checks the signature and every staged file itself."""

    request_id: Name
    target: Name
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    manifest: Annotated[bytes, msgspec.Meta(max_length=128 * 1024)]  # the signed manifest bytes of the bundle
    signature: Annotated[bytes, msgspec.Meta(max_length=1024)]


class ActivateResult(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    request_id: str
    target: str
    version: str
    status: str  # activated | rolled-back | refused
    reason: str = ""
    running: str = ""  # the code version the target runs now ("" = the model's own code)


ToPartition = Boot | Stop | ActivateResult
FromPartition = Ready | Beat | Report | Drops | Fatal | Activate

MAX_CONTROL_MESSAGE = 256 * 1024  # supervisor -> partition (Boot carries the model to services)
# the key under which a service partition's Boot config carries the model as plain data (services/service_io.py)
MODEL_CONFIG_KEY = "septum.model"
MAX_FROM_PARTITION = 160 * 1024  # partition -> supervisor: larger is refused (an Activate fits)
encoder = msgspec.msgpack.Encoder()
to_partition = msgspec.msgpack.Decoder(ToPartition)
from_partition = msgspec.msgpack.Decoder(FromPartition)

# boot exit codes (the supervisor names the cause from them)
EXIT_OK = 0
EXIT_ENTRY_ERROR = 70  # the partition's code raised
EXIT_MEMORY = 71  # MemoryError: over its address-space limit
EXIT_BOOT = 72  # bad boot configuration or sandbox could not be applied
EXIT_IMPORT = 73  # the entry point could not be imported
EXIT_REASONS = {
    EXIT_ENTRY_ERROR: "entry point raised an exception",
    EXIT_MEMORY: "memory limit (MemoryError)",
    EXIT_BOOT: "boot or sandbox setup failed",
    EXIT_IMPORT: "entry point could not be imported",
}
