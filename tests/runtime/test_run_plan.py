"""Plan, then execute: one pure plan built from the model, and the supervisor runs that plan and nothing else.

* building the plan is pure: twice from one model it is equal, and it creates no process, socket, pipe,
  thread, file or folder;
* the supervisor executes the plan it is given (a plan whose channel and config were edited is what the
  partitions get);
* ``septum run`` plans once: during a whole run of a small model the planner is entered exactly once;
* ``--explain`` renders the plan the supervisor ran.
"""

from __future__ import annotations

import builtins
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from runtime_helpers import MODELS

from septum.model import load
from septum.runtime import explain as explain_mod
from septum.runtime import plan as plan_mod
from septum.runtime.plan import ChannelPlan, RunOptions, RunPlan, build_plan
from septum.runtime.supervisor import Supervisor, remove_state_dir

PUMP = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump"


def _no_effects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every way of starting a process, opening a socket or pipe, starting a thread or writing a file
    raise; returns the list the attempts are recorded in (a caller that swallowed the error is still seen)."""
    tried: list[str] = []

    def refuse(what: str) -> Callable[..., Any]:
        def fn(*_a: Any, **_k: Any) -> Any:
            tried.append(what)
            raise AssertionError(f"the planner tried {what}")
        return fn

    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "pipe", "pipe2", "mkdir", "makedirs",
                 "chmod", "chown", "rename", "replace", "unlink", "symlink"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"os.{name}"))
    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    monkeypatch.setattr(socket, "socket", refuse("socket.socket"))
    monkeypatch.setattr(socket, "socketpair", refuse("socket.socketpair"))
    monkeypatch.setattr(threading.Thread, "start", refuse("threading.Thread.start"))
    real_open, real_os_open = builtins.open, os.open

    def open_read_only(file: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        if any(c in mode for c in "wax+"):
            tried.append(f"open({file!r}, {mode!r})")
            raise AssertionError(f"the planner opened {file} to write")
        return real_open(file, mode, *a, **k)

    def os_open_read_only(path: Any, flags: int, *a: Any, **k: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            tried.append(f"os.open({path!r})")
            raise AssertionError(f"the planner opened {path} to write")
        return real_os_open(path, flags, *a, **k)

    monkeypatch.setattr(builtins, "open", open_read_only)
    monkeypatch.setattr(os, "open", os_open_read_only)
    return tried


@pytest.mark.parametrize("where", ["basic", "pump"])
def test_the_plan_is_pure(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = MODELS if where == "basic" else PUMP
    model, _src = load(model_dir / ("basic.yaml" if where == "basic" else "model.yaml"))
    data_root = tmp_path / "not-created" / "data"
    prov = {name: tmp_path / "prov" / name for name in list(model.partitions)[:2]}
    options = RunOptions(model_dir=model_dir, data_root=data_root, provision=prov)
    build_plan(model, options)  # imports the entry modules' finders once, before the effects are refused
    tried = _no_effects(monkeypatch)
    first, second = build_plan(model, options), build_plan(model, options)
    monkeypatch.undo()
    assert tried == []
    assert first == second and first is not second
    assert not (tmp_path / "not-created").exists() and not (tmp_path / "prov").exists()
    assert set(first.partitions) == set(model.partitions)
    assert [c.name for c in first.channels] == [c.name for c in model.channels]
    if where == "pump":  # the pump has all of it: devices, an audit feed, services given the model
        assert first.devices and first.audit_partition == "audit"
        assert all(plan_mod.MODEL_CONFIG_KEY in p.config for p in first.partitions.values() if p.service)


def test_the_plan_refuses_what_cannot_run_all_at_once(tmp_path: Path) -> None:
    model, _src = load(MODELS / "basic.yaml")
    with pytest.raises(plan_mod.SetupError) as err:
        build_plan(model, RunOptions(model_dir=MODELS, data_root=tmp_path, ports={"nope": 1},
                                     provision={"ghost": tmp_path}))
    assert "port override for 'nope'" in str(err.value) and "unknown partition(s): ghost" in str(err.value)


def _edited(plan: RunPlan, rate: float, count: int) -> RunPlan:
    """``plan`` with the ``numbers`` channel's rate and the producer's config changed (in every place the
    plan carries the channel: the device's channel list and both partitions' ends)."""
    def ch(c: ChannelPlan) -> ChannelPlan:
        return dataclasses.replace(c, rate_per_s=rate) if c.name == "numbers" else c

    parts = {}
    for name, p in plan.partitions.items():
        config = {**p.config, "count": count} if name == "producer" else p.config
        parts[name] = dataclasses.replace(p, inputs=tuple(map(ch, p.inputs)), outputs=tuple(map(ch, p.outputs)),
                                          config=config)
    return dataclasses.replace(plan, partitions=parts, channels=tuple(map(ch, plan.channels)))


def test_the_supervisor_runs_the_plan_it_is_given() -> None:
    model, src = load(MODELS / "planned.yaml")
    state = Path(tempfile.mkdtemp(prefix="septum-test-"))
    try:
        planned = build_plan(model, RunOptions(model_dir=MODELS, data_root=state / "data"))
        edited = _edited(planned, rate=7.0, count=9)
        assert edited != planned
        sup = Supervisor(model, src, model_dir=MODELS, state_dir=state, check=False, plan=edited)
        sup.start()
        try:
            assert sup.wait_ready(15), "device did not become ready"
            ev = sup.events.wait_for(lambda e: e.kind == "wiring", timeout=10)
            assert ev is not None, "the producer did not report its wiring"
            # the model says 1000/s and count 3: the partition got the plan's values
            assert ev.fields["rate"] == 7.0 and ev.fields["count"] == 9 and ev.fields["outputs"] == ["numbers"]
            assert sup.plan is edited
            assert explain_mod.explain_plan(sup.plan) == explain_mod.explain_plan(edited)
        finally:
            sup.stop()
    finally:
        remove_state_dir(state)


def test_a_plan_for_another_state_dir_is_refused(tmp_path: Path) -> None:
    model, src = load(MODELS / "planned.yaml")
    state = Path(tempfile.mkdtemp(prefix="septum-test-"))
    try:
        other = build_plan(model, RunOptions(model_dir=MODELS, data_root=tmp_path / "data"))
        sup = Supervisor(model, src, model_dir=MODELS, state_dir=state, check=False, plan=other)
        with pytest.raises(plan_mod.SetupError, match="plan given was built for data root"):
            sup.start()
        sup.stop()
    finally:
        remove_state_dir(state)


# ---------------------------------------------------------------------------- one pass through the planner
# (plan.unknown_provisioning is not among them: the Supervisor constructor also uses it to refuse its
# ``provision`` argument at once, as it always has, before any plan exists)
PLANNER = (plan_mod.build_plan, plan_mod.code_paths, plan_mod.liveness.plan_config, plan_mod.device_interfaces)


@pytest.fixture
def planner_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Count every call into the planner, under whatever name any Septum module holds it."""
    calls: Counter[str] = Counter()

    def counted(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            calls[fn.__name__] += 1
            return fn(*a, **k)
        return wrapper

    # keyed by identity: a module may hold callables that are not hashable (e.g. a msgspec Struct instance)
    wrappers = {id(fn): counted(fn) for fn in PLANNER}
    for mod in list(sys.modules.values()):
        if not getattr(mod, "__name__", "").startswith("septum"):
            continue
        for attr, value in list(vars(mod).items()):
            if callable(value) and id(value) in wrappers and any(value is fn for fn in PLANNER):
                monkeypatch.setattr(mod, attr, wrappers[id(value)])
    yield calls


def test_septum_run_enters_the_planner_once(planner_calls: Counter[str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from septum.cli.runtime import run_command  # `septum run`

    model, _src = load(MODELS / "basic.yaml")
    plan_mod.build_plan(model, RunOptions(model_dir=MODELS, data_root=tmp_path / "data"))
    one_plan = Counter(planner_calls)  # what a single plan of this model costs in planner calls
    planner_calls.clear()
    assert one_plan["build_plan"] == 1 and one_plan["device_interfaces"] == len(model.partitions)

    real_wait_ready = Supervisor.wait_ready
    seen: list[Supervisor] = []

    def wait_ready_then_stop(self: Supervisor, timeout: float = 10.0) -> bool:
        ok = real_wait_ready(self, timeout)
        seen.append(self)
        self.events.wait_for(lambda e: e.kind == "got" and e.fields.get("value") == 2, timeout=10)
        signal.raise_signal(signal.SIGTERM)  # as a user stops `septum run`: its handler ends the run
        return ok

    monkeypatch.setattr(Supervisor, "wait_ready", wait_ready_then_stop)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    state = Path(tempfile.mkdtemp(prefix="septum-test-"))
    try:
        result = CliRunner().invoke(run_command, [str(MODELS / "basic.yaml"), "--state-dir", str(state),
                                           "--no-follow"])
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
        remove_state_dir(state)
    assert result.exit_code == 0, result.output
    assert len(seen) == 1 and seen[0].outcome == "stopped"
    # the whole run (gate, plan, setup, spawns, supervision, shutdown) planned exactly as one plan does
    assert planner_calls == one_plan, f"planner calls during the run: {dict(planner_calls)}"


def test_explain_renders_the_plan_that_runs(tmp_path: Path) -> None:
    model, src = load(MODELS / "planned.yaml")
    state = Path(tempfile.mkdtemp(prefix="septum-test-"))
    try:
        with Supervisor(model, src, model_dir=MODELS, state_dir=state, check=False) as sup:
            assert sup.wait_ready(15)
            if sup.plan is None:
                raise AssertionError("a started supervisor has no plan")
            ran = explain_mod.explain_plan(sup.plan)
        assert ran == explain_mod.explain(model, MODELS, state)
        assert "partition producer" in ran[0] and "numbers->consumer (Number)" in ran[0]
    finally:
        remove_state_dir(state)


def test_the_executor_reads_the_model_only_to_gate_and_plan_it() -> None:
    """After ``start`` has gated the model and built the plan, nothing in the supervisor reads the model:
    every use of ``self.model`` is in ``__init__`` (kept) or ``start`` (gate, build_plan), and the
    supervisor's units do not import the model at all."""
    import ast

    runtime = Path(plan_mod.__file__).parent
    tree = ast.parse((runtime / "supervisor.py").read_text())
    users: set[str] = set()
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef):
            for node in ast.walk(func):
                if isinstance(node, ast.Attribute) and node.attr == "model" and ast.unparse(node.value) == "self":
                    users.add(func.name)
    assert users == {"__init__", "start"}, users
    for unit in ("process_table.py", "restart_policy.py", "activation.py"):
        imported = {n.module for n in ast.walk(ast.parse((runtime / unit).read_text()))
                    if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(m.startswith("septum.model") for m in imported), unit
