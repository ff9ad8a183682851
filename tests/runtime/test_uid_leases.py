"""uid leases cannot be stolen (issue 18): supervisors in separate processes racing for the same uids,
many times, never hold one uid at once, including when they race to reclaim the leases of a dead one."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest

from septum.runtime.sandbox.identity import UidLeases

BASE = 3_900_000_000  # far above any real uid, so _in_passwd never skips one
PER_HOLDER = 12
HOLDERS = 3
ROUNDS = 150
DEADLINE_S = 60.0


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _holder(lease_dir: str, start: mp.Barrier, done: mp.Barrier, out: mp.Queue) -> None:
    leases = UidLeases(Path(lease_dir), base=BASE, count=PER_HOLDER * HOLDERS)
    for _ in range(ROUNDS):
        start.wait(DEADLINE_S)
        try:
            out.put((os.getpid(), leases.lease(PER_HOLDER)))
        except Exception as exc:  # reported to the parent, which fails the test with it
            out.put((os.getpid(), repr(exc)))
        done.wait(DEADLINE_S)  # everyone holds their leases while the parent compares them
        leases.release()
        done.wait(DEADLINE_S)


def test_racing_supervisors_never_share_a_uid(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    start, done = ctx.Barrier(HOLDERS + 1), ctx.Barrier(HOLDERS + 1)
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_holder, args=(str(tmp_path), start, done, out)) for _ in range(HOLDERS)]
    for p in procs:
        p.start()
    dead = _dead_pid()
    try:
        for rnd in range(ROUNDS):
            # every other round, every uid starts leased by a supervisor that has gone: the holders race to
            # reclaim the same stale leases
            if rnd % 2:
                for uid in range(BASE, BASE + PER_HOLDER * HOLDERS):
                    (tmp_path / str(uid)).write_text(str(dead))
            start.wait(DEADLINE_S)
            results = [out.get(timeout=DEADLINE_S) for _ in procs]
            owners: dict[int, int] = {}
            for pid, got in results:
                assert isinstance(got, list), f"round {rnd}: holder {pid} failed: {got}"
                for uid in got:
                    assert uid not in owners, f"round {rnd}: uid {uid} leased by {owners[uid]} and {pid}"
                    owners[uid] = pid
                    # the lease on disk names its holder
                    assert (tmp_path / str(uid)).read_text() == str(pid)
            done.wait(DEADLINE_S)
            done.wait(DEADLINE_S)
            assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []
    finally:
        for p in procs:
            p.join(DEADLINE_S)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)


def test_a_lease_file_is_never_empty_while_visible(tmp_path: Path) -> None:
    leases = UidLeases(tmp_path, base=BASE, count=4)
    got = leases.lease(2)
    assert [(tmp_path / str(u)).read_text() for u in got] == [str(os.getpid())] * 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    leases.release()


@pytest.mark.parametrize("content, age_s, reclaimed", [
    ("", 0.0, False),       # an older Septum between create and write: still its lease
    ("", 3600.0, True),     # left empty by a crash long ago
    ("dead", 0.0, True),    # the pid of a supervisor that has gone
    ("self", 0.0, False),   # a live supervisor's lease
])
def test_stale_and_live_leases(tmp_path: Path, content: str, age_s: float, reclaimed: bool) -> None:
    path = tmp_path / str(BASE)
    text = {"dead": str(_dead_pid()), "self": str(os.getppid())}.get(content, content)
    path.write_text(text)
    if age_s:
        t = path.stat().st_mtime - age_s
        os.utime(path, (t, t))
    got = UidLeases(tmp_path, base=BASE, count=2).lease(1)
    assert got == ([BASE] if reclaimed else [BASE + 1])


def test_release_keeps_a_lease_that_is_no_longer_ours(tmp_path: Path) -> None:
    leases = UidLeases(tmp_path, base=BASE, count=2)
    (uid,) = leases.lease(1)
    (tmp_path / str(uid)).write_text(str(os.getppid()))  # someone else's now
    leases.release()
    assert (tmp_path / str(uid)).read_text() == str(os.getppid())
