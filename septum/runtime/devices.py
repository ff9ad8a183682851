"""Hardware devices: an owned interface reaches only the partition that owns it.

For every interface a partition ``owns`` whose kind is not a network kind (network, wireless,
bluetooth: those are reached through the network stack, see ``plan.network``) and that is not disabled,
the supervisor creates one ``socketpair(AF_UNIX, SOCK_SEQPACKET)``:

* the *partition end* is passed to the owning partition like a channel end (``pass_fds``) and appears
  there as ``p.device(name)``; no other partition is ever handed it, so no other partition can read a
  sensor or drive an actuator, whatever its code does;
* the *hardware end* is given to the ``HardwareProvider`` passed to the supervisor
  (``Supervisor(..., hardware=provider)``): ``provider.attach(interface, sock)`` is called once during
  setup, before any partition starts. On a real board the provider would bridge to the device node
  (``/dev/...``); in the reference pump it is the hardware simulator.

Without a provider the supervisor closes the hardware end at once: the device is "unplugged" and the
owning partition reads end-of-file on it (its ``on_device`` handler is called with ``b""``), and
sends to it fail with EPIPE. The partition ends stay open across restarts of the owner, so a restarted
partition gets the same devices, like its channels.

The bytes on a device link are the device's own protocol (the runtime does not decode them); packets are
bounded by ``MAX_DEVICE_PACKET``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from septum.model.schema import NETWORK_KINDS, Model

MAX_DEVICE_PACKET = 64 * 1024


class HardwareProvider(Protocol):
    def attach(self, interface: str, sock: socket.socket) -> None:
        """Take ownership of the hardware end of ``interface`` (called once, before partitions start)."""


@dataclass(frozen=True)
class DevicePair:
    interface: str
    kind: str
    owner: str
    partition_end: socket.socket
    hardware_end: socket.socket


def device_interfaces(model: Model, partition: str) -> tuple[str, ...]:
    """The device interfaces ``partition`` owns (in model order)."""
    part = model.partitions[partition]
    out = []
    for name in part.owns:
        iface = model.interfaces.get(name)
        if iface is None or iface.kind in NETWORK_KINDS or not iface.enabled:
            continue
        out.append(name)
    return tuple(out)


class PlannedDevice(Protocol):
    @property
    def interface(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def owner(self) -> str: ...


def create_devices(planned: Iterable[PlannedDevice]) -> dict[str, DevicePair]:
    """One SEQPACKET pair per planned device (``septum.runtime.plan.DevicePlan``), keyed by interface name."""
    pairs: dict[str, DevicePair] = {}
    for d in planned:
        part_end, hw_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pairs[d.interface] = DevicePair(d.interface, d.kind, d.owner, part_end, hw_end)
    return pairs
