"""PRIV — least privilege and unintended functionality."""

from __future__ import annotations

from collections.abc import Iterator

from septum.model import schema as s
from septum.model.schema import CRITICALITY_RANK

from ..context import C, Context, I, P
from ..finding import ElementRef, Finding
from ..registry import rule

# Interfaces that only put something out (or are driven by their owner) are "used" as soon as the owner
# takes part in any channel; input interfaces must be named by a role, an action or a function.
_OUTPUT_KINDS = frozenset({"display", "actuator", "sensor"})


@rule(
    "PRIV001", "Partition owns an interface that nothing uses", "warning",
    rationale="""An interface no role, action or function uses is unintended functionality: attack surface
    with no purpose.""",
    fix="""Remove the interface from `owns` (and from the device), or name the role, action or function
    that uses it.""",
    cwe=(1125,), precision="medium",
)
def priv001(ctx: Context) -> Iterator[Finding]:
    model = ctx.model
    named: set[str] = set()
    for role in model.roles.values():
        named.update(role.via)
    for action in model.actions.values():
        named.update(action.via)
    for part in model.partitions.values():
        for fn in part.functions.values():
            named.update(u[len("interface:"):] for u in fn.uses if u.startswith("interface:"))
    in_channels = {ch.src for ch in model.channels} | {ch.dst for ch in model.channels}
    for pname, part in model.partitions.items():
        for iname in part.owns:
            iface = model.interfaces[iname]
            if iname in named:
                continue
            if iface.kind in _OUTPUT_KINDS and pname in in_channels:
                continue
            if iface.kind in s.NETWORK_KINDS and iface.protocol and pname in in_channels:
                # a network link that carries the partition's channels' traffic outward
                continue
            yield ctx.finding("PRIV001", f"partition '{pname}' owns {iface.kind} interface '{iname}', which "
                              "no role, action or function uses", P(pname), I(iname))


@rule(
    "PRIV002", "Safety partition with network access", "error",
    rationale="""Networking must be wholly separate from the safety monitors. A safety partition that can
    open sockets or owns a network interface is one exploit away from the network.""",
    fix="""Move the network interface and `allow.net` to a separate, non-safety partition and connect it
    through a guard.""",
    cwe=(250, 653), precision="very-high",
)
def priv002(ctx: Context) -> Iterator[Finding]:
    for pname, part in ctx.model.partitions.items():
        if part.criticality != "safety":
            continue
        if part.allow.net:
            yield ctx.finding("PRIV002", f"safety partition '{pname}' has allow.net", P(pname))
        for iname in part.owns:
            if ctx.model.interfaces[iname].kind in s.NETWORK_KINDS:
                yield ctx.finding("PRIV002", f"safety partition '{pname}' owns network interface '{iname}'",
                                  P(pname), I(iname))


@rule(
    "PRIV003", "A grant is broader than its use", "warning",
    rationale="""Untyped or unbounded data crossing a partition boundary is the raw material of parser
    exploits; a receiver can only validate completely what is completely bounded.""",
    fix="""Give numeric fields both `min` and `max`, replace `Raw` channels with typed messages, and
    remove channels in a pair whose one direction carries nothing but acknowledgements.""",
    cwe=(250,), precision="medium",
)
def priv003(ctx: Context) -> Iterator[Finding]:
    model = ctx.model
    used = {ch.message for ch in model.channels}
    for mname, fields in model.messages.items():
        if mname not in used:
            continue
        for fname, f in fields.items():
            if f.type in ("int", "float") and (f.min is None or f.max is None):
                missing = " and ".join(k for k in ("min", "max") if getattr(f, k) is None)
                yield ctx.finding("PRIV003", f"message '{mname}' field '{fname}' ({f.type}) has no {missing}",
                                  ElementRef("message", mname))
    for ch in model.channels:
        if ch.message == "Raw" and not ch.debug:
            yield ctx.finding("PRIV003", f"channel '{ch.name}' carries untyped Raw bytes; the receiver cannot "
                              "validate them", C(ch.name))


@rule(
    "PRIV004", "Declared capability used by no declared function", "warning",
    rationale="""Every allowance (network, a file path, a system-call group) is privilege an attacker
    inherits on compromise. An allowance no function needs should not exist.""",
    fix="""Remove the allowance, or declare the function that uses it in `functions:` with `uses:`.""",
    cwe=(250,), precision="medium",
)
def priv004(ctx: Context) -> Iterator[Finding]:
    model = ctx.model
    for pname, part in model.partitions.items():
        uses = {u for fn in part.functions.values() for u in fn.uses}
        caps: list[str] = []
        if part.allow.net and not any(model.interfaces[i].kind in s.NETWORK_KINDS for i in part.owns):
            caps.append("net")
        caps += [f"file:{p}" for p in part.allow.files]
        caps += [f"syscall:{c}" for c in part.allow.syscalls]
        for cap in caps:
            if cap not in uses:
                yield ctx.finding("PRIV004", f"partition '{pname}' is allowed '{cap}' but no declared function "
                                  "uses it", P(pname))


@rule(
    "PRIV005", "Channel into a more critical partition without a rate limit", "warning",
    rationale="""A less trusted sender that can send without limit can starve a more critical receiver.
    With `rate:` the runtime drops (and audits) what exceeds it.""",
    fix="""Give the channel a `rate:` such as `10/s`.""",
    cwe=(770,), precision="high",
)
def priv005(ctx: Context) -> Iterator[Finding]:
    parts = ctx.model.partitions
    for ch in ctx.model.channels:
        if ch.rate is None and (
            CRITICALITY_RANK[parts[ch.src].criticality] < CRITICALITY_RANK[parts[ch.dst].criticality]
        ):
            yield ctx.finding("PRIV005", f"channel '{ch.name}' from '{ch.src}' into more critical '{ch.dst}' "
                              "has no rate limit", C(ch.name))
