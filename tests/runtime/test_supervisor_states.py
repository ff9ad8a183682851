"""The supervisor's states are enums, and every write of a field other threads read holds the process table's
lock (septum/runtime/process_table.py states the discipline and names the fields: ``SHARED_FIELDS``)."""

from __future__ import annotations

import ast
from pathlib import Path

import septum.runtime.process_table as process_table
from septum.runtime.activation import Activation
from septum.runtime.process_table import SHARED_FIELDS, Proc
from septum.runtime.states import ActivationPhase, Outcome, ProcState

RUNTIME = Path(__file__).resolve().parents[2] / "septum" / "runtime"
# the modules that make up the supervisor: the executor and its units
SUPERVISOR_MODULES = ("supervisor.py", "process_table.py", "activation.py", "restart_policy.py")
MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "__setitem__", "sort"})


def _is_lock(expr: ast.expr) -> bool:
    """``with self.lock`` / ``with self._lock`` / ``with self.table.lock``: the process table's lock."""
    return isinstance(expr, ast.Attribute) and expr.attr in ("lock", "_lock")


def writes_outside_the_lock(source: str) -> list[str]:
    """Assignments to a shared field (``<x>.state = ...``, also in tuple targets and augmented) and
    in-place changes of one (``<x>.failures.append(...)``) that are not inside a ``with <...>.lock`` block
    (``__init__``, which runs before any other thread can see the object, is exempt)."""
    bad: list[str] = []

    def shared(node: ast.expr) -> bool:
        return isinstance(node, ast.Attribute) and node.attr in SHARED_FIELDS

    def visit(node: ast.AST, locked: bool, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            here_locked = locked
            here_func = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            if isinstance(child, ast.With | ast.AsyncWith) and any(_is_lock(i.context_expr) for i in child.items):
                here_locked = True
            found: list[ast.AST] = []
            if isinstance(child, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for t in targets:
                    found += [el for el in (t.elts if isinstance(t, ast.Tuple | ast.List) else [t]) if shared(el)]
                    if isinstance(t, ast.Subscript) and shared(t.value):
                        found.append(t)
            elif isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) \
                    and child.func.attr in MUTATORS and shared(child.func.value):
                found.append(child)
            elif isinstance(child, ast.Call) and isinstance(child.func, ast.Name) and child.func.id == "setattr" \
                    and len(child.args) >= 2 and isinstance(child.args[1], ast.Constant) \
                    and child.args[1].value in SHARED_FIELDS:
                found.append(child)
            if found and not here_locked and here_func != "__init__":
                bad.append(f"line {getattr(child, 'lineno', '?')}: {ast.unparse(child)}")
            visit(child, here_locked, here_func)

    visit(ast.parse(source), False, "")
    return bad


def test_every_shared_field_write_holds_the_lock() -> None:
    bad = {m: writes_outside_the_lock((RUNTIME / m).read_text()) for m in SUPERVISOR_MODULES}
    assert {m: b for m, b in bad.items() if b} == {}


def test_the_checker_sees_each_kind_of_unlocked_write() -> None:
    src = '''
class T:
    def f(self, p):
        p.state = 1
        p.code_dir, p.code_version = None, ""
        self.table.failures.append("x")
        setattr(p, "popen", None)
        with self.table.lock:
            p.pidfd = None
            self.outcome = 2
'''
    bad = writes_outside_the_lock(src)
    assert len(bad) == 4 and not any("pidfd" in b or "outcome" in b for b in bad), bad


def test_the_discipline_names_every_shared_field() -> None:
    doc = process_table.__doc__ or ""
    for f in SHARED_FIELDS:
        assert f"``Proc.{f}``" in doc or f"``ProcessTable.{f}``" in doc, f"{f} is not in the documented discipline"
    declared = set(Proc.__dataclass_fields__) | {"outcome", "failures"}
    assert declared >= SHARED_FIELDS


def test_states_are_enums_that_read_as_the_old_words() -> None:
    assert Proc.__dataclass_fields__["state"].default is ProcState.NEW
    assert Activation.__dataclass_fields__["phase"].default is ActivationPhase.STOPPING
    assert ProcState.READY == "ready" and Outcome.SAFE_STATE == "safe_state" and f"{Outcome.HALTED}" == "halted"
    assert {s.value for s in ProcState} == {"new", "starting", "ready", "exited", "failed", "stopped"}
