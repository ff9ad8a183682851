"""The architecture model: typed, immutable element types.

Every element is a frozen msgspec Struct that rejects unknown fields, so a typo in a model file is an
error rather than a silently ignored key. The loader (``septum.model.loader``) converts YAML into these
types one element at a time so that every error can be pinned to a file, line and column.

``docs/model.md`` is the user reference for these names and must move with this file.
"""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct, field

FORMAT_VERSION = 1

Name = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", max_length=64)]

Profile = Literal["production", "debug"]
InterfaceKind = Literal[
    "network", "wireless", "bluetooth", "usb", "serial", "debug", "keypad", "display", "button",
    "actuator", "sensor", "storage",
]
Criticality = Literal["none", "low", "high", "safety"]
CRITICALITY_RANK: dict[str, int] = {"none": 0, "low": 1, "high": 2, "safety": 3}
Mitigation = Literal["filtering", "monitoring", "gating", "authenticating", "attesting"]
RestartPolicy = Literal["always", "never", "fail-safe"]
ServiceKind = Literal["auth", "audit", "update", "health"]
FieldType = Literal["str", "bytes", "int", "float", "bool", "enum", "list"]
ChannelPurpose = Literal["data", "command", "heartbeat", "reset", "override", "alert", "audit", "status"]
ControlStatus = Literal["implemented", "not-applicable", "planned", "accepted-risk"]
SupportLevel = Literal["active", "limited", "security-only", "none", "unknown"]
SharedKind = Literal["memory", "file", "device"]
RoleKind = Literal["human", "machine"]

# Interface kinds through which a person or machine can send something *into* the device.
INPUT_KINDS = frozenset(
    {"network", "wireless", "bluetooth", "usb", "serial", "debug", "keypad", "button", "storage"}
)
NETWORK_KINDS = frozenset({"network", "wireless", "bluetooth"})
# Authentication values that mean "nothing checks who this is".
NO_AUTH = frozenset({"none", ""})
PHYSICAL_PRESENCE = "physical-presence-only"


class _Base(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class Device(_Base, frozen=True):
    name: str
    version: str = "0"
    manufacturer: str = ""
    profile: Profile = "production"
    description: str = ""


class Liveness(_Base, frozen=True):
    """How the owning partition checks, from inside, that a network interface's listener still answers
    (septum.runtime.liveness): ``failures`` probes in a row failing end the partition."""

    probe: Literal["tls_connect", "tcp_connect"] = "tls_connect"
    period_ms: Annotated[int, Meta(ge=10, le=3_600_000)] = 2000
    timeout_ms: Annotated[int, Meta(ge=1, le=600_000)] = 1000
    failures: Annotated[int, Meta(ge=1, le=1000)] = 3


class Interface(_Base, frozen=True):
    kind: InterfaceKind
    external: bool = False
    protocol: str | None = None
    port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    authentication: str | None = None
    encryption: str | None = None
    carries: tuple[str, ...] = ()
    enabled: bool = True
    liveness: Liveness | None = None
    description: str = ""


class Resources(_Base, frozen=True):
    memory_mb: Annotated[int, Meta(ge=1, le=1_048_576)] = 256
    period_ms: Annotated[int, Meta(ge=1)] | None = None
    budget_ms: Annotated[int, Meta(ge=1)] | None = None
    priority: Annotated[int, Meta(ge=0, le=254)] = 100
    cpu_percent: Annotated[int, Meta(ge=1, le=100)] = 100  # of one CPU (cgroup cpu quota)
    max_pids: Annotated[int, Meta(ge=1, le=4096)] = 32
    max_open_files: Annotated[int, Meta(ge=8, le=65536)] = 64
    # the data folder's own filesystem (septum.runtime.sandbox.disk); ext4 metadata takes a few percent
    disk_mb: Annotated[int, Meta(ge=4, le=1_048_576)] = 64


class Allow(_Base, frozen=True):
    """OS-level allowances beyond channels. The default is nothing at all."""

    net: bool = False
    # path -> "r" | "rw"; the partition's own data directory is always read-write.
    files: dict[str, Literal["r", "rw"]] = {}
    # extra system-call groups beyond the baseline (e.g. "realtime-clock")
    syscalls: tuple[str, ...] = ()


class Function(_Base, frozen=True):
    """A declared function of a partition and the capabilities it uses (for PRIV004)."""

    uses: tuple[str, ...] = ()
    description: str = ""


class Partition(_Base, frozen=True):
    criticality: Criticality = "none"
    runs: Annotated[str, Meta(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] | None = None
    service: ServiceKind | None = None
    owns: tuple[str, ...] = ()
    allow: Allow = Allow()
    mitigation: tuple[Mitigation, ...] = ()
    monitors: tuple[str, ...] = ()
    # partitions this guard protects; default: the guard's direct successors of higher criticality
    protects: tuple[str, ...] = ()
    restart: RestartPolicy | None = None
    heartbeat_ms: Annotated[int, Meta(ge=1)] | None = None
    resources: Resources = Resources()
    functions: dict[str, Function] = {}
    config: dict[str, str | int | float | bool] = {}
    description: str = ""

    @property
    def is_guard(self) -> bool:
        return bool(self.mitigation)

    @property
    def restart_policy(self) -> RestartPolicy:
        """The effective policy: a safety partition is never restarted silently."""
        if self.restart is not None:
            return self.restart
        return "fail-safe" if self.criticality == "safety" else "always"


class MessageField(_Base, frozen=True):
    type: FieldType
    max_len: Annotated[int, Meta(ge=0, le=16_777_216)] | None = None
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()
    items: FieldType | None = None
    max_items: Annotated[int, Meta(ge=0, le=65536)] | None = None
    optional: bool = False
    description: str = ""


RATE_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}


class Channel(_Base, frozen=True):
    name: Name
    src: str = field(name="from")
    dst: str = field(name="to")
    message: str
    rate: Annotated[str, Meta(pattern=r"^\d+(\.\d+)?/(s|min|h)$")] | None = None
    queue: Annotated[int, Meta(ge=1, le=65536)] = 16
    debug: bool = False
    purpose: ChannelPurpose = "data"
    description: str = ""

    @property
    def rate_per_s(self) -> float | None:
        if self.rate is None:
            return None
        count, unit = self.rate.split("/")
        return float(count) / RATE_UNITS[unit]


class Role(_Base, frozen=True):
    kind: RoleKind = "human"
    authenticates_with: tuple[str, ...] = ()
    via: tuple[str, ...] = ()
    description: str = ""


class Action(_Base, frozen=True):
    handled_by: str
    allowed: tuple[str, ...] = ()
    via: tuple[str, ...] = ()
    safety: bool = False
    requires_confirmation_by: str | None = None
    break_glass: bool = False
    description: str = ""


class Decision(_Base, frozen=True):
    status: ControlStatus
    by: tuple[str, ...] = ()
    reason: str = ""


class Controls(_Base, frozen=True):
    catalogue: str = "cis-v8"
    decisions: dict[str, Decision] = {}


class Component(_Base, frozen=True):
    name: str
    version: str
    purl: str | None = None
    supplier: str = ""
    author: str = ""
    license: str = ""
    support: SupportLevel = "unknown"
    end_of_support: _dt.date | None = None
    depends_on: tuple[str, ...] = ()


class Shared(_Base, frozen=True):
    """State shared between partitions outside channels (a memory region, a file, a device)."""

    kind: SharedKind
    writers: tuple[str, ...] = ()
    readers: tuple[str, ...] = ()
    # the channel that serialises writes (one writer, then readers are told) if there is one
    channel: str | None = None
    description: str = ""


class Waiver(_Base, frozen=True):
    rule: str
    element: str
    reason: str
    by: str
    expires: _dt.date


class Model(_Base, frozen=True):
    septum: Literal[1]
    device: Device
    interfaces: dict[str, Interface] = {}
    partitions: dict[str, Partition] = {}
    messages: dict[str, dict[str, MessageField]] = {}
    channels: tuple[Channel, ...] = ()
    roles: dict[str, Role] = {}
    actions: dict[str, Action] = {}
    shared: dict[str, Shared] = {}
    controls: Controls | None = None
    components: dict[str, tuple[Component, ...]] = {}
    waivers: tuple[Waiver, ...] = ()

    # -- convenience views (cheap; the analysis builds its own indexed graph) --
    def channel(self, name: str) -> Channel:
        for ch in self.channels:
            if ch.name == name:
                return ch
        raise KeyError(name)

    def owner_of(self, interface: str) -> str | None:
        for pname, part in self.partitions.items():
            if interface in part.owns:
                return pname
        return None

    def message_fields(self, name: str) -> dict[str, MessageField]:
        if name in BUILTIN_MESSAGES:
            return BUILTIN_MESSAGES[name]
        return self.messages[name]


# Messages every model may use without declaring them. ``Raw`` is an untyped byte string: it exists so
# that a debug console can be modelled honestly (and flagged), not as a recommended message type.
BUILTIN_MESSAGES: dict[str, dict[str, MessageField]] = {
    "Raw": {"data": MessageField(type="bytes", max_len=65536)},
    "Heartbeat": {"seq": MessageField(type="int", min=0, max=2**63 - 1)},
}


def json_schema() -> dict[str, object]:
    """JSON Schema of the model file, for editors (``septum schema``)."""
    schema = msgspec.json.schema(Model)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Septum device model"
    return schema
