"""A partition with network may listen only on the ports of the interfaces it owns (no backdoor listener)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import msgspec
import pytest
from runtime_helpers import MODELS, require, running

from septum.model import load
from septum.runtime.sandbox.probe import probe


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_only_declared_ports_can_be_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require("root", "landlock")
    if probe().landlock_abi < 4:
        print("SKIP: Landlock ABI < 4 cannot restrict TCP ports on this host")
        pytest.skip("Landlock ABI < 4 cannot restrict TCP ports on this host")
    declared, undeclared = _free_ports(2)
    model, source = load(MODELS / "listener.yaml")
    server = model.partitions["server"]
    patched = msgspec.structs.replace(server, config={"declared": declared, "undeclared": undeclared})
    model = msgspec.structs.replace(model, partitions={**model.partitions, "server": patched})
    monkeypatch.setattr("runtime_helpers.load", lambda path: (model, source))
    with running("listener.yaml", tmp_path, ports={"lan": declared}) as sup:
        ev = sup.events.wait_for(lambda e: e.kind == "bind_results", timeout=10)
        assert ev is not None
        assert ev.fields["declared"] == "ok"
        denied = f"PermissionError: errno {errno.EACCES}"
        assert ev.fields["undeclared"] == denied
        assert ev.fields["ephemeral"] == denied
        # a sending end knows the rate its receiver enforces (rate: 10/s in the model)
        assert ev.fields["numbers_rate"] == 10.0
