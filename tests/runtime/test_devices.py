"""Owned hardware interfaces reach only their owning partition (septum.runtime.devices)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from runtime_helpers import MODELS, require, running

from septum.model import load
from septum.runtime.devices import device_interfaces


class Recorder:
    """A hardware provider that keeps the hardware ends it is given."""

    def __init__(self) -> None:
        self.ends: dict[str, socket.socket] = {}

    def attach(self, interface: str, sock: socket.socket) -> None:
        self.ends[interface] = sock


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def test_device_interfaces_exclude_network_kinds() -> None:
    model, _ = load(MODELS / "devices.yaml")
    assert device_interfaces(model, "owner") == ("motor", "panel")
    assert device_interfaces(model, "netside") == ()
    assert device_interfaces(model, "other") == ()


def test_only_the_owner_holds_the_device(tmp_path: Path) -> None:
    require("root")
    hw = Recorder()
    with running("devices.yaml", tmp_path, hardware=hw) as sup:
        assert sorted(hw.ends) == ["motor", "panel"]  # attached once each, before the partitions started
        owner_ev = sup.events.wait_for(lambda e: e.kind == "owner_devices", timeout=5)
        assert owner_ev is not None
        assert owner_ev.fields["devices"] == ["motor", "panel"]
        device_inodes = set(owner_ev.fields["inodes"].values())
        others = []
        for _ in range(2):
            after = others[-1].seq if others else 0
            ev = sup.events.wait_for(lambda e: e.kind == "other_devices", timeout=5, after=after)
            assert ev is not None
            others.append(ev)
        assert {e.partition for e in others} == {"other", "netside"}
        for e in others:
            assert e.fields["devices"] == [] and e.fields["refused"] is True
            assert not device_inodes & set(e.fields["sockets"])
        # seen from outside too: the device ends are open in the owner and in no other partition
        pids = sup.partition_pids()
        assert device_inodes <= _socket_inodes(pids["owner"])
        for name in ("other", "netside"):
            assert not device_inodes & _socket_inodes(pids[name])
        # and the link works both ways between the hardware and the owner
        hw.ends["motor"].settimeout(5)
        hw.ends["motor"].send(b"rate=1")
        assert hw.ends["motor"].recv(100) == b"ack:rate=1"
    for s in hw.ends.values():
        s.close()


def test_without_hardware_the_owner_reads_eof(tmp_path: Path) -> None:
    with running("devices.yaml", tmp_path) as sup:
        ev = sup.events.wait_for(lambda e: e.kind == "device_eof", timeout=5)
        assert ev is not None and ev.fields["device"] == "motor"
