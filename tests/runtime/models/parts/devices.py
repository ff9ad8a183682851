"""Partitions for the device-link tests: an owner that echoes device packets, and partitions that own none."""

from __future__ import annotations

import os

from septum.runtime.partition import Partition


def _socket_inodes() -> list[int]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.append(int(target[8:-1]))
    return out


def owner(p: Partition) -> None:
    inodes = {name: os.fstat(p.device(name).fileno()).st_ino for name in p.devices}
    p.event("owner_devices", devices=sorted(p.devices), inodes=inodes)

    def on_motor(data: bytes) -> None:
        if not data:
            p.event("device_eof", device="motor")
            return
        p.device("motor").send(b"ack:" + data)  # the link is two-way: commands out, readings in

    p.on_device("motor", on_motor)


def other(p: Partition) -> None:
    try:
        p.device("motor")
        refused = False
    except KeyError:
        refused = True
    p.event("other_devices", devices=sorted(p.devices), refused=refused, sockets=_socket_inodes())
