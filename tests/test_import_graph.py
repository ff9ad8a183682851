"""The packages under septum/ import each other in one direction only: no cycle between packages.

``python tests/test_import_graph.py`` prints the package import graph (edges with the number of import
statements behind each) for review.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "septum"


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


def package_graph() -> Counter[tuple[str, str]]:
    """(importing package, imported package) -> import statements, over every module (local imports too)."""
    edges: Counter[tuple[str, str]] = Counter()
    for path in sorted(ROOT.rglob("*.py")):
        src = _package_of(path)
        if src == "__init__":
            continue
        rel = path.relative_to(ROOT).with_suffix("")
        here = ["septum", *rel.parts[:-1]]  # the package a relative import of level 1 names
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    names = [".".join([*base, *(node.module.split(".") if node.module else [])])]
                    if not node.module:  # from . import x: the x are modules of that package
                        names = [".".join([*base, a.name]) for a in node.names]
                elif node.module:
                    names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "septum" and len(parts) > 1 and parts[1] != src:
                    edges[(src, parts[1])] += 1
    return edges


def cycles(edges: Counter[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_packages() -> None:
    edges = package_graph()
    found = cycles(edges)
    detail = {tuple(c): sorted(f"{a} -> {b} ({n})" for (a, b), n in edges.items() if a in c and b in c)
              for c in found}
    assert not found, f"import cycles between packages: {detail}"


def test_the_graph_sees_relative_and_local_imports() -> None:
    edges = package_graph()
    assert edges[("services", "runtime")] > 0  # services import the partition runtime (relative and absolute)
    assert edges[("cli", "analysis")] > 0  # the CLI imports lazily, inside functions
    assert cycles(Counter({("a", "b"): 1, ("b", "c"): 1, ("c", "a"): 1, ("c", "d"): 1})) == [["a", "b", "c"]]


if __name__ == "__main__":
    for (a, b), n in sorted(package_graph().items()):
        print(f"{a} -> {b} ({n})")
    print("cycles:", cycles(package_graph()) or "none", file=sys.stderr)
