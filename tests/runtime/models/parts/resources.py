"""Partitions that go over one resource bound each, on purpose, and a steady neighbour that must not notice.

Each hog starts shortly after ready (so the device is up first) and reports what it got as an audit
record, which reaches the audit service through the supervisor's feed."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

from septum.runtime.partition import Partition

MiB = 1 << 20


def _code(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc))


def disk_hog(p: Partition) -> None:
    cap = int(p.config["disk_mb"]) * 4 * MiB  # never more than 4x its bound, even if the bound is missing

    def fill() -> None:
        written, err = 0, ""
        chunk = b"\xa5" * MiB
        fd = os.open(Path(p.data_dir) / "fill.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while written < cap:
                try:
                    written += os.write(fd, chunk)
                except OSError as exc:
                    err = _code(exc)
                    break
            try:
                os.fsync(fd)
            except OSError as exc:
                err = err or _code(exc)
        finally:
            os.close(fd)
        p.audit("disk_hog_done", written=written, error=err)

    p.after(0.2, fill)


def memory_hog(p: Partition) -> None:
    def grab() -> None:
        p.event("memory_hog_allocating")
        hoard = []
        for _ in range(4096):
            hoard.append(b"x" * MiB)  # touched pages: resident, so the cgroup limit sees them
        p.audit("memory_hog_survived", mib=len(hoard))

    p.after(0.2, grab)


def pid_hog(p: Partition) -> None:
    def spawn() -> None:
        kids: list[int] = []
        err = ""
        for _ in range(256):
            try:
                pid = os.fork()
            except OSError as exc:
                err = _code(exc)
                break
            if pid == 0:
                time.sleep(3600)  # killed with the partition's cgroup at shutdown
                os._exit(0)
            kids.append(pid)
        threads, thread_err = 0, ""
        for _ in range(256):
            try:
                threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
                threads += 1
            except RuntimeError as exc:
                thread_err = str(exc)
                break
        p.audit("pid_hog_done", forked=len(kids), error=err, threads=threads, thread_error=thread_err)

    p.after(0.2, spawn)


def cpu_hog(p: Partition) -> None:
    def burn() -> None:
        # busy for 1.5 s of its own CPU time (it never sleeps); wall time shows the quota
        start_cpu, start = time.process_time(), time.monotonic()
        n = 0
        while time.process_time() - start_cpu < 1.5:
            n += 1
        p.audit("cpu_hog_done", cpu_s=round(time.process_time() - start_cpu, 3),
                wall_s=round(time.monotonic() - start, 3), loops=n)

    p.after(0.2, burn)


def steady(p: Partition) -> None:
    """Appends one durable record every 50 ms in its own data folder, and says how many it wrote."""
    path = Path(p.data_dir) / "steady.log"
    state = {"n": 0, "errors": 0}

    def tick() -> None:
        try:
            with open(path, "ab") as f:
                f.write(b"record %d\n" % state["n"])
                f.flush()
                os.fsync(f.fileno())
            state["n"] += 1
        except OSError:
            state["errors"] += 1
        if state["n"] % 20 == 0:
            p.event("steady", written=state["n"], errors=state["errors"])

    p.every(0.05, tick)
