"""Resource bounds from the model, in one real device: a partition over its disk, memory, pids or CPU bound
is refused or stopped, while a steady neighbour and the audit service (whose log must verify) carry on.
Each bound is shown by what the hog itself got (ENOSPC, EAGAIN, an OOM kill) or by the kernel's own
counters (cgroup cpu.stat), never by timing."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import MODELS

from septum.crypto.keys import load_public_key
from septum.model import load
from septum.runtime.sandbox import disk, limits
from septum.runtime.sandbox.probe import probe
from septum.runtime.supervisor import Supervisor, remove_state_dir
from septum.services import audit_log
from septum.services.provisioning import provision_device

MODEL = MODELS / "resources.yaml"


def _require_bounds() -> None:
    host = probe()
    missing = [what for what, ok in (
        ("root", host.root), ("seccomp", host.seccomp),
        ("cgroup memory controller", host.cgroup_controller("memory")),
        ("cgroup pids controller", host.cgroup_controller("pids")),
        ("cgroup cpu controller", host.cgroup_controller("cpu")),
        (f"per-partition disk quota ({host.disk_unavailable})", host.disk_quota)) if not ok]
    if missing:
        msg = f"this host cannot enforce: {', '.join(missing)}"
        print(f"SKIP: {msg}")
        pytest.skip(msg)


def _tmp(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o711)  # partitions (other uids) traverse it
    return d


@pytest.fixture
def device() -> Iterator[tuple[Supervisor, Path, Path]]:
    _require_bounds()
    out, state = _tmp("septum-prov-"), _tmp("septum-bounds-")
    prov = provision_device(MODEL, out / "device")
    model, src = load(MODEL)
    sup = Supervisor(model, src, model_dir=MODELS, state_dir=state, check=False, provision=prov.folders)
    try:
        sup.start()
        # not wait_ready(): a hog may already be over its bound before the slowest partition is ready
        for name in model.partitions:
            assert sup.events.wait_for(lambda e, n=name: e.kind == "ready" and e.partition == n, timeout=30), \
                f"{name} did not become ready: " + "; ".join(sup.failures)
        yield sup, state, Path(prov.audit_public_key)
    finally:
        sup.stop()
        remove_state_dir(state)
        remove_state_dir(out)


def _cgroup_dir(sup: Supervisor, ctrl: str, partition: str) -> Path:
    return probe().cgroup.bases[ctrl] / f"septum-{sup.run_id}" / partition


def test_each_bound_stops_only_its_partition(device: tuple[Supervisor, Path, Path]) -> None:
    sup, state, audit_pub = device
    ev = sup.events.wait_for

    # disk: the hog's own filesystem fills up; nobody else's does
    done = ev(lambda e: e.kind == "disk_hog_done", timeout=30)
    assert done is not None, "the disk hog did not report"
    assert done.fields["error"] == "ENOSPC", done.fields
    assert 0 < done.fields["written"] <= 8 << 20
    hog_dir, audit_dir, steady_dir = sup.data_dir("disk_hog"), sup.data_dir("audit"), sup.data_dir("steady")
    devices = {os.stat(d).st_dev for d in (hog_dir, audit_dir, steady_dir, state)}
    assert len(devices) == 4, "data folders must be separate filesystems, apart from the state folder"
    used, total = disk.used_bytes(hog_dir)  # type: ignore[misc]
    assert total <= 8 << 20 and used > total * 0.9
    audit_used, audit_total = disk.used_bytes(audit_dir)  # type: ignore[misc]
    assert audit_total > 32 << 20 and audit_used < audit_total / 2  # the audit log's filesystem kept its space

    # memory: OOM-killed by its cgroup, reported as memory_limit, not restarted
    exited = ev(lambda e: e.kind == "exited" and e.partition == "memory_hog", timeout=30)
    assert exited is not None and exited.fields["reason"] == "memory_limit", exited
    assert ev(lambda e: e.kind == "memory_hog_survived", timeout=0.1) is None

    # pids: fork and thread creation refused at the bound
    pids = ev(lambda e: e.kind == "pid_hog_done", timeout=30)
    assert pids is not None, "the pid hog did not report"
    assert pids.fields["error"] == "EAGAIN", pids.fields
    assert pids.fields["forked"] < 8 and pids.fields["threads"] < 8 and pids.fields["thread_error"]
    current = int((_cgroup_dir(sup, "pids", "pid_hog") / "pids.current").read_text())
    assert current <= 8

    # cpu: the quota throttled it (the kernel's own counters)
    cpu = ev(lambda e: e.kind == "cpu_hog_done", timeout=60)
    assert cpu is not None, "the cpu hog did not report"
    stat = limits.PartitionCgroup(probe().cgroup, {"cpu": _cgroup_dir(sup, "cpu", "cpu_hog")}).cpu_stat()
    assert stat.get("nr_throttled", 0) > 0, stat
    assert (stat.get("throttled_time", 0) or stat.get("throttled_usec", 0)) > 0, stat
    quota = int((_cgroup_dir(sup, "cpu", "cpu_hog") / "cpu.cfs_quota_us").read_text())
    assert quota == limits.CFS_PERIOD_US * 20 // 100

    # the neighbour went on writing durably, without an error, a restart or a missed heartbeat
    after = done.seq
    later = ev(lambda e: e.kind == "steady" and e.seq > cpu.seq and e.fields["written"] > 0, timeout=10)
    assert later is not None and later.fields["errors"] == 0, later
    history = list(sup.events.history)
    assert not [e for e in history if e.partition == "steady" and e.kind in ("exited", "restart", "heartbeat_missed")]
    assert not [e for e in history if e.partition == "audit" and e.kind in ("exited", "restart", "heartbeat_missed")]
    assert sup.partition_state("steady") == "ready" and sup.partition_state("audit") == "ready"

    sup.stop()
    # the audit log (on its own filesystem) verifies and holds what the hogs did, and records after it
    log = state / "data" / "audit" / "audit.log"
    result = audit_log.verify(log, load_public_key(audit_pub))
    assert result.ok, result.damage
    entries, damage = audit_log.read_entries(log)
    assert damage is None
    recs = [e.body for e in entries if isinstance(e.body, audit_log.Record)]
    events = [r.event for r in recs]
    assert any("disk_hog_done" in x for x in events) and any("pid_hog_done" in x for x in events)
    assert any("cpu_hog_done" in x for x in events)
    assert any(r.event == "supervisor.exited" and r.detail.get("subject") == "memory_hog" for r in recs)
    disk_at = next(i for i, x in enumerate(events) if "disk_hog_done" in x)
    assert len(events) > disk_at + 3, "the audit log stopped growing after the disk hog"
    assert after > 0
    # after the run: no mount left, the data folders are plain folders again with their contents
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(state) not in mounts
    assert not (state / "disks").exists()
    assert (state / "data" / "disk_hog" / "fill.bin").stat().st_size == done.fields["written"]
    assert (state / "data" / "steady" / "steady.log").read_bytes().count(b"\n") >= later.fields["written"]


def _mount_count(state: Path) -> int:
    return sum(str(state) in line for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_a_killed_supervisors_disks_are_taken_over_and_released() -> None:
    """A supervisor killed outright cannot unmount; the next run with the same state folder takes the
    mounted images over (their data is the newest) and releases them at its own stop, and
    remove_state_dir never leaves a mount behind."""
    import signal
    import subprocess
    import sys
    import time

    _require_bounds()
    state = _tmp("septum-killed-")
    try:
        proc = subprocess.Popen([sys.executable, "-c", "from septum.cli import main; main()", "run",
                                 str(MODELS / "basic.yaml"), "--state-dir", str(state)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while _mount_count(state) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert _mount_count(state) == 2, "the run did not mount its two data folders"
        (state / "data" / "producer" / "kept.txt").write_text("written during the killed run")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert _mount_count(state) == 2  # nobody unmounted them
        model, src = load(MODELS / "basic.yaml")
        with Supervisor(model, src, model_dir=MODELS, state_dir=state, check=False) as sup:
            assert sup.wait_ready(30)
            assert _mount_count(state) == 2
        assert _mount_count(state) == 0 and not (state / "disks").exists()
        assert (state / "data" / "producer" / "kept.txt").read_text() == "written during the killed run"
        proc = subprocess.Popen([sys.executable, "-c", "from septum.cli import main; main()", "run",
                                 str(MODELS / "basic.yaml"), "--state-dir", str(state)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while _mount_count(state) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.kill()
        proc.wait(10)
        assert _mount_count(state) == 2
    finally:
        remove_state_dir(state)
    assert _mount_count(state) == 0 and not state.exists()


def test_explain_shows_every_bound_and_says_what_a_host_lacks(tmp_path: Path) -> None:
    import dataclasses

    from septum.runtime import explain as ex
    from septum.runtime.plan import RunOptions, build_plan

    model, _src = load(MODEL)
    plans = build_plan(model, RunOptions(model_dir=MODELS, data_root=tmp_path / "data")).partitions
    full = dataclasses.replace(probe(), root=True, seccomp=True, disk_unavailable=None,
                               cgroup=limits.CgroupHost(1, {c: tmp_path for c in limits.CONTROLLERS}))
    rows = {what: ok for what, _how, ok in ex._lines(plans["disk_hog"], full)}
    assert rows["data folder <= 8 MiB (ENOSPC beyond)"] is True
    assert rows["memory <= 256 MiB, no swap (OOM kill, reported as memory_limit)"] is True
    rows = {what: ok for what, _how, ok in ex._lines(plans["cpu_hog"], full)}
    assert rows["cpu <= 20% of one CPU (throttled)"] is True
    rows = {what: ok for what, _how, ok in ex._lines(plans["pid_hog"], full)}
    assert rows["tasks (processes + threads) <= 8 (fork/thread creation refused)"] is True
    bare = dataclasses.replace(full, disk_unavailable="no loop devices (/dev/loop-control)",
                               cgroup=limits.CgroupHost(0, {}))
    lines = ex._lines(plans["disk_hog"], bare)
    disk_row = next(r for r in lines if r[0].startswith("data folder"))
    assert disk_row[2] is False and "no loop devices" in disk_row[1]
    assert not next(r for r in lines if r[0].startswith("memory <="))[2]
    assert "per-partition disk quota (no loop devices (/dev/loop-control))" in bare.missing()
