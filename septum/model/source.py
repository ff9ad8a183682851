"""Positions of model elements in the YAML source, looked up lazily from the composed node tree."""

from __future__ import annotations

import gc
import operator
from collections.abc import Sequence

import yaml

from .errors import Location

PathItem = str | int
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Composer(_BaseLoader):  # type: ignore[misc,valid-type]
    """Composes a document again for its marks only, which depend on the text alone: no scalar is typed."""

    def resolve(self, kind: object, value: object, implicit: object) -> str:
        return ""

    descend_resolver = operator.is_  # see septum.model.loader._Loader
    ascend_resolver = int


class SourceMap:
    """Maps a path inside the document (``("partitions", "ui", "owns", 0)``) to a file location."""

    # After loading, positions are kept only this deep: enough for every element and its fields. Keeping
    # the whole node tree would cost ~10x the model's memory and a long GC pass on large models.
    KEEP_DEPTH = 3

    def __init__(self, file: str, root: yaml.Node | None) -> None:
        self.file = file
        self.root = root
        self._channel_index: dict[str, int] = {}
        self._component_index: dict[str, tuple[str, int]] = {}
        # path -> (value line, value column, key line, key column), 1-based
        self._index: dict[tuple[PathItem, ...], tuple[int, int, int, int]] | None = None
        self._text: str | None = None  # after a lazy freeze, until the index is built

    def freeze(self, text: str | None = None) -> None:
        """Drop the YAML node tree. With ``text`` (the document it was composed from) the position index is
        built only when something is first located, from the text composed again: a check that finds
        nothing never pays for it. Without, the index is built now from the tree."""
        if text is not None:
            self._text = text
            self._index = None
        else:
            self._index = _position_index(self.root)
        self.root = None

    def _lazy_index(self) -> dict[tuple[PathItem, ...], tuple[int, int, int, int]] | None:
        if self._index is None and self._text is not None:
            loader = _Composer(self._text)
            # many small tuples and no cycles: the cyclic GC would only rescan them, again and again
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                self._index = _position_index(loader.get_single_node())
            finally:
                loader.dispose()
                if gc_was_enabled:
                    gc.enable()
            self._text = None
        return self._index

    def set_channel_index(self, index: dict[str, int]) -> None:
        self._channel_index = index

    def set_component_index(self, index: dict[str, tuple[str, int]]) -> None:
        """``"partition/name"`` -> (partition, position in that partition's component list)."""
        self._component_index = index

    def _loc(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)

    def locate(self, path: Sequence[PathItem], *, key: bool = False) -> Location:
        """Location of the deepest node on ``path`` that exists (the key node itself if ``key``)."""
        index = self._lazy_index()
        if index is not None:
            for n in range(len(path), -1, -1):
                hit = index.get(tuple(path[:n]))
                if hit is not None:
                    if key and n == len(path) and n > 0:
                        return Location(self.file, hit[2], hit[3])
                    return Location(self.file, hit[0], hit[1])
            return Location(self.file, 1, 1)
        node = self.root
        if node is None:
            return Location(self.file, 1, 1)
        for i, item in enumerate(path):
            last = i == len(path) - 1
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for knode, vnode in node.value:
                    if isinstance(knode, yaml.ScalarNode) and knode.value == str(item):
                        if last and key:
                            return self._loc(knode)
                        child = vnode
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(item, int):
                if 0 <= item < len(node.value):
                    child = node.value[item]
            if child is None:
                break
            node = child
        return self._loc(node)

    def element(self, kind: str, name: str) -> Location:
        """Location of a named element: ``element("channel", "orders_in")``."""
        if kind == "channel":
            idx = self._channel_index.get(name)
            return self.locate(("channels", idx)) if idx is not None else self.locate(("channels",))
        section = {
            "interface": "interfaces",
            "partition": "partitions",
            "message": "messages",
            "role": "roles",
            "action": "actions",
            "shared": "shared",
            "control": "controls",
            "component": "components",
        }.get(kind, kind)
        if kind == "control":
            return self.locate(("controls", "decisions", name))
        if kind == "component" and name in self._component_index:
            part, idx = self._component_index[name]
            return self.locate(("components", part, idx))
        if kind == "component" and "/" in name:
            return self.locate(("components", name.split("/", 1)[0]))
        return self.locate((section, name))


def _position_index(root: yaml.Node | None) -> dict[tuple[PathItem, ...], tuple[int, int, int, int]]:
    """Positions of every path down to ``SourceMap.KEEP_DEPTH``: enough for every element and its fields."""
    index: dict[tuple[PathItem, ...], tuple[int, int, int, int]] = {}
    if root is None:
        return index
    m = root.start_mark
    index[()] = (m.line + 1, m.column + 1, m.line + 1, m.column + 1)
    stack: list[tuple[tuple[PathItem, ...], yaml.Node]] = [((), root)]
    keep = SourceMap.KEEP_DEPTH
    while stack:
        path, node = stack.pop()
        if len(path) >= keep:
            continue
        children: list[tuple[PathItem, yaml.Node, yaml.Node]] = []
        if isinstance(node, yaml.MappingNode):
            children = [(k.value, k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            children = [(i, v, v) for i, v in enumerate(node.value)]
        for key, knode, vnode in children:
            child = (*path, key)
            if child not in index:
                vm, km = vnode.start_mark, knode.start_mark
                index[child] = (vm.line + 1, vm.column + 1, km.line + 1, km.column + 1)
                stack.append((child, vnode))
    return index
