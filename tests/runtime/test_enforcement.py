"""End-to-end: a real partition process tries to escape its sandbox; every attempt must fail."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from runtime_helpers import MODELS, require, running


def test_partition_cannot_escape(tmp_path: Path) -> None:
    require("root", "seccomp", "landlock", "netns")
    outside = Path("/tmp/septum-test-escape.txt")
    outside.unlink(missing_ok=True)
    with running("enforce.yaml", tmp_path) as sup:
        ev = sup.events.wait_for(lambda e: e.kind == "probe", timeout=10)
        assert ev is not None, "the prober did not report"
        r = ev.fields
        data_dir = sup.data_dir("prober")
        pid = sup.partition_pids()["prober"]
        status = Path(f"/proc/{pid}/status").read_text()
        written = (data_dir / "ok.txt").read_text() if (data_dir / "ok.txt").exists() else None
        st = data_dir.stat()
    # own identity, not root
    assert r["uid"] >= 61000 and r["uid"] == r["gid"]
    assert "CapEff:\t0000000000000000" in status
    # network: no socket at all without allow.net; only loopback in its namespace
    assert r["af_inet"] == "EPERM"
    assert r["af_inet6"] == "EPERM"
    assert r["af_unix"] == "EPERM"
    assert r["af_netlink"] == "EPERM"
    assert r["net_ifaces"] == ["lo"]
    # filesystem: writes only in its data dir
    assert r["write_data"] == "ok"
    assert written == "escape"
    assert r["write_tmp"] == "EACCES" and not outside.exists()
    assert r["write_code"] == "EACCES" and not (MODELS / "parts" / "escape.txt").exists()
    assert r["read_shadow"] == "EACCES"
    # no exec, no signals outside its own domain
    assert r["exec"] == "EPERM"
    assert r["exec_hooked"] == "refused-by-audit-hook"
    assert r["subprocess"] == "refused-by-audit-hook"
    assert r["ptrace_kill_1"] == "EPERM"
    # only the granted handles: stdio, its control channel and its channel ends
    assert r["sent_on_ungranted"] == [], "wrote on an fd it was not granted"
    assert r["backwards"] == "EPIPE"
    sockets = {int(fd) for fd, target in r["fds"].items() if target.startswith("socket:")}
    others = {int(fd): t for fd, t in r["fds"].items() if not t.startswith("socket:")}
    assert sockets == set(r["granted_fds"])  # its channel ends and its control channel, nothing else
    assert len(sockets) == 3
    assert set(others) <= {0, 1, 2}, others
    assert r["inputs"] == ["to_prober"] and r["outputs"] == ["from_prober"]
    # the data dir belongs to the partition only
    assert st.st_uid == r["uid"] and stat.S_IMODE(st.st_mode) == 0o700


def test_no_orphans_after_shutdown(tmp_path: Path) -> None:
    require("root")
    with running("forker.yaml", tmp_path) as sup:
        ev = sup.events.wait_for(lambda e: e.kind == "forked", timeout=10)
        assert ev is not None
        child = ev.fields["child"]
        pids = list(sup.partition_pids().values())
        os.kill(child, 0)  # the grandchild is alive while the device runs
    for pid in [*pids, child]:
        assert _gone(pid), f"process {pid} survived shutdown"


def _gone(pid: int) -> bool:
    # a killed orphan is reaped by init asynchronously: bounded wait, not a sleep
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.01)
    return False
