"""The supervisor's states are enums, and every write of a process state or the outcome holds the lock
that their readers on other threads take (septum/runtime/states.py states the discipline)."""

from __future__ import annotations

import ast
from pathlib import Path

from septum.runtime.states import ActivationPhase, Outcome, ProcState
from septum.runtime.supervisor import _Activation, _Proc

SUPERVISOR = Path(__file__).resolve().parents[2] / "septum" / "runtime" / "supervisor.py"


def _writes_outside_the_lock() -> list[str]:
    """Assignments to ``<x>.state`` or ``self.outcome`` that are not inside ``with self._lock`` (or in
    ``__init__``, before any other thread exists)."""
    tree = ast.parse(SUPERVISOR.read_text())
    bad: list[str] = []

    def visit(node: ast.AST, locked: bool, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            here_locked = locked
            here_func = child.name if isinstance(child, ast.FunctionDef) else func
            if isinstance(child, ast.With) and any(ast.unparse(i.context_expr) == "self._lock" for i in child.items):
                here_locked = True
            if isinstance(child, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for t in targets:
                    for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                        if isinstance(el, ast.Attribute) and (el.attr == "state" or ast.unparse(el) == "self.outcome"):
                            if not here_locked and here_func != "__init__":
                                bad.append(f"line {child.lineno}: {ast.unparse(child)}")
            visit(child, here_locked, here_func)

    visit(tree, False, "")
    return bad


def test_every_state_and_outcome_write_holds_the_lock() -> None:
    assert _writes_outside_the_lock() == []


def test_states_are_enums_that_read_as_the_old_words() -> None:
    assert _Proc.__dataclass_fields__["state"].default is ProcState.NEW
    assert _Activation.__dataclass_fields__["phase"].default is ActivationPhase.STOPPING
    assert ProcState.READY == "ready" and Outcome.SAFE_STATE == "safe_state" and f"{Outcome.HALTED}" == "halted"
    assert {s.value for s in ProcState} == {"new", "starting", "ready", "exited", "failed", "stopped"}
