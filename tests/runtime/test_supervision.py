"""Supervision: restart policies, heartbeats, memory limits, the analysis gate."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from runtime_helpers import MODELS, require, running

from septum.model import load
from septum.runtime.gate import RefusedToRun
from septum.runtime.supervisor import Supervisor


def _kill_and_wait(sup: Supervisor, name: str, kind: str):
    after = sup.events.last_seq
    os.kill(sup.partition_pids()[name], signal.SIGKILL)
    ev = sup.events.wait_for(lambda e: e.kind == kind and e.partition == name, timeout=10, after=after)
    assert ev is not None, f"no {kind} event for {name}: {sup.events.history[-5:]}"
    return ev


def test_restart_policies(tmp_path: Path) -> None:
    with running("policies.yaml", tmp_path) as sup:
        old = sup.partition_pids()["restarts"]
        ev = _kill_and_wait(sup, "restarts", "restart")
        assert ev.fields["why"].startswith("exited (signal SIGKILL)")
        ready = sup.events.wait_for(lambda e: e.kind == "ready" and e.partition == "restarts", 10,
                                    after=ev.seq)
        assert ready is not None and sup.partition_pids()["restarts"] != old

        _kill_and_wait(sup, "stays_down", "not_restarted")
        assert sup.partition_state("stays_down") == "failed"
        assert "stays_down" not in sup.partition_pids()

        # a safety partition is never silently restarted: the device goes to its safe state
        safe = _kill_and_wait(sup, "monitor", "safe_state")
        assert safe.severity == "critical"
        for other in ("restarts", "bystander"):
            stopped = sup.events.wait_for(
                lambda e, o=other: e.kind == "exited" and e.partition == o and e.fields["expected"], 10,
                after=safe.seq)
            assert stopped is not None, other
        assert sup.outcome == "safe_state"
        assert not [e for e in sup.events.history if e.kind == "restart" and e.partition == "monitor"]


def test_hung_partition_is_detected_by_heartbeat(tmp_path: Path) -> None:
    with running("hang.yaml", tmp_path) as sup:
        missed = sup.events.wait_for(lambda e: e.kind == "heartbeat_missed", timeout=10)
        assert missed is not None and missed.partition == "hanger"
        exited = sup.events.wait_for(lambda e: e.kind == "exited" and e.partition == "hanger", 10)
        assert exited is not None and exited.fields["reason"] == "heartbeat missed"
        assert sup.events.wait_for(lambda e: e.kind == "restart" and e.partition == "hanger", 10)


def test_memory_limit_stops_partition_and_applies_policy(tmp_path: Path) -> None:
    require("root", "memory_cgroup")
    with running("memory.yaml", tmp_path) as sup:
        exited = sup.events.wait_for(lambda e: e.kind == "exited" and e.partition == "hog", timeout=20)
        assert exited is not None
        assert exited.fields["reason"] == "memory_limit", exited
        assert sup.events.wait_for(lambda e: e.kind == "not_restarted" and e.partition == "hog", 5)
        assert sup.partition_state("commander") == "ready"


def test_refuses_model_with_error_findings(tmp_path: Path) -> None:
    m, src = load(MODELS / "flawed.yaml")
    sup = Supervisor(m, src, model_dir=MODELS, state_dir=tmp_path, allow_debug=True)
    with pytest.raises(RefusedToRun) as info:
        sup.start()
    assert info.value.findings and all(f.blocking for f in info.value.findings)
    assert sup.partition_pids() == {}


def test_debug_profile_runs_only_with_explicit_flag(tmp_path: Path) -> None:
    m, src = load(MODELS / "flawed_debug.yaml")
    with pytest.raises(RefusedToRun, match="--allow-debug"):
        Supervisor(m, src, model_dir=MODELS, state_dir=tmp_path).start()
    with running("flawed_debug.yaml", tmp_path, check=True, allow_debug=True) as sup:
        ev = sup.events.wait_for(lambda e: e.kind == "debug_override", timeout=1)
        assert ev is not None and ev.severity == "critical" and ev.fields["findings"]
