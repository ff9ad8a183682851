"""Partitions that misbehave on purpose: fork, hang, hog memory, crash."""

from __future__ import annotations

import os
import time

from septum.runtime.partition import Partition


def forker(p: Partition) -> None:
    pid = os.fork()
    if pid == 0:
        while True:  # an orphan-to-be: the supervisor must kill it at shutdown
            time.sleep(1)
    p.event("forked", child=pid)


def hang_on_command(p: Partition) -> None:
    @p.handler("cmd")
    def on_cmd(msg: object) -> None:
        p.event("hanging")
        while True:
            time.sleep(1)


def memory_hog_on_command(p: Partition) -> None:
    @p.handler("cmd")
    def on_cmd(msg: object) -> None:
        p.event("allocating")
        hoard = []
        for _ in range(4096):
            hoard.append(b"x" * (1 << 20))  # touched pages, 1 MiB at a time


def commander(p: Partition) -> None:
    """Sends one command on each of its outputs shortly after starting."""
    for ch in p.outputs:
        p.after(0.05, lambda ch=ch: p.send(ch, n=1))
