"""The one-pass reachability that spares the per-action and per-monitor searches answers exactly what a BFS
per source would (issue 16): on random graphs with cycles, blocked nodes and blocked sources, forwards and
backwards; and the rules modules are all registered without the folder scan."""

from __future__ import annotations

import pkgutil

from hypothesis import given, settings
from hypothesis import strategies as st

import septum.analysis.rules as rules
from septum.analysis.graph import Edge, FlowGraph, _components
from septum.model.refs import ElementRef


def _graph(n: int, edges: list[tuple[int, int]]) -> FlowGraph:
    g = FlowGraph.__new__(FlowGraph)
    g.refs = [ElementRef("partition", f"p{i}") for i in range(n)]
    g.ids = {("partition", f"p{i}"): i for i in range(n)}
    g.succ = [[] for _ in range(n)]
    for a, b in edges:
        g.succ[a].append(Edge(b, f"c{a}_{b}"))
    g._pred = None
    return g


graphs = st.integers(min_value=1, max_value=14).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=40),
    st.lists(st.integers(0, n - 1), min_size=1, max_size=6),
    st.sets(st.integers(0, n - 1), max_size=5),
))


@settings(max_examples=400, deadline=None)
@given(graphs)
def test_forward_bits_match_one_bfs_per_source(case: tuple[int, list[tuple[int, int]], list[int], set[int]]) -> None:
    n, edges, sources, blocked = case
    g = _graph(n, edges)
    bits = g.reach_bits(sources, blocked=blocked)
    for i, src in enumerate(sources):
        reached = g.bfs([src], blocked=lambda x: x in blocked)
        for node in range(n):
            assert bool(bits[node] >> i & 1) == (node in reached), (i, src, node)


@settings(max_examples=300, deadline=None)
@given(graphs)
def test_reverse_bits_and_reaching_match_a_bfs_from_each_node(
    case: tuple[int, list[tuple[int, int]], list[int], set[int]],
) -> None:
    n, edges, targets, _ = case
    g = _graph(n, edges)
    bits = g.reach_bits(targets, reverse=True)
    back = g.reaching(targets)
    for node in range(n):
        reached = g.bfs([node])
        for i, t in enumerate(targets):
            assert bool(bits[node] >> i & 1) == (t in reached), (node, t)
        assert (node in back) == any(t in reached for t in targets)


def test_components_of_a_long_chain_need_no_recursion() -> None:
    n = 50_000  # deeper than Python's recursion limit
    adj = [[i + 1] for i in range(n - 1)] + [[0]]  # one cycle through every node
    comp, comps = _components(adj)
    assert len(comps) == 1 and set(comp) == {0}


def test_every_rules_module_is_registered() -> None:
    found = {m.name for m in pkgutil.iter_modules(rules.__path__)}
    assert found == {m.__name__.rsplit(".", 1)[1] for m in rules.MODULES}


@settings(max_examples=300, deadline=None)
@given(graphs, st.sets(st.integers(0, 13), min_size=1, max_size=4))
def test_a_search_stopped_at_its_targets_gives_the_same_witnesses(
    case: tuple[int, list[tuple[int, int]], list[int], set[int]], stops: set[int],
) -> None:
    n, edges, sources, blocked = case
    g = _graph(n, edges)
    targets = [t for t in stops if t < n]
    full = g.bfs(sources, blocked=lambda x: x in blocked)
    short = g.bfs(sources, blocked=lambda x: x in blocked, stop_at=targets)
    for t in targets:
        assert (t in short) == (t in full)
        if t in full:
            assert g.path_to(short, t) == g.path_to(full, t)
