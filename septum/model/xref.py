"""Cross-reference checks: every name a model element mentions must exist, and be meaningful there.

These are load errors, not analysis findings: a model with a dangling reference cannot be analysed
honestly (a channel to an unknown partition would otherwise just vanish from the graph).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from . import schema as s
from .source import PathItem


def close_matches(word: str, candidates: list[str], n: int) -> list[str]:
    """``difflib.get_close_matches``, imported only for a mistake's hint (it cost every load that had none)."""
    import difflib

    return difflib.get_close_matches(word, candidates, n=n)


Add = Callable[..., None]


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    hint = close_matches(name, list(known), n=1)
    sugg = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"unknown {kind} '{name}'{sugg}"


def check_references(model: s.Model, raw_channels: list[Any], add: Add) -> None:
    parts, ifaces, roles = model.partitions, model.interfaces, model.roles
    messages = set(model.messages) | set(s.BUILTIN_MESSAGES)

    # channels ---------------------------------------------------------------
    seen: dict[str, int] = {}
    at: tuple[PathItem, ...]
    for i, ch in enumerate(model.channels):
        # the common case (every name known, no duplicate) in one test: tens of thousands of channels
        if ch.name not in seen and ch.src in parts and ch.dst in parts and ch.src != ch.dst \
                and ch.message in messages:
            seen[ch.name] = i
            continue
        at = ("channels", i)
        if ch.name in seen:
            add((*at, "name"), f"duplicate channel name '{ch.name}' (first defined as channel #{seen[ch.name] + 1})")
        else:
            seen[ch.name] = i
        for end, key in ((ch.src, "from"), (ch.dst, "to")):
            if end not in parts:
                add((*at, key), f"channel '{ch.name}': {key}: " + _unknown("partition", end, parts))
        if ch.src == ch.dst:
            add((*at, "to"), f"channel '{ch.name}' connects partition '{ch.src}' to itself")
        if ch.message not in messages:
            add((*at, "message"), f"channel '{ch.name}': " + _unknown("message type", ch.message, messages))

    # partitions -------------------------------------------------------------
    owner: dict[str, str] = {}
    services: dict[str, str] = {}
    for pname, p in parts.items():
        at = ("partitions", pname)
        for j, iface in enumerate(p.owns):
            if iface not in ifaces:
                add((*at, "owns", j), f"partition '{pname}' owns " + _unknown("interface", iface, ifaces))
            elif iface in owner:
                add((*at, "owns", j),
                    f"interface '{iface}' is owned twice: by '{owner[iface]}' and by '{pname}'")
            else:
                owner[iface] = pname
        for j, mon in enumerate(p.monitors):
            if mon not in parts:
                add((*at, "monitors", j), f"partition '{pname}' monitors " + _unknown("partition", mon, parts))
            elif mon == pname:
                add((*at, "monitors", j), f"partition '{pname}' cannot monitor itself")
        for j, prot in enumerate(p.protects):
            if prot not in parts:
                add((*at, "protects", j), f"partition '{pname}' protects " + _unknown("partition", prot, parts))
            elif not p.mitigation:
                add((*at, "protects", j), f"partition '{pname}' protects '{prot}' but declares no mitigation")
        if p.service:
            if p.service in services:
                add((*at, "service"),
                    f"service '{p.service}' is provided twice: by '{services[p.service]}' and by '{pname}'")
            else:
                services[p.service] = pname
        if p.service == "health":
            # refused here rather than at run time: a model the runtime cannot run must not pass `check`
            add((*at, "service"),
                f"partition '{pname}': service 'health' is not a partition Septum can run; liveness is the "
                "supervisor's heartbeat supervision (heartbeat_ms) and the partition-side liveness probes "
                "(septum.runtime.liveness); remove 'service: health'")
        if p.service and p.runs:
            add((*at, "runs"), f"partition '{pname}' is the Septum '{p.service}' service; it cannot also set 'runs'")
        dup = [n for n, c in Counter(p.owns).items() if c > 1] if len(p.owns) > 1 else []
        for n in dup:
            add((*at, "owns"), f"partition '{pname}' lists interface '{n}' twice")
        for fname, fn in p.functions.items():
            for j, use in enumerate(fn.uses):
                if not _capability_declared(p, use):
                    add((*at, "functions", fname, "uses", j),
                        f"function '{fname}' of '{pname}' uses '{use}', which the partition does not allow")

    # messages ---------------------------------------------------------------
    for mname, fields in model.messages.items():
        if mname in s.BUILTIN_MESSAGES:
            add(("messages", mname), f"message name '{mname}' is built in and cannot be redefined", key=True)
        for fname, f in fields.items():
            at = ("messages", mname, fname)
            label = f"message '{mname}', field '{fname}'"
            if f.type in ("str", "bytes") and f.max_len is None:
                add(at, f"{label}: unbounded {f.type} (give max_len)")
            if f.type == "list":
                if f.max_items is None:
                    add(at, f"{label}: unbounded list (give max_items)")
                if f.items is None:
                    add(at, f"{label}: a list needs 'items' (the element type)")
                elif f.items in ("str", "bytes") and f.max_len is None:
                    add(at, f"{label}: unbounded {f.items} items (give max_len)")
                elif f.items in ("list", "enum"):
                    add(at, f"{label}: list items must be str, bytes, int, float or bool")
            if f.type == "enum" and not f.values:
                add(at, f"{label}: an enum needs 'values'")
            if f.values and f.type not in ("enum",):
                add(at, f"{label}: 'values' only applies to enum fields")
            if f.min is not None and f.max is not None and f.min > f.max:
                add(at, f"{label}: min ({f.min}) is greater than max ({f.max})")
            if (f.min is not None or f.max is not None) and f.type not in ("int", "float"):
                add(at, f"{label}: min/max only apply to int and float fields")

    # roles and actions ------------------------------------------------------
    for rname, r in roles.items():
        for j, v in enumerate(r.via):
            if v not in ifaces:
                add(("roles", rname, "via", j), f"role '{rname}' via " + _unknown("interface", v, ifaces))
    for aname, a in model.actions.items():
        at = ("actions", aname)
        if a.handled_by not in parts:
            add((*at, "handled_by"), f"action '{aname}' is handled by " + _unknown("partition", a.handled_by, parts))
        for j, allowed in enumerate(a.allowed):
            if allowed not in roles:
                add((*at, "allowed", j), f"action '{aname}' allows " + _unknown("role", allowed, roles))
        for j, v in enumerate(a.via):
            if v not in ifaces:
                add((*at, "via", j), f"action '{aname}' via " + _unknown("interface", v, ifaces))
        if a.requires_confirmation_by and a.requires_confirmation_by not in roles:
            add((*at, "requires_confirmation_by"),
                f"action '{aname}' requires confirmation by " + _unknown("role", a.requires_confirmation_by, roles))
        if not a.allowed and not a.break_glass:
            add((*at,), f"action '{aname}' allows no role and is not break-glass: nobody could perform it")

    # shared state -----------------------------------------------------------
    for sname, sh in model.shared.items():
        for key in ("writers", "readers"):
            for j, pname in enumerate(getattr(sh, key)):
                if pname not in parts:
                    add(("shared", sname, key, j), f"shared '{sname}' {key}: " + _unknown("partition", pname, parts))
        if sh.channel is not None and sh.channel not in seen:
            add(("shared", sname, "channel"), f"shared '{sname}': " + _unknown("channel", sh.channel, seen))

    # controls, components, waivers ----------------------------------------
    elements = element_names(model)
    if model.controls is not None:
        for cid, d in model.controls.decisions.items():
            for j, el in enumerate(d.by):
                if el not in elements:
                    add(("controls", "decisions", cid, "by", j),
                        f"control {cid} is implemented by " + _unknown("model element", el, elements))
    for pname in model.components:
        if pname not in parts:
            add(("components", pname), "components for " + _unknown("partition", pname, parts), key=True)
    for i, w in enumerate(model.waivers):
        if w.element not in elements:
            add(("waivers", i, "element"), f"waiver for {w.rule}: " + _unknown("model element", w.element, elements))


def _capability_declared(p: s.Partition, use: str) -> bool:
    if use == "net":
        return p.allow.net
    if use.startswith("file:"):
        return use[5:] in p.allow.files
    if use.startswith("syscall:"):
        return use[8:] in p.allow.syscalls
    if use.startswith("interface:"):
        return use[10:] in p.owns
    return False


def element_names(model: s.Model) -> set[str]:
    """Every name a waiver or control decision may refer to."""
    names: set[str] = set()
    names.update(model.interfaces, model.partitions, model.messages, model.roles, model.actions, model.shared)
    names.update(ch.name for ch in model.channels)
    names.update(p.service for p in model.partitions.values() if p.service)
    return names
