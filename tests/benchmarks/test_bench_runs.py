"""Run the pump benchmarks with a tiny n and check what they print: GOAL lines last, failed trials counted.

They start the real pump (root: partitions run under their own uids). The figures are never checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts the real pump (partitions under their own uids)")


def run(script: str, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=240,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.splitlines()


def test_safety_reaction_counts_a_motor_that_did_not_stop_in_time() -> None:
    # a stop deadline no motor can meet: every trial is a failed reaction, counted (as inf), never dropped
    lines = run("safety_reaction.py", "--per-kind", "1", "--silence-trials", "0", "--stop-timeout", "0.000001",
                "--seed", "1")
    goals = lines[-3:]
    for kind, line in zip(("occlusion", "air", "door_open"), goals, strict=True):
        assert re.fullmatch(rf"GOAL safety_reaction_{kind}: p99 n/a ms vs <= 10 ms — missed \(n=1 < 100: .*\)", line)
    counted = [ln for ln in lines if ln.strip().startswith("failed trials:")]
    assert len(counted) == 3
    assert all(ln.strip().startswith("failed trials: 1 motor not stopped") for ln in counted), counted
    assert sum("injection -> motor stop        n=1 " in ln for ln in lines) == 3  # the inf sample is kept
    assert any("safety_monitor period 10 ms (from the model)" in ln for ln in lines)
    assert any(ln.startswith("safety reaction under the runtime") and "load average" in ln for ln in lines)


def test_startup_starts_the_real_pump_and_prints_its_goal() -> None:
    lines = run("startup.py", "--runs", "1")
    assert re.fullmatch(r"GOAL startup_real_pump_ready: median \d+ ms vs <= 250 ms — missed "
                        r"\(only 1 successful runs, need >= 5\)", lines[-1]), lines[-1]
    head = next(ln for ln in lines if ln.startswith("real pump start-up"))
    assert "7 partitions, real services" in head and "load average" in head
    assert any(ln.strip().startswith("baseline: 7 x python -I -c pass") and "n=1" in ln for ln in lines)
    assert "failed runs: 0 of 1" in "\n".join(lines)
