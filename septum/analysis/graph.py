"""The information-flow graph of a model, with the searches the flow rules need.

Nodes are interfaces and partitions (as ``ElementRef``). Edges:
- an enabled external interface whose kind accepts input -> the partition that owns it (an entry point);
- every channel ``from`` -> ``to`` (labelled with the channel name).

Every search here is one BFS, linear in the size of the graph, so the rules
scale to models with tens of thousands of partitions. Paths are returned as ``PathStep`` witnesses.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from septum.model import schema as s

from .finding import ElementRef, PathStep

Node = int  # dense ids; see FlowGraph.refs


@dataclass
class Edge:
    dst: Node
    channel: str | None


class FlowGraph:
    def __init__(self, model: s.Model) -> None:
        self.model = model
        self.refs: list[ElementRef] = []
        self.ids: dict[tuple[str, str], Node] = {}
        self.succ: list[list[Edge]] = []
        for name in model.interfaces:
            self._add(ElementRef("interface", name))
        for name in model.partitions:
            self._add(ElementRef("partition", name))
        # entry edges: interface -> owner
        self.entry_points: list[Node] = []
        for pname, part in model.partitions.items():
            for iname in part.owns:
                iface = model.interfaces.get(iname)
                if iface is None:
                    continue
                if iface.external and iface.enabled and iface.kind in s.INPUT_KINDS:
                    i = self.ids[("interface", iname)]
                    self.succ[i].append(Edge(self.ids[("partition", pname)], None))
                    self.entry_points.append(i)
        for ch in model.channels:
            a = self.ids.get(("partition", ch.src))
            b = self.ids.get(("partition", ch.dst))
            if a is not None and b is not None:
                self.succ[a].append(Edge(b, ch.name))
        self._pred: list[list[tuple[Node, str | None]]] | None = None

    def _add(self, ref: ElementRef) -> None:
        self.ids[(ref.kind, ref.name)] = len(self.refs)
        self.refs.append(ref)
        self.succ.append([])

    def part(self, name: str) -> Node:
        return self.ids[("partition", name)]

    def iface(self, name: str) -> Node:
        return self.ids[("interface", name)]

    def partition_of(self, node: Node) -> s.Partition | None:
        ref = self.refs[node]
        return self.model.partitions.get(ref.name) if ref.kind == "partition" else None

    @property
    def pred(self) -> list[list[tuple[Node, str | None]]]:
        if self._pred is None:
            pred: list[list[tuple[Node, str | None]]] = [[] for _ in self.refs]
            for a, edges in enumerate(self.succ):
                for e in edges:
                    pred[e.dst].append((a, e.channel))
            self._pred = pred
        return self._pred

    # ------------------------------------------------------------------ searches

    def bfs(
        self,
        sources: Iterable[Node],
        *,
        blocked: Callable[[Node], bool] = lambda n: False,
    ) -> dict[Node, tuple[Node, str | None] | None]:
        """Multi-source BFS. Returns parent links for every node reached.

        A ``blocked`` node is reached (so it appears in the result) but not expanded: a path may end at a
        guard, never pass through it.
        """
        parent: dict[Node, tuple[Node, str | None] | None] = {}
        q: deque[Node] = deque()
        for src in sources:
            if src not in parent:
                parent[src] = None
                q.append(src)
        while q:
            n = q.popleft()
            if blocked(n) and parent[n] is not None:
                continue
            for e in self.succ[n]:
                if e.dst not in parent:
                    parent[e.dst] = (n, e.channel)
                    q.append(e.dst)
        return parent

    def path_to(self, parent: dict[Node, tuple[Node, str | None] | None], target: Node) -> tuple[PathStep, ...]:
        steps: list[PathStep] = []
        cur: Node | None = target
        while cur is not None:
            link = parent[cur]
            steps.append(PathStep(self.refs[cur], link[1] if link else None))
            cur = link[0] if link else None
        steps.reverse()
        return tuple(steps)

    def shortest_path(
        self, sources: Iterable[Node], target: Node, *, blocked: Callable[[Node], bool] = lambda n: False
    ) -> tuple[PathStep, ...] | None:
        parent = self.bfs(sources, blocked=blocked)
        return self.path_to(parent, target) if target in parent else None
