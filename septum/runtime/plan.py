"""From the model to a concrete launch plan per partition: entry point, channel ends, sandbox settings.

The supervisor launches from these plans and ``--explain`` prints them, so what is explained is what
is launched. Everything a user can get wrong (an entry module that does not exist, a Septum service
that is not installed, an unknown syscall group, an unusable message schema) is a ``SetupError`` here,
before any process starts.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from septum.errors import SeptumError
from septum.model.schema import NETWORK_KINDS, Channel, Model

from . import codec, liveness
from .devices import device_interfaces
from .sandbox import limits, seccomp

SYSTEM_READ_ONLY = ("/usr", "/lib", "/lib64", "/etc/localtime", "/etc/ld.so.cache", "/dev/null",
                    "/dev/urandom", "/proc/self")
NETWORK_READ_ONLY = ("/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/gai.conf",
                     "/etc/services", "/etc/protocols", "/etc/ssl")


class SetupError(SeptumError, RuntimeError):
    """The model cannot be launched as written (reported before any process starts)."""


@dataclass(frozen=True)
class PartitionPlan:
    name: str
    entry: str
    service: str | None
    criticality: str
    restart_policy: str
    heartbeat_ms: int | None
    inputs: tuple[Channel, ...]
    outputs: tuple[Channel, ...]
    network: bool  # keeps the host network (owns a network interface or allow.net)
    read_only: tuple[str, ...]
    read_write: tuple[str, ...]
    syscall_groups: tuple[str, ...]
    rlimits: tuple[tuple[int, int], ...]
    resources: Any
    config: dict[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ()  # owned hardware interfaces, each reached over its own device link
    # TCP ports the partition may listen on: those of the network interfaces it owns (a backdoor listener
    # on any other port is refused by Landlock). Outbound connections are not restricted by port.
    bind_ports: tuple[int, ...] = ()


def code_paths(model_dir: Path) -> list[str]:
    """Directories a partition must be able to read to import Python, Septum and its own code."""
    import septum

    paths = [str(model_dir)]
    paths.append(str(Path(septum.__file__).resolve().parent))
    paths += [p for p in sys.path if p and os.path.isdir(p)]
    paths += [sys.prefix, sys.base_prefix]
    seen: dict[str, None] = {}
    for p in paths:
        seen.setdefault(os.path.realpath(p), None)
    return list(seen)


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


def plan_device(
    model: Model, model_dir: Path, data_root: Path, ports: Mapping[str, int] | None = None
) -> dict[str, PartitionPlan]:
    """``ports`` maps an interface name to the TCP port it uses in this run (default: the model's ``port``),
    so a test bench can run a device on free ports; the partition may bind exactly those."""
    problems: list[str] = []
    ports = dict(ports or {})
    for iname in ports:
        iface = model.interfaces.get(iname)
        if iface is None or iface.kind not in NETWORK_KINDS:
            problems.append(f"port override for {iname!r}, which is not a network interface of the model")
    for mname in {c.message for c in model.channels}:
        try:
            codec.message_type(mname, {k: codec.field_spec(v) for k, v in model.message_fields(mname).items()})
        except (codec.CodecError, KeyError) as exc:
            problems.append(str(exc))
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
        rw = [str(data_root / name)]
        for path, mode in part.allow.files.items():
            (rw if mode == "rw" else ro).append(_file_path(path, model_dir))
        plans[name] = PartitionPlan(
            name=name,
            entry=entry,
            service=part.service,
            criticality=part.criticality,
            restart_policy=part.restart_policy,
            heartbeat_ms=part.heartbeat_ms,
            inputs=tuple(c for c in model.channels if c.dst == name),
            outputs=tuple(c for c in model.channels if c.src == name),
            network=network,
            read_only=tuple(ro),
            read_write=tuple(rw),
            syscall_groups=tuple(part.allow.syscalls),
            rlimits=tuple(limits.rlimits(part.resources)),
            resources=part.resources,
            config={**part.config, **liveness.plan_config(model, name, ports)},
            devices=device_interfaces(model, name),
            bind_ports=tuple(sorted(
                port for i in part.owns
                if (iface := model.interfaces.get(i)) is not None and iface.kind in NETWORK_KINDS
                and iface.enabled and (port := ports.get(i, iface.port)) is not None
            )),
        )
    if problems:
        raise SetupError("; ".join(sorted(problems)))
    return plans


def message_specs(model: Model) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for mname in {c.message for c in model.channels}:
        out[mname] = {k: codec.field_spec(v) for k, v in model.message_fields(mname).items()}
    return out
