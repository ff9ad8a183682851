"""Positions of model elements in the YAML source, looked up lazily from the composed node tree."""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from .errors import Location

PathItem = str | int


class SourceMap:
    """Maps a path inside the document (``("partitions", "ui", "owns", 0)``) to a file location."""

    def __init__(self, file: str, root: yaml.Node | None) -> None:
        self.file = file
        self.root = root
        self._channel_index: dict[str, int] = {}

    def set_channel_index(self, index: dict[str, int]) -> None:
        self._channel_index = index

    def _loc(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)

    def locate(self, path: Sequence[PathItem], *, key: bool = False) -> Location:
        """Location of the deepest node on ``path`` that exists (the key node itself if ``key``)."""
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
        return self.locate((section, name))
