"""`septum run --follow`: the live view of a running device (rich, redrawn in place, on a terminal) and its
plain-line form (one line per event, not on a terminal), issue 18."""

from __future__ import annotations

import io
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from runtime_helpers import MODELS

from septum.runtime.events import EventStream
from septum.runtime.live_view import LAST_EVENTS, LINE_QUEUE, LiveState, LiveView, PlainLines, plain_line

SEPTUM = [sys.executable, "-c", "from septum.cli import main; main()"]
PARTS = ("network", "controller", "monitor")


class FakeSupervisor:
    """The public API the view uses (events.subscribe, partition_state), with states a test sets."""

    def __init__(self) -> None:
        self.events = EventStream()
        self.states = {"network": "ready", "controller": "starting"}  # monitor: not started yet

    def partition_state(self, name: str) -> str:
        return self.states[name]


def _story(ev: EventStream) -> None:
    ev.emit("started", partition="network", pid=10, uid=61000, restarts=0)
    ev.emit("restart", partition="controller", severity="warning", attempt=1)
    ev.emit("heartbeat_missed", partition="controller", severity="error", silent_ms=230, heartbeat_ms=100)
    ev.emit("channel_drops", partition="controller", severity="warning", channel="orders_in", received=40,
            drops={"rate": 3, "queue": 1}, new=4, last_error="")
    ev.emit("channel_drops", partition="controller", severity="warning", channel="orders_in", received=90,
            drops={"rate": 7, "queue": 1}, new=4, last_error="")
    ev.emit("alarm", partition="monitor", source="partition", alarms="over_temperature")
    ev.emit("device_ready", ms=1234.5)


def _recorded(renderable: object, width: int = 140) -> Console:
    console = Console(record=True, width=width, force_terminal=True, color_system="standard", file=io.StringIO())
    console.print(renderable)
    return console


def test_rendering_shows_states_drops_alarms_and_last_events() -> None:
    sup = FakeSupervisor()
    view = LiveView(sup, PARTS, console=Console(file=io.StringIO(), force_terminal=True), plain=False)
    _story(sup.events)
    console = _recorded(view.render())
    text = console.export_text(clear=False)
    lines = text.splitlines()
    assert lines[0].startswith("device running") and "7 events" in lines[0]
    row = {ln.split()[0]: ln.split() for ln in lines if ln.split() and ln.split()[0] in PARTS}
    assert row["network"][1] == "ready"
    assert row["controller"][1:5] == ["starting", "1", "1", "heartbeat_missed"]
    assert row["monitor"][1:3] == ["not", "started"]
    drops = next(ln for ln in lines if ln.startswith("orders_in"))
    assert drops.split()[:3] == ["orders_in", "controller", "8"] and "queue 1, rate 7" in drops
    alarms = text.split("alarms\n")[1].split("last events\n")[0]
    assert "heartbeat_missed controller" in alarms and "alarm monitor alarms=over_temperature" in alarms
    assert "channel_drops" not in alarms
    assert "device_ready ms=1234.5" in text.split("last events\n")[1]
    # styled for a terminal: the ready state is green, the alarm red
    styled = console.export_text(styles=True)
    assert "\x1b[32mready" in styled and "\x1b[31m" in styled


def test_last_events_are_bounded() -> None:
    state = LiveState(PARTS)
    ev = EventStream()
    ev.subscribe(state.on_event)
    for i in range(LAST_EVENTS + 5):
        ev.emit("tick", n=i)
    text = _recorded(state.render({})).export_text()
    shown = [ln for ln in text.splitlines() if " tick n=" in ln]
    assert [ln.split("n=")[1] for ln in shown] == [str(i) for i in range(5, LAST_EVENTS + 5)]


def test_follow_redraws_in_place_and_leaves_the_final_view() -> None:
    sup = FakeSupervisor()
    out = io.StringIO()
    view = LiveView(sup, PARTS, console=Console(file=out, force_terminal=True, width=120), plain=False)
    assert not view.plain
    turns = iter(range(3))

    def done(_timeout: float) -> bool:
        i = next(turns, None)
        if i is None:
            return True
        sup.events.emit("tick", n=i)
        return False

    view.follow(done)
    sup.states = {"network": "stopped", "controller": "stopped", "monitor": "stopped"}
    sup.events.emit("stopped", outcome="stopped", failures=[])
    view.close()
    written = out.getvalue()
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", written)
    # a frame per turn, each drawn over the last (cursor up + erase line)
    assert all(f"{n} events" in plain for n in (0, 1, 2, 3)), plain
    assert written.count("\x1b[1A\x1b[2K") >= 3
    final = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", written.rsplit("\x1b[2K", 1)[1])
    assert "device stopped" in final and "tick n=2" in final


def test_not_on_a_terminal_it_writes_plain_lines() -> None:
    sup = FakeSupervisor()
    out = io.StringIO()
    view = LiveView(sup, PARTS, console=Console(file=out, force_terminal=False))
    assert view.plain
    _story(sup.events)
    view.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 7 and "\x1b" not in out.getvalue()
    assert lines[1].split()[1:5] == ["#2", "warning", "restart", "controller"]
    assert lines[5].split()[3:6] == ["alarm", "monitor", "(partition)"]
    assert lines[6].endswith("device_ready - ms=1234.5")


class _BlockedReader(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def write(self, s: str) -> int:
        self.go.wait(60)
        return super().write(s)


def test_a_slow_reader_loses_counted_lines_and_never_blocks_the_supervisor() -> None:
    out = _BlockedReader()
    lines = PlainLines(out)
    ev = EventStream()
    ev.subscribe(lines.on_event)
    extra = 50
    emitter = threading.Thread(target=lambda: [ev.emit("tick", n=i) for i in range(LINE_QUEUE + extra + 1)])
    emitter.start()
    emitter.join(60)
    assert not emitter.is_alive(), "emitting blocked on a reader that does not read"
    out.go.set()
    lines.close(60)
    text = out.getvalue()
    # the writer thread held one event when the reader blocked; the queue filled; the rest were counted
    assert f"... {extra} event(s) not shown: the reader fell behind" in text
    assert text.count(" tick ") == LINE_QUEUE + 1


def test_plain_line_format() -> None:
    ev = EventStream().emit("safe_state", partition="monitor", severity="critical", policy="fail-safe")
    line = plain_line(ev)
    assert line.split()[1:] == ["#1", "critical", "safe_state", "monitor", "policy=fail-safe"]


def _needs_root() -> None:
    from septum.runtime.sandbox.probe import probe

    if not probe().root:
        print("SKIP: septum run starts partitions under their own uids and needs root")
        pytest.skip("needs root")


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # under /tmp itself: the partitions' uids must be able to reach it (pytest's tmp_path is private)
    d = Path(tempfile.mkdtemp(prefix="septum-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_run_follow_in_a_pipe_prints_one_line_per_event(state_dir: Path) -> None:
    _needs_root()
    proc = subprocess.Popen([*SEPTUM, "run", str(MODELS / "basic.yaml"), "--follow", "--state-dir",
                             str(state_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:  # synchronise on the device_ready line, not on time
            seen.append(line)
            if " device_ready " in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seen += rest.splitlines(keepends=True)
    kinds = [ln.split()[3] for ln in seen]
    assert proc.returncode == 0, err
    assert kinds.count("started") == 2 and kinds.count("ready") == 2 and "device_ready" in kinds
    assert kinds[-1] == "stopped" and "\x1b" not in "".join(seen)
    events = (state_dir / "events.jsonl").read_text().splitlines()
    assert len(seen) == len(events)  # every event, once


def test_run_without_follow_in_a_pipe_shows_no_view(state_dir: Path) -> None:
    _needs_root()
    proc = subprocess.Popen([*SEPTUM, "run", str(MODELS / "basic.yaml"), "--state-dir", str(state_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "device_ready" in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and out == ""
