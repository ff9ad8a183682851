"""``Partition.beating``: a long bounded computation in a handler keeps the heartbeat going (unit level; the
end-to-end case, auth under the real supervisor, is tests/services_e2e/test_auth_slow_check.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from septum.runtime.partition import Partition


class _Loop:
    """Just what ``beating`` uses of a partition: its heartbeat interval and its heartbeat."""

    def __init__(self, beat_s: float | None) -> None:
        self._heartbeat_s = beat_s
        self.beats: list[str] = []

    def heartbeat(self) -> None:
        self.beats.append(threading.current_thread().name)


def beating(loop: _Loop, fn: Any) -> Any:
    return Partition.beating(loop, fn)  # type: ignore[arg-type]


def test_beats_from_the_handler_thread_while_the_work_runs_elsewhere() -> None:
    loop = _Loop(0.01)
    ran_in: list[str] = []

    def work() -> int:
        ran_in.append(threading.current_thread().name)
        time.sleep(0.1)  # releases the GIL, as argon2 does
        return 42

    assert beating(loop, work) == 42
    assert ran_in == ["septum-beating"]
    assert len(loop.beats) >= 3 and set(loop.beats) == {threading.current_thread().name}


def test_the_work_s_exception_is_the_handler_s() -> None:
    def work() -> None:
        raise ValueError("bad hash")

    with pytest.raises(ValueError, match="bad hash"):
        beating(_Loop(0.01), work)


def test_without_a_heartbeat_it_runs_inline() -> None:
    loop = _Loop(None)
    assert beating(loop, lambda: threading.current_thread().name) == threading.current_thread().name
    assert loop.beats == []


def test_no_thread_to_be_had_runs_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert beating(_Loop(0.01), lambda: "done") == "done"
