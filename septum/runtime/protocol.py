"""Messages on a partition's control channel (a SEQPACKET pair between supervisor and partition).

The supervisor writes ``Boot`` (the partition's whole configuration) before the process starts, so
boot reads it without a round trip; later it may send ``Stop``. The partition sends ``Ready``,
``Beat`` (heartbeat), ``Report`` (an event or audit record to forward), ``Drops`` (channel drop
counters) and ``Fatal`` (why it is about to exit). The update service may send ``Activate`` (run new
code in a partition); the supervisor answers any partition that sends it with ``ActivateResult``.
msgspec msgpack, strictly typed: never pickle.
"""

from __future__ import annotations

from typing import Any

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


class Ready(msgspec.Struct, frozen=True, tag=True):
    pass


class Beat(msgspec.Struct, frozen=True, tag=True):
    seq: int


class Report(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    kind: str
    severity: str = "info"
    audit: bool = False
    fields: dict[str, Any] = {}


class Drops(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    channel: str
    received: int
    drops: dict[str, int]
    last_error: str = ""


class Fatal(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    reason: str
    detail: str = ""


class Activate(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Run version ``version`` of ``target``'s code, staged by the update service. Honoured only from the
    ``service: update`` partition; the supervisor re-checks the signature and every staged file itself."""

    request_id: str
    target: str
    version: str
    manifest: bytes  # the signed manifest bytes of the bundle
    signature: bytes


class ActivateResult(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    request_id: str
    target: str
    version: str
    status: str  # activated | rolled-back | refused
    reason: str = ""
    running: str = ""  # the code version the target runs now ("" = the model's own code)


ToPartition = Boot | Stop | ActivateResult
FromPartition = Ready | Beat | Report | Drops | Fatal | Activate

MAX_CONTROL_MESSAGE = 256 * 1024
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
