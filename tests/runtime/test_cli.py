"""`septum run` as a command: refusal exit code, explain, clean shutdown on SIGTERM with no orphans."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from runtime_helpers import MODELS

SEPTUM = [sys.executable, "-c", "from septum.cli import main; main()"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SEPTUM, *args], capture_output=True, text=True, timeout=60)


def test_refuses_flawed_model_with_exit_1() -> None:
    r = _run("run", str(MODELS / "flawed.yaml"), "--allow-debug")
    assert r.returncode == 1
    assert "refusing to run" in r.stderr and "ISO" in r.stderr


def test_load_error_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("septum: 1\ndevice: {name: x}\npartitions: {p: {runs: 'a:b', bogus: 1}}\n")
    r = _run("run", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_explain_lists_mechanisms() -> None:
    r = _run("run", "--explain", str(MODELS / "basic.yaml"))
    assert r.returncode == 0, r.stderr
    assert "partition producer" in r.stdout and "seccomp" in r.stdout and "Landlock" in r.stdout


def test_sigterm_shuts_down_cleanly() -> None:
    state = Path(tempfile.mkdtemp(prefix="septum-test-"))
    proc = subprocess.Popen([*SEPTUM, "run", str(MODELS / "basic.yaml"), "--state-dir", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        children = _ready_children(proc)
    except BaseException:
        proc.kill()  # never leave a device running behind a failed test
        proc.wait()
        raise
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    for pid in children:
        try:
            os.kill(pid, 0)
            alive = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
        except ProcessLookupError:
            alive = False
        assert not alive, f"partition {pid} survived"
    events = (state / "events.jsonl").read_text()
    shutil.rmtree(state, ignore_errors=True)
    assert events.count('"kind":"device_ready"') == 1


def _ready_children(proc: subprocess.Popen[str]) -> list[int]:
    assert proc.stderr is not None
    for line in proc.stderr:  # synchronise on the device_ready line, not on time
        if "device_ready" in line:
            break
    # partitions are children of the supervisor thread, so look at every task of the process
    children = [int(p) for t in Path(f"/proc/{proc.pid}/task").iterdir()
                for p in (t / "children").read_text().split()]
    assert len(children) == 2
    return children
