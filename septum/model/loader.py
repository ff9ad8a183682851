"""Load a model file: YAML with positions -> typed, immutable ``Model``, or a ``ModelError``.

Conversion is done one element at a time, so a type error inside ``partitions.ui`` is reported against
that partition (msgspec alone would only say ``$.partitions[...]``). All problems found are reported
together, each with ``file:line:col``; nothing is silently accepted.
"""

from __future__ import annotations

import operator
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import msgspec
import yaml

from septum.errors import InvariantBroken
from septum.gc_pause import cyclic_gc_paused

from . import schema as s
from .errors import Location, ModelError, ModelIssue
from .source import PathItem, SourceMap
from .xref import check_references, close_matches

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
# YAML 1.1 words that PyYAML resolves to bool or null; every other plain scalar that starts with a letter
# or underscore is a string.
_SPECIAL_WORDS = frozenset(
    w for base in ("yes", "no", "true", "false", "on", "off", "null") for w in (base, base.title(), base.upper())
)

# Limits (docs/model.md, "Limits"). The largest benchmark model (10,000 partitions) is 3.5 MiB with ~530,000
# nodes; each limit is more than twice that. They bound memory: the YAML node tree costs ~90 bytes per byte of
# a typical model and ~150 for the worst case (a file of one-letter list items), ~1.3 GB at the size limit.
MAX_MODEL_BYTES = 8 * 2**20
# Keys and values after alias expansion: an alias bomb ("billion laughs") is refused before it is expanded.
MAX_NODES = 2_000_000
# Collections inside collections; a recursive alias is reported as such, not as a stack overflow.
MAX_DEPTH = 64
# Digits (and signs, underscores, 0x prefixes) in an integer literal; a model integer fits in 64 bits.
MAX_INT_CHARS = 40
_INT_RANGE = (-(2**63), 2**64 - 1)
_TAG_PREFIX = "tag:yaml.org,2002:"
_MAP_TAG = _TAG_PREFIX + "map"
_SEQ_TAG = _TAG_PREFIX + "seq"
_INT_TAG = _TAG_PREFIX + "int"
# Scalar types a model may hold; binary, and collection tags on scalars, have no place in a model.
_SCALAR_TAGS = frozenset(_TAG_PREFIX + t for t in ("str", "int", "float", "bool", "null", "timestamp"))


# The tag a plain (unquoted, untagged) scalar gets while composing. Which YAML type it has is decided only
# where the scalar is used as a value (``_plain_value``): keys, most of the scalars, are names and never need
# it. Compared by identity: a document that spells this tag explicitly gets an equal string, not this object,
# and its tag is refused like any other unknown one.
_PLAIN = "tag:septum.invalid,2026:plain"


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader that leaves the typing of plain scalars to ``_construct``.

    PyYAML resolves every plain scalar by trying regular expressions in Python; on a large model that is
    most of the load time. Names (partition, channel and field names, and every key) never need it.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR_TAG
        return super().resolve(kind, value, implicit)

    # The composer calls these two for every node, for path resolvers, which a model never registers (the
    # inherited methods return at once). Builtins that do nothing cost far less per call than a Python method:
    # they are not descriptors, so they are called with the composer's arguments only.
    descend_resolver = operator.is_  # (parent, index) -> a discarded bool
    ascend_resolver = int  # () -> a discarded 0


def _resolve_plain(loader: Any, node: yaml.ScalarNode) -> str:
    """The YAML 1.1 type of a plain scalar: a name is a string without PyYAML's regular expressions."""
    value = node.value
    if value and (value[0].isalpha() or value[0] == "_") and value not in _SPECIAL_WORDS:
        tag = _STR_TAG
    else:
        tag = _BaseLoader.resolve(loader, yaml.ScalarNode, value, (True, False))
    node.tag = tag  # an alias shares the node: decided once
    return tag


_DIGITS = frozenset("0123456789")


def _plain_value(loader: Any, node: yaml.ScalarNode, col: _Collector) -> Any:
    """The value of a plain scalar. Names and small decimal integers (most of a model) are read directly;
    anything else is typed by PyYAML's resolver and constructor, with their errors located."""
    value = node.value
    if value:
        c = value[0]
        if (c.isalpha() or c == "_") and value not in _SPECIAL_WORDS:
            return value
        # YAML 1.1 reads a leading 0 as octal, so only 0 itself and digits from 1 on take the short way;
        # 18 digits always fit the 64-bit range the slow way checks
        if c in _DIGITS and (c != "0" or len(value) == 1) and len(value) <= 18 and value.isascii() \
                and value.isdigit():
            node.tag = _INT_TAG
            return int(value)
    if _resolve_plain(loader, node) == _STR_TAG:
        return value
    return _scalar(loader, node, col)


class _Collector:
    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.issues: list[ModelIssue] = []
        self.nodes = 0

    def add(self, path: tuple[PathItem, ...], message: str, *, key: bool = False) -> None:
        self.issues.append(ModelIssue(self.source.locate(path, key=key), message))

    def at(self, location: Location, message: str) -> None:
        self.issues.append(ModelIssue(location, message))


def _describe(path: tuple[PathItem, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "the model"


# --------------------------------------------------------------------------- YAML -> Python


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG_PREFIX):] if tag.startswith(_TAG_PREFIX) else tag


def _scalar(loader: Any, node: yaml.ScalarNode, col: _Collector) -> Any:
    """Construct a tagged or implicitly typed scalar, or report where and why it is not a valid value."""
    tag = node.tag
    if tag not in _SCALAR_TAGS:
        col.at(col.source._loc(node), f"YAML value: the tag {_short_tag(tag)} is not supported on a scalar "
               "(the model holds strings, numbers, booleans, null and dates)")
        return None
    if tag == _INT_TAG and len(node.value) > MAX_INT_CHARS:
        col.at(col.source._loc(node), f"YAML value: integer literal of {len(node.value)} characters is too "
               f"large (at most {MAX_INT_CHARS}; model integers fit in 64 bits)")
        return None
    try:
        value = loader.construct_object(node, deep=True)
    except (ValueError, TypeError, LookupError, AttributeError, OverflowError, yaml.YAMLError):
        # PyYAML's constructors raise bare Python errors for a value its tag cannot hold (!!int x,
        # !!timestamp 2026-13-45, 0b_); the user needs the place, not PyYAML's internals.
        shown = node.value if len(node.value) <= 40 else node.value[:40] + "..."
        col.at(col.source._loc(node), f"YAML value: {shown!r} is not a valid {_short_tag(tag)} value")
        return None
    if type(value) is int and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        col.at(col.source._loc(node), "YAML value: integer out of range (model integers fit in 64 bits)")
        return None
    return value


class _TooLarge(Exception):
    """The document exceeds a structural limit; carries the issue that says where."""

    def __init__(self, issue: ModelIssue) -> None:
        super().__init__(issue.message)
        self.issue = issue


_ScalarNode, _MappingNode, _SequenceNode = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode


def _construct(loader: Any, node: yaml.Node, path: tuple[PathItem, ...], col: _Collector) -> Any:
    kind = type(node)
    if kind is _MappingNode:
        col.nodes += 2 * len(node.value)
        if col.nodes > MAX_NODES or len(path) >= MAX_DEPTH or node.tag != _MAP_TAG:
            _over_limit(cast(yaml.CollectionNode, node), path, col)
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            ktag = knode.tag
            if ktag is _PLAIN:
                ktag = _resolve_plain(loader, knode)
            if ktag == "tag:yaml.org,2002:merge":
                col.issues.append(
                    ModelIssue(col.source._loc(knode), "YAML merge keys ('<<') are not supported")
                )
                continue
            if type(knode) is not _ScalarNode:
                col.issues.append(ModelIssue(col.source._loc(knode), "a key must be a plain name"))
                continue
            if ktag != _STR_TAG:
                # keys are names (strings); a typed key is only checked so a bad tag on it is reported
                _scalar(loader, knode, col)
            k = knode.value
            if k in out:
                col.issues.append(
                    ModelIssue(col.source._loc(knode), f"duplicate key '{k}' in {_describe(path)}")
                )
                continue
            # scalars (most values) are handled here: no path for them
            vtag = vnode.tag
            if vtag is _PLAIN:
                out[k] = _plain_value(loader, vnode, col)
            elif vtag == _STR_TAG and type(vnode) is _ScalarNode:
                out[k] = vnode.value
            else:
                out[k] = _construct(loader, vnode, (*path, k), col)
        return out
    if kind is _SequenceNode:
        col.nodes += len(node.value)
        if col.nodes > MAX_NODES or len(path) >= MAX_DEPTH or node.tag != _SEQ_TAG:
            _over_limit(cast(yaml.CollectionNode, node), path, col)
        items: list[Any] = []
        for i, v in enumerate(node.value):
            vtag = v.tag
            if vtag is _PLAIN:
                items.append(_plain_value(loader, v, col))
            elif vtag == _STR_TAG and type(v) is _ScalarNode:
                items.append(v.value)
            else:
                items.append(_construct(loader, v, (*path, i), col))
        return items
    tag = node.tag
    if tag is _PLAIN:
        return _plain_value(loader, cast(yaml.ScalarNode, node), col)
    if tag == _STR_TAG:
        return node.value
    return _scalar(loader, cast(yaml.ScalarNode, node), col)  # mappings and sequences returned above


def _over_limit(node: yaml.CollectionNode, path: tuple[PathItem, ...], col: _Collector) -> None:
    """A collection over the node or depth limit (raises), or with a tag a model does not take (recorded).
    Called only when one of the cheap checks in ``_construct`` failed, to keep the common path short."""
    if col.nodes > MAX_NODES:
        raise _TooLarge(ModelIssue(col.source._loc(node), f"the model has more than {MAX_NODES:,} nodes"))
    if len(path) >= MAX_DEPTH:
        raise _TooLarge(ModelIssue(col.source._loc(node), f"values nested deeper than {MAX_DEPTH} levels"))
    if node.tag != (_MAP_TAG if isinstance(node, yaml.MappingNode) else _SEQ_TAG):
        col.at(col.source._loc(node), f"YAML value: the tag {_short_tag(node.tag)} is not supported here "
               "(a mapping or list takes no tag)")


def _check_aliases(root: yaml.Node, file: str) -> None:
    """Refuse recursive aliases and aliases that expand past ``MAX_NODES``, without expanding them.

    The composer shares one node for an anchor and all its aliases, so the expanded size is computed once
    per distinct collection; a bomb of ten nested tenfold aliases costs a hundred steps here, not a billion.
    Sizes count what ``_construct`` visits: keys are names (a collection as a key is refused there, unvisited).
    """
    mapping, sequence = yaml.MappingNode, yaml.SequenceNode
    size: dict[int, int] = {}  # finished collections: id -> nodes after expansion
    open_kids: dict[int, list[yaml.Node]] = {}  # collections on the current path -> their collection values
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack[-1]
        nid = id(node)
        if nid in size:
            stack.pop()
            continue
        kids = open_kids.get(nid)
        if kids is None:  # first visit: push the collections it holds
            values = [v for _, v in node.value] if type(node) is mapping else node.value
            kids = [c for c in values if type(c) is mapping or type(c) is sequence]
            open_kids[nid] = kids
            for c in kids:
                if id(c) in open_kids:  # an ancestor of itself
                    raise ModelError([ModelIssue(_mark(file, c), "YAML value: a recursive alias (a value that "
                                                 "contains itself)")])
                if id(c) not in size:
                    stack.append(c)
            continue
        stack.pop()  # second visit: every collection it holds is sized
        total = 1 + (2 * len(node.value) if type(node) is mapping else len(node.value))
        for c in kids:
            total += size[id(c)] - 1
        if total > MAX_NODES:
            raise ModelError([ModelIssue(_mark(file, node), f"YAML aliases expand this value to more than "
                                         f"{MAX_NODES:,} nodes (an alias bomb?)")])
        size[nid] = total
        del open_kids[nid]


def _mark(file: str, node: yaml.Node) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


# An alias starts a node: '*' after whitespace or a flow indicator, followed by its name. Text without one
# is a plain tree and skips the alias pass (a '*' in a comment or a string only costs that pass). Should an
# alias ever slip past this test, _construct's node count and depth limit still bound it.
_ALIAS = re.compile(r"(?:^|[\s\[{,:])\*[^\s\[\]{},]")


def _parse_yaml(text: str, file: str) -> tuple[Any, SourceMap, _Collector]:
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = exc.problem or str(exc)
            ctx = f" ({exc.context})" if exc.context else ""
            raise ModelError(
                [ModelIssue(Location(file, line, column), f"YAML syntax: {problem}{ctx}")]
            ) from None
        except yaml.YAMLError as exc:
            raise ModelError([ModelIssue(Location(file, 1, 1), f"YAML syntax: {exc}")]) from None
        source = SourceMap(file, root)
        col = _Collector(source)
        if root is None:
            raise ModelError([ModelIssue(Location(file, 1, 1), "the model file is empty")])
        # the substring test first: the regex alone would cost ~5% of loading a large model
        if isinstance(root, yaml.CollectionNode) and "*" in text and _ALIAS.search(text):
            _check_aliases(root, file)
        try:
            data = _construct(loader, root, (), col)
        except _TooLarge as exc:
            raise ModelError([exc.issue]) from None
        return data, source, col
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- typed conversion

_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _split_msgspec_error(err: str) -> tuple[str, tuple[PathItem, ...]]:
    m = _MSGSPEC_PATH.match(err)
    if m is None:  # the pattern matches any string; a change in it must not go unnoticed
        raise InvariantBroken(f"unexpected msgspec error text {err[:80]!r}")
    msg, raw = m.group("msg"), m.group("path") or ""
    path: list[PathItem] = []
    for name, idx in _PATH_TOKEN.findall(raw):
        if name:
            path.append(name)
        elif idx == "...":
            break  # msgspec does not name dict keys; the caller converts dicts key by key
        else:
            path.append(int(idx))
    return msg, tuple(path)


def _field_names(tp: Any) -> list[str]:
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return list(tp.__struct_encode_fields__)
    return []


def _resolve_struct(tp: Any, rel: tuple[PathItem, ...]) -> Any:
    """Walk struct field types along ``rel`` to find which struct an unknown key belongs to."""
    cur = tp
    for item in rel:
        if isinstance(item, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, msgspec.Struct)):
            return None
        info = msgspec.inspect.type_info(cur)
        nxt = None
        for f in info.fields:  # type: ignore[attr-defined]
            if f.encode_name == item:
                nxt = f.type
        if nxt is None:
            return None
        # unwrap Optional/containers to the struct inside
        cur = _inner_struct(nxt)
    return cur


def _inner_struct(t: Any) -> Any:
    mi = msgspec.inspect
    if isinstance(t, mi.StructType):
        return t.cls
    if isinstance(t, mi.UnionType):
        for sub in t.types:
            r = _inner_struct(sub)
            if r is not None:
                return r
    if isinstance(t, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
        return _inner_struct(t.item_type)
    return None


def _convert(
    value: Any, tp: Any, path: tuple[PathItem, ...], what: str, col: _Collector
) -> Any:
    try:
        return msgspec.convert(value, tp, strict=True)
    except msgspec.ValidationError as exc:
        msg, rel = _split_msgspec_error(str(exc))
        full = (*path, *rel)
        unknown = re.match(r"Object contains unknown field `(.+)`", msg)
        missing = re.match(r"Object missing required field `(.+)`", msg)
        where = f"{what}" + (f", {_describe(rel)}" if rel else "")
        if unknown:
            bad = unknown.group(1)
            allowed = _field_names(_resolve_struct(tp, rel))
            hint = close_matches(bad, allowed, n=1)
            sugg = f" (did you mean '{hint[0]}'?)" if hint else ""
            keys = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            col.add((*full, bad), f"{where}: unknown key '{bad}'{sugg}{keys}", key=True)
        elif missing:
            col.add(full, f"{where}: missing required key '{missing.group(1)}'")
        else:
            col.add(full, f"{where}: {_plain(msg)}")
        return None


def _plain(msg: str) -> str:
    msg = msg.replace("`", "'")
    m = re.match(r"Invalid enum value (.+)", msg)
    if m:
        return f"invalid value {m.group(1)}"
    return msg[0].lower() + msg[1:] if msg else msg


_SECTIONS: dict[str, Any] = {
    "septum": int,
    "device": s.Device,
    "interfaces": s.Interface,
    "partitions": s.Partition,
    "messages": dict[str, s.MessageField],
    "channels": s.Channel,
    "roles": s.Role,
    "actions": s.Action,
    "shared": s.Shared,
    "controls": s.Controls,
    "components": tuple[s.Component, ...],
    "waivers": s.Waiver,
}
_SINGULAR = {
    "interfaces": "interface",
    "partitions": "partition",
    "messages": "message",
    "roles": "role",
    "actions": "action",
    "shared": "shared state",
    "components": "components of",
}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _convert_named(
    data: Any, section: str, tp: Any, col: _Collector, each: Callable[[str, Any], Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if data is None:
        return out
    if not isinstance(data, dict):
        col.add((section,), f"'{section}' must be a mapping of names to definitions")
        return out
    for name, value in data.items():
        if not _NAME_RE.match(name) or len(name) > 64:
            col.add((section, name), f"'{name}' is not a valid name (letters, digits, _ and -)", key=True)
            continue
        if each is not None:
            conv = each(name, value)
        else:
            conv = _convert(value, tp, (section, name), f"{_SINGULAR[section]} '{name}'", col)
        if conv is not None:
            out[name] = conv
    return out


def _convert_list(data: Any, section: str, tp: Any, col: _Collector, what: str) -> list[Any]:
    if data is None:
        return []
    if not isinstance(data, list):
        col.add((section,), f"'{section}' must be a list")
        return []
    out = []
    for i, value in enumerate(data):
        label = what
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            label = f"{what} '{value['name']}'"
        else:
            label = f"{what} #{i + 1}"
        conv = _convert(value, tp, (section, i), label, col)
        if conv is not None:
            out.append(conv)
    return out


def _messages(data: Any, col: _Collector) -> dict[str, Any]:
    def one(name: str, fields: Any) -> Any:
        if not isinstance(fields, dict) or not fields:
            col.add(("messages", name), f"message '{name}' must map field names to field types")
            return None
        out = {}
        for fname, fval in fields.items():
            if not _NAME_RE.match(fname):
                col.add(("messages", name, fname), f"message '{name}': bad field name '{fname}'", key=True)
                continue
            conv = _convert(fval, s.MessageField, ("messages", name, fname),
                            f"message '{name}', field '{fname}'", col)
            if conv is not None:
                out[fname] = conv
        return out

    return _convert_named(data, "messages", None, col, each=one)


def _components(data: Any, col: _Collector) -> dict[str, Any]:
    def one(name: str, items: Any) -> Any:
        if not isinstance(items, list):
            col.add(("components", name), f"components of '{name}' must be a list")
            return None
        out = []
        for i, item in enumerate(items):
            conv = _convert(item, s.Component, ("components", name, i),
                            f"component #{i + 1} of '{name}'", col)
            if conv is not None:
                out.append(conv)
        return tuple(out)

    return _convert_named(data, "components", None, col, each=one)


def model_from_data(data: Any, source: SourceMap, col: _Collector | None = None) -> s.Model:
    col = col or _Collector(source)
    if not isinstance(data, dict):
        raise ModelError([ModelIssue(source.locate(()), "the model must be a mapping of sections")])
    for key in data:
        if key not in _SECTIONS:
            hint = close_matches(str(key), list(_SECTIONS), n=1)
            sugg = f" (did you mean '{hint[0]}'?)" if hint else ""
            col.add((key,), f"unknown top-level section '{key}'{sugg}", key=True)
    version = data.get("septum")
    if version is None:
        col.add((), "missing 'septum: 1' (the model format version)")
    elif version != s.FORMAT_VERSION or isinstance(version, bool):
        col.add(("septum",), f"unsupported model format version {version!r}; this Septum reads version 1")
    device = None
    if "device" not in data:
        col.add((), "missing required section 'device'")
    else:
        device = _convert(data["device"], s.Device, ("device",), "device", col)

    interfaces = _convert_named(data.get("interfaces"), "interfaces", s.Interface, col)
    partitions = _convert_named(data.get("partitions"), "partitions", s.Partition, col)
    messages = _messages(data.get("messages"), col)
    channels = _convert_list(data.get("channels"), "channels", s.Channel, col, "channel")
    roles = _convert_named(data.get("roles"), "roles", s.Role, col)
    actions = _convert_named(data.get("actions"), "actions", s.Action, col)
    shared = _convert_named(data.get("shared"), "shared", s.Shared, col)
    controls = None
    if data.get("controls") is not None:
        controls = _convert(data["controls"], s.Controls, ("controls",), "controls", col)
    components = _components(data.get("components"), col)
    waivers = _convert_list(data.get("waivers"), "waivers", s.Waiver, col, "waiver")

    found = data.get("channels")
    raw_channels: list[Any] = found if isinstance(found, list) else []
    index: dict[str, int] = {}
    for i, ch in enumerate(raw_channels):
        if isinstance(ch, dict) and isinstance(ch.get("name"), str):
            index.setdefault(ch["name"], i)
    source.set_channel_index(index)
    comp_index: dict[str, tuple[str, int]] = {}
    raw_components = data.get("components")
    if isinstance(raw_components, dict):
        for pname, items in raw_components.items():
            if isinstance(items, list):
                for i, item in enumerate(items):
                    if isinstance(item, dict) and isinstance(item.get("name"), str):
                        comp_index.setdefault(f"{pname}/{item['name']}", (pname, i))
    source.set_component_index(comp_index)

    if col.issues or device is None:
        raise ModelError(col.issues)
    model = s.Model(
        septum=1,
        device=device,
        interfaces=interfaces,
        partitions=partitions,
        messages=messages,
        channels=tuple(channels),
        roles=roles,
        actions=actions,
        shared=shared,
        controls=controls,
        components=components,
        waivers=tuple(waivers),
    )
    check_references(model, raw_channels, col.add)
    if col.issues:
        raise ModelError(col.issues)
    return model


def loads(text: str, file: str = "<model>") -> tuple[s.Model, SourceMap]:
    """Parse model text. Returns the model and its source map, or raises ``ModelError``."""
    # Building hundreds of thousands of nodes and elements triggers the cyclic GC again and again over a
    # growing heap, which makes loading a large model quadratic. Loading creates no garbage cycles.
    with cyclic_gc_paused():
        data, source, col = _parse_yaml(text, file)
        if col.issues:
            raise ModelError(col.issues)
        model = model_from_data(data, source, col)
        # positions are found again from the text when something must be located (most checks never do)
        source.freeze(text)
        return model, source


def _read_regular_file(p: Path) -> bytes:
    """The bytes of a regular file of at most ``MAX_MODEL_BYTES``, refusing anything else without blocking.

    A FIFO would block ``open`` for ever and a device (``/dev/zero``) would be read until memory runs out,
    so the file is opened non-blocking and checked with ``fstat`` on the opened descriptor (no race between
    the check and the read), and never more than the limit plus one byte is read.
    """
    def refuse(message: str) -> ModelError:
        return ModelError([ModelIssue(Location(str(p), 1, 1), message)])

    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise refuse(f"cannot read the model: {exc.strerror}") from None
    except ValueError:  # a NUL byte in the name
        raise refuse("cannot read the model: the file name holds a NUL byte") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise refuse(f"cannot read the model: it is {kind}; a model must be a regular file")
        too_big = refuse(f"the model is larger than the limit of {MAX_MODEL_BYTES // 2**20} MiB")
        if st.st_size > MAX_MODEL_BYTES:
            raise too_big
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(MAX_MODEL_BYTES + 1 - total, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_MODEL_BYTES:  # the file grew after fstat
                raise too_big
        return b"".join(chunks)
    except OSError as exc:
        raise refuse(f"cannot read the model: {exc.strerror}") from None
    finally:
        os.close(fd)


def load(path: str | Path) -> tuple[s.Model, SourceMap]:
    """Load a model file. Raises ``ModelError`` (never another exception) for any problem with it."""
    p = Path(path)
    raw = _read_regular_file(p)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError([ModelIssue(Location(str(p), 1, 1), f"the model is not UTF-8 text ({exc.reason})")]) from None
    return loads(text, str(p))


def load_model(path: str | Path) -> s.Model:
    return load(path)[0]


def iter_issue_lines(err: ModelError) -> Iterable[str]:
    return (str(i) for i in err.issues)
