"""Property-based: random mutations of the pump model either load into a fully consistent model or fail
with located errors. Never a traceback, never a silently accepted dangling reference."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from septum.model import Model, ModelError, loads
from septum.model.schema import BUILTIN_MESSAGES

PUMP_TEXT = (Path(__file__).parents[2] / "examples" / "infusion_pump" / "model.yaml").read_text()
PUMP: dict[str, Any] = yaml.safe_load(PUMP_TEXT)

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12), st.lists(st.text(max_size=6), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                                    st.integers(), max_size=2),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


ALL_PATHS = [p for p in _paths(PUMP) if p]


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        data = data[p]
    return data


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(PUMP)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        try:
            parent = _parent(data, path)
            key = path[-1]
            parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        op = draw(st.sampled_from(["delete", "replace", "rename_ref", "retype_key"]))
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(VALUES)
        elif op == "rename_ref" and isinstance(parent[key], str):
            parent[key] = parent[key] + draw(st.sampled_from(["x", "_2", ""]))
        elif op == "retype_key" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = parent.pop(key)
    return data


def assert_consistent(model: Model) -> None:
    parts, ifaces = model.partitions, model.interfaces
    msgs = set(model.messages) | set(BUILTIN_MESSAGES)
    owners: set[str] = set()
    for ch in model.channels:
        assert ch.src in parts and ch.dst in parts and ch.message in msgs
    for p in parts.values():
        for i in p.owns:
            assert i in ifaces and i not in owners
            owners.add(i)
    for a in model.actions.values():
        assert a.handled_by in parts
        assert all(r in model.roles for r in a.allowed)
        assert all(v in ifaces for v in a.via)
    for r in model.roles.values():
        assert all(v in ifaces for v in r.via)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_structural_mutations(data: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(data, sort_keys=False)
    except yaml.YAMLError:
        return
    try:
        model, _ = loads(text, "mut.yaml")
    except ModelError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.location.file == "mut.yaml" and issue.location.line >= 1 and issue.message
        return
    assert_consistent(model)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(PUMP_TEXT) - 1), st.text(min_size=1, max_size=4))
def test_text_mutations(pos: int, insert: str) -> None:
    text = PUMP_TEXT[:pos] + insert + PUMP_TEXT[pos + 1:]
    try:
        model, _ = loads(text, "mut.yaml")
    except ModelError as exc:
        assert exc.issues and all(i.location.line >= 1 for i in exc.issues)
        return
    assert_consistent(model)
