"""Helpers for the runtime tests: load a test model and run it under a Supervisor."""

from __future__ import annotations

import contextlib
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from septum.model import load
from septum.runtime.sandbox.probe import probe
from septum.runtime.supervisor import Supervisor, remove_state_dir

HERE = Path(__file__).parent
MODELS = HERE / "models"


def require(*mechanisms: str) -> None:
    """Skip (with the reason printed) when this host cannot enforce a mechanism the test proves."""
    host = probe()
    missing = []
    if "root" in mechanisms and not host.root:
        missing.append("root")
    if "seccomp" in mechanisms and not host.seccomp:
        missing.append("seccomp")
    if "landlock" in mechanisms and host.landlock_abi < 1:
        missing.append("Landlock")
    if "netns" in mechanisms and not host.netns:
        missing.append("network namespaces")
    if "memory_cgroup" in mechanisms and not host.cgroup_controller("memory"):
        missing.append("cgroup memory controller")
    if missing:
        msg = f"this host cannot enforce: {', '.join(missing)}"
        print(f"SKIP: {msg}")
        pytest.skip(msg)


@contextlib.contextmanager
def running(model: str, tmp_path: Path, *, ready: bool = True, **kw: object) -> Iterator[Supervisor]:
    m, src = load(MODELS / model)
    kw.setdefault("check", False)  # these models exercise mechanics, not the analysis rules
    # pytest's tmp_path is private to root (0700): partitions (other uids) could not reach their data dirs
    state = Path(tempfile.mkdtemp(prefix="septum-test-"))
    sup = Supervisor(m, src, model_dir=MODELS, state_dir=state, **kw)  # type: ignore[arg-type]
    sup.start()
    try:
        if ready:
            assert sup.wait_ready(15), "device did not become ready"
        yield sup
    finally:
        sup.stop()
        remove_state_dir(state)


def control_messages(sup: socket.socket) -> list[Any]:
    """Every control message a partition has sent on its supervisor socket so far (non-blocking)."""
    from septum.runtime import protocol as proto

    out = []
    while True:
        try:
            data = sup.recv(proto.MAX_CONTROL_MESSAGE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return out
        out.append(proto.from_partition.decode(data))
