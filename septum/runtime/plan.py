"""From the model to the run plan: everything ``septum run`` launches, computed once, before anything starts.

``build_plan(model, options)`` is the only planner. It turns the model into a ``RunPlan``: per partition its
entry point, channel ends, sandbox settings (files, network, system-call groups, rlimits, listen ports),
config (liveness probes, and for a Septum service the model itself); the channels; the owned hardware
devices; which partition receives the supervisor's audit feed; the provisioning folders and where the
manufacturer's update key is; the TCP ports of this run. The supervisor executes a ``RunPlan`` and never
goes back to the model or the planner; ``septum run --explain`` renders the same plan
(``septum.runtime.explain``), so what is explained is what is launched.

The plan is pure data (frozen dataclasses; built twice from one model it is equal) and building it has no
effect: it creates no file, folder, socket, process or thread. It does *read*: it looks entry modules up on
the import path (``importlib`` finders; for a Septum service this imports ``septum.services``) and resolves
the code and file paths a partition may read, because an entry point that does not exist must be refused
here, before any process starts. Everything that depends on the host (which mechanisms it enforces, uids,
cgroups) is the executor's, not the plan's: one plan explains the same on every host.

Everything a user can get wrong (an entry module that does not exist, a Septum service that is not
installed, an unknown syscall group, an unusable message schema, a port override or provisioning folder for
something the model does not have) is a ``SetupError`` here, all problems in one message.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from septum.errors import SeptumError
from septum.model.schema import NETWORK_KINDS, Model

from . import codec, liveness
from .devices import device_interfaces
from .protocol import MODEL_CONFIG_KEY
from .sandbox import limits, seccomp

SYSTEM_READ_ONLY = ("/usr", "/lib", "/lib64", "/etc/localtime", "/etc/ld.so.cache", "/dev/null",
                    "/dev/urandom", "/proc/self")
NETWORK_READ_ONLY = ("/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/gai.conf",
                     "/etc/services", "/etc/protocols", "/etc/ssl")
MANUFACTURER_PUB = "manufacturer.pub"  # the update key in the update service's provisioning folder


class SetupError(SeptumError, RuntimeError):
    """The model cannot be launched as written (reported before any process starts)."""


@dataclass(frozen=True)
class ChannelPlan:
    """One model channel as it is launched: a SEQPACKET pair, the send end to ``src``, the receive end to ``dst``."""

    name: str
    src: str
    dst: str
    message: str
    rate_per_s: float | None  # enforced by the receiving end (None: unbounded)
    queue: int


@dataclass(frozen=True)
class DevicePlan:
    """An owned hardware interface: one link whose partition end only ``owner`` is handed."""

    interface: str
    kind: str
    owner: str


@dataclass(frozen=True)
class PartitionPlan:
    name: str
    entry: str
    service: str | None
    criticality: str
    restart_policy: str
    heartbeat_ms: int | None
    inputs: tuple[ChannelPlan, ...]
    outputs: tuple[ChannelPlan, ...]
    network: bool  # keeps the host network (owns a network interface or allow.net)
    read_only: tuple[str, ...]
    read_write: tuple[str, ...]
    syscall_groups: tuple[str, ...]
    rlimits: tuple[tuple[int, int], ...]
    resources: Any
    # what the partition reads as ``p.config``: the model's, its liveness probes, and for a Septum service the
    # model itself as plain data (a service gets the very model that was checked and runs)
    config: dict[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ()  # owned hardware interfaces, each reached over its own device link
    # TCP ports the partition may listen on: those of the network interfaces it owns (a backdoor listener
    # on any other port is refused by Landlock). Outbound connections are not restricted by port.
    bind_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunOptions:
    """What a run adds to the model: where it runs from and what this device is given."""

    model_dir: Path  # the model's folder: partitions' code is imported from it, relative paths resolve in it
    data_root: Path  # each partition's data folder is ``data_root / name`` (the supervisor's state_dir/data)
    ports: Mapping[str, int] = field(default_factory=dict)  # interface -> TCP port of this run
    provision: Mapping[str, Path] = field(default_factory=dict)  # partition -> folder copied into its data dir


@dataclass(frozen=True)
class RunPlan:
    """The whole device as the supervisor launches it (the fields are not reassigned once built)."""

    device: str
    profile: str
    model_dir: Path
    data_root: Path
    partitions: dict[str, PartitionPlan]  # in model order
    channels: tuple[ChannelPlan, ...]
    messages: dict[str, dict[str, dict[str, Any]]]  # message -> field specs, as the boot config carries them
    devices: tuple[DevicePlan, ...]
    audit_partition: str | None  # receives the supervisor's event feed (the model's ``service: audit``)
    provisioning: dict[str, Path]  # partition -> folder copied into its data dir before it starts
    update_keys: tuple[Path, ...]  # where the manufacturer key code activations are checked with may be
    ports: dict[str, int]  # the port overrides of this run (already applied to bind_ports and probes)


def code_paths(model_dir: Path) -> list[str]:
    """Directories a partition must be able to read to import Python, Septum and its own code."""
    import septum

    paths = [str(model_dir)]
    paths.append(str(Path(septum.__file__).resolve().parent))
    paths += [p for p in sys.path if p and os.path.isdir(p)]
    paths += [sys.prefix, sys.base_prefix]
    paths += editable_sources()
    seen: dict[str, None] = {}
    for p in paths:
        seen.setdefault(os.path.realpath(p), None)
    return list(seen)


def editable_sources() -> list[str]:
    """Where the packages of editable installs (``pip install -e``) live.

    A partition runs the same interpreter with the same site-packages, so the import hooks an editable install
    leaves there (setuptools' finder, a .pth mapping) are active inside its sandbox too, and they import from
    the project's source folder, which is on no ``sys.path``. Without this a device package installed editable
    imports in the supervisor but not in its partitions (EACCES under Landlock). Only the folders the
    installed top-level packages resolve to are added, not the whole project (its .git, tests, build output).
    """
    found: list[str] = []
    for dist in importlib.metadata.distributions():
        try:
            info = json.loads(dist.read_text("direct_url.json") or "{}")
            tops = (dist.read_text("top_level.txt") or "").split()
        except (ValueError, OSError):  # a broken record of someone else's install: not ours to judge
            continue
        dir_info = info.get("dir_info") if isinstance(info, dict) else None
        if not isinstance(dir_info, dict) or dir_info.get("editable") is not True:
            continue
        located = False
        for top in tops:
            try:
                spec = importlib.util.find_spec(top)
            except (ImportError, ValueError):
                spec = None
            if spec is None:
                continue
            if spec.submodule_search_locations:
                found += [str(p) for p in spec.submodule_search_locations]
                located = True
            elif spec.origin and os.path.isfile(spec.origin):
                found.append(os.path.dirname(spec.origin))
                located = True
        url = str(info.get("url", ""))
        if not located and url.startswith("file://"):  # no top_level.txt: the project folder itself
            # (on POSIX url2pathname is this unquote; urllib.request would cost every plan ~9 ms of imports)
            found.append(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    return [p for p in found if os.path.isdir(p)]


def _entry_of(name: str, part: Any) -> str:
    if part.runs:
        return str(part.runs)
    if part.service:
        return f"septum.services.{part.service}_service:main"
    raise SetupError(f"partition {name}: neither 'runs' nor 'service' is given, so there is nothing to run")


def _check_entry(name: str, entry: str, model_dir: Path, is_service: bool) -> None:
    module = entry.partition(":")[0]
    if is_service:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise SetupError(
                f"partition {name}: the Septum service module {module} is not installed, "
                "so this model cannot run yet"
            )
        return
    top = module.split(".")[0]
    if importlib.machinery.PathFinder.find_spec(top, [str(model_dir), *sys.path]) is None:
        raise SetupError(
            f"partition {name}: entry module {module!r} was not found next to the model ({model_dir}) "
            "or on the Python path"
        )


def _file_path(p: str, model_dir: Path) -> str:
    return p if os.path.isabs(p) else str((model_dir / p).resolve())


def unknown_provisioning(model: Model, provision: Mapping[str, Any]) -> str | None:
    """The refusal for provisioning folders of partitions the model does not have (None: all known)."""
    unknown = sorted(set(provision) - set(model.partitions))
    return f"provisioning for unknown partition(s): {', '.join(unknown)}" if unknown else None


def build_plan(model: Model, options: RunOptions) -> RunPlan:
    """The one plan of a run (see the module docstring); raises ``SetupError`` listing every problem."""
    problems: list[str] = []
    model_dir = options.model_dir
    ports = dict(options.ports)
    provision = {k: Path(v) for k, v in options.provision.items()}
    for iname in ports:
        iface = model.interfaces.get(iname)
        if iface is None or iface.kind not in NETWORK_KINDS:
            problems.append(f"port override for {iname!r}, which is not a network interface of the model")
    unknown = unknown_provisioning(model, provision)
    if unknown:
        problems.append(unknown)
    messages: dict[str, dict[str, dict[str, Any]]] = {}
    for mname in sorted({c.message for c in model.channels}):
        try:
            specs = {k: codec.field_spec(v) for k, v in model.message_fields(mname).items()}
            codec.message_type(mname, specs)
        except (codec.CodecError, KeyError) as exc:
            problems.append(str(exc))
            continue
        messages[mname] = specs
    channels = tuple(ChannelPlan(name=c.name, src=c.src, dst=c.dst, message=c.message, rate_per_s=c.rate_per_s,
                                 queue=c.queue) for c in model.channels)
    model_data: dict[str, Any] | None = None  # the model as plain data, made once for every service
    base_ro = code_paths(model_dir)
    plans: dict[str, PartitionPlan] = {}
    for name, part in model.partitions.items():
        try:
            entry = _entry_of(name, part)
            _check_entry(name, entry, model_dir, is_service=part.runs is None)
        except SetupError as exc:
            problems.append(str(exc))
            continue
        bad = seccomp.unknown_groups(part.allow.syscalls)
        if bad:
            problems.append(f"partition {name}: unknown allow.syscalls group(s) {', '.join(bad)} "
                            f"(known: {', '.join(sorted(seccomp.GROUPS))})")
        owns_net = any(
            model.interfaces[i].kind in NETWORK_KINDS for i in part.owns if i in model.interfaces
        )
        network = owns_net or part.allow.net
        ro = list(base_ro) + list(SYSTEM_READ_ONLY) + (list(NETWORK_READ_ONLY) if network else [])
        rw = [str(options.data_root / name)]
        for path, mode in part.allow.files.items():
            (rw if mode == "rw" else ro).append(_file_path(path, model_dir))
        config = {**part.config, **liveness.plan_config(model, name, ports)}
        if part.service is not None:
            if model_data is None:
                model_data = msgspec.to_builtins(model)
            config[MODEL_CONFIG_KEY] = model_data
        plans[name] = PartitionPlan(
            name=name,
            entry=entry,
            service=part.service,
            criticality=part.criticality,
            restart_policy=part.restart_policy,
            heartbeat_ms=part.heartbeat_ms,
            inputs=tuple(c for c in channels if c.dst == name),
            outputs=tuple(c for c in channels if c.src == name),
            network=network,
            read_only=tuple(ro),
            read_write=tuple(rw),
            syscall_groups=tuple(part.allow.syscalls),
            rlimits=tuple(limits.rlimits(part.resources)),
            resources=part.resources,
            config=config,
            devices=device_interfaces(model, name),
            bind_ports=tuple(sorted(
                port for i in part.owns
                if (iface := model.interfaces.get(i)) is not None and iface.kind in NETWORK_KINDS
                and iface.enabled and (port := ports.get(i, iface.port)) is not None
            )),
        )
    if problems:
        raise SetupError("; ".join(sorted(problems)))
    devices = tuple(DevicePlan(interface=i, kind=str(model.interfaces[i].kind), owner=name)
                    for name, p in plans.items() for i in p.devices)
    audit = [n for n, p in model.partitions.items() if p.service == "audit"]
    update_keys = tuple(provision[n] / MANUFACTURER_PUB for n, p in model.partitions.items()
                        if p.service == "update" and n in provision)
    return RunPlan(
        device=model.device.name, profile=str(model.device.profile), model_dir=model_dir,
        data_root=options.data_root, partitions=plans, channels=channels, messages=messages, devices=devices,
        audit_partition=audit[0] if audit else None, provisioning=provision, update_keys=update_keys,
        ports=ports,
    )
