"""The information-flow graph of a model, with the searches the flow rules need.

Nodes are interfaces and partitions (as ``ElementRef``). Edges:
- an enabled external interface whose kind accepts input -> the partition that owns it (an entry point);
- every channel ``from`` -> ``to`` (labelled with the channel name).

Every search here is one BFS, linear in the size of the graph, so the rules
scale to models with tens of thousands of partitions. Paths are returned as ``PathStep`` witnesses.

A rule that asks one question per action or per monitor (is this handler reachable from these entry points?)
must not run one BFS each: on a model with thousands of monitors that is quadratic. It asks ``reach_bits``
first, one pass over the graph that answers every such question at once, and runs the BFS (for the witness,
exactly as before) only where the answer is yes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
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
        stop_at: Collection[Node] = (),
    ) -> dict[Node, tuple[Node, str | None] | None]:
        """Multi-source BFS. Returns parent links for every node reached.

        A ``blocked`` node is reached (so it appears in the result) but not expanded: a path may end at a
        guard, never pass through it. With ``stop_at``, the search ends once all of those nodes are reached:
        the links of every node on their paths are final by then (a BFS never changes a link it has set), so
        ``path_to`` gives each of them the same witness as the full search.
        """
        parent: dict[Node, tuple[Node, str | None] | None] = {}
        q: deque[Node] = deque()
        for src in sources:
            if src not in parent:
                parent[src] = None
                q.append(src)
        left = {t for t in stop_at if t not in parent}
        if stop_at and not left:
            return parent
        while q:
            n = q.popleft()
            if blocked(n) and parent[n] is not None:
                continue
            for e in self.succ[n]:
                if e.dst not in parent:
                    parent[e.dst] = (n, e.channel)
                    q.append(e.dst)
                    if left:
                        left.discard(e.dst)
                        if not left:
                            return parent
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

    def reaching(self, targets: Iterable[Node]) -> set[Node]:
        """Every node from which some target can be reached (the targets included): one BFS backwards."""
        seen: set[Node] = set(targets)
        q: deque[Node] = deque(seen)
        pred = self.pred
        while q:
            n = q.popleft()
            for m, _ in pred[n]:
                if m not in seen:
                    seen.add(m)
                    q.append(m)
        return seen

    def reach_bits(
        self, sources: Sequence[Node], *, blocked: Collection[Node] = (), reverse: bool = False,
    ) -> list[int]:
        """For every node, a bit set of the ``sources`` that reach it: bit ``i`` is set exactly when
        ``bfs([sources[i]], blocked=...)`` reaches the node. With ``reverse``, bit ``i`` is set when the node
        reaches ``sources[i]`` (edges followed backwards; ``blocked`` is not allowed then).

        One pass: strongly connected components (each reaches the same nodes), then the bits flow along the
        condensed graph in topological order. Costs about as much as a few BFS, whatever the number of sources.
        """
        n = len(self.refs)
        if reverse:
            if blocked:
                raise ValueError("reach_bits: blocked nodes only apply to forward reachability")
            adj = [[m for m, _ in preds] for preds in self.pred]
        else:
            # a blocked node is reached but not expanded, unless it is the source itself (as in bfs)
            adj = [[] if i in blocked else [e.dst for e in edges] for i, edges in enumerate(self.succ)]
        seed = [0] * n
        for i, src in enumerate(sources):
            bit = 1 << i
            seed[src] |= bit
            if not reverse and src in blocked:
                for e in self.succ[src]:
                    seed[e.dst] |= bit
        comp, comps = _components(adj)
        bits = [0] * len(comps)
        # _components lists a component after every component it reaches: walk it backwards, sources first
        for c in range(len(comps) - 1, -1, -1):
            b = bits[c]
            for v in comps[c]:
                b |= seed[v]
            bits[c] = b
            if b:
                for v in comps[c]:
                    for w in adj[v]:
                        if comp[w] != c:
                            bits[comp[w]] |= b
        return [bits[comp[v]] for v in range(n)]


def _components(adj: list[list[Node]]) -> tuple[list[int], list[list[Node]]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit on long chains).
    Returns each node's component and the components, each listed after every component it reaches."""
    n = len(adj)
    index = [0] * n  # 0: not visited yet; else the visit order, from 1
    low = [0] * n
    comp = [-1] * n
    on_stack = [False] * n
    stack: list[Node] = []
    comps: list[list[Node]] = []
    counter = 1
    for root in range(n):
        if index[root]:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        work: list[tuple[Node, int]] = [(root, 0)]
        while work:
            v, i = work[-1]
            nbrs = adj[v]
            if i < len(nbrs):
                work[-1] = (v, i + 1)
                w = nbrs[i]
                if not index[w]:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    work.append((w, 0))
                elif on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                c = len(comps)
                members: list[Node] = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp[w] = c
                    members.append(w)
                    if w == v:
                        break
                comps.append(members)
    return comp, comps
