"""The Simplex pattern: a complex controller checked by a simple safety monitor that alone drives the actuators.

A channel from a less critical controller into a safety partition is mediated by that partition when it is
the controller's declared monitor and guard, and the monitor really stands between the controller and the
actuators. That holds only if

- the monitor gates what it receives (``mitigation`` includes ``gating``), so commands are checked rather
  than forwarded;
- the controller owns no actuator, writes no shared device, and reaches no other actuator owner by a path
  that avoids the monitor;
- the monitor's reset/override inputs are not reachable from the controller (otherwise it silences its own
  watchdog; MED005).

ISO003 accepts the channel when all three hold; MED005 and MED006 report the ones that do not, with their
witness.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from septum.model import schema as s

from .context import Context, P
from .finding import PathStep
from .graph import Node

# channel purposes that carry no command: a monitor that only receives these needs no gating
PASSIVE_PURPOSES = frozenset({"heartbeat", "status", "alert", "audit"})


@dataclass(frozen=True)
class ActuatorBypass:
    """The controller drives an actuator without the monitor: by owning it, through shared state, or by a
    channel path to another partition that owns it."""

    actuator: str
    owner: str
    how: str  # "owns", "shared", "path"
    path: tuple[PathStep, ...] = ()


def is_monitor_of(model: s.Model, monitor: str, watched: str) -> bool:
    m = model.partitions[monitor]
    return m.criticality == "safety" and bool(m.mitigation) and watched in m.monitors


def commands_unchecked(ctx: Context, monitor: str, watched: str) -> list[s.Channel]:
    """Channels from ``watched`` that carry commands into a monitor that declares no ``gating``."""
    if "gating" in ctx.model.partitions[monitor].mitigation:
        return []
    return [ch for ch in ctx.channels_into.get(monitor, ())
            if ch.src == watched and ch.purpose not in PASSIVE_PURPOSES | {"reset"}]


def _actuators(model: s.Model, pname: str) -> list[str]:
    return [i for i in model.partitions[pname].owns if model.interfaces[i].kind == "actuator"]


def actuator_bypasses(ctx: Context, monitor: str, watched: str) -> Iterator[ActuatorBypass]:
    model = ctx.model
    for act in _actuators(model, watched):
        yield ActuatorBypass(act, watched, "owns")
    for sname, sh in model.shared.items():
        if sh.kind == "device" and watched in sh.writers:
            yield ActuatorBypass(sname, watched, "shared")
    g = ctx.graph
    # Only a search that could find something is run: if even with the monitor open the controller reaches
    # no other actuator owner, no path around the monitor does either.
    bits, bit = ctx.reaches_actuator_owner
    others = bits[g.part(watched)] & ~(bit.get(monitor, 0) | bit.get(watched, 0))
    if not others:
        return
    mon = g.part(monitor)
    targets = [g.part(p) for p, _ in ctx.actuator_owners if others & bit[p]]
    # a path may not pass through the monitor: what goes through it is what it gates
    parent = g.bfs([g.part(watched)], blocked=lambda n: n == mon, stop_at=targets)
    for pname, acts in ctx.actuator_owners:
        if pname in (monitor, watched):
            continue
        node: Node = g.part(pname)
        if node not in parent:
            continue
        for act in acts:
            yield ActuatorBypass(act, pname, "path", g.path_to(parent, node))


def reachable_resets(ctx: Context, monitor: str, watched: str) -> Iterator[tuple[s.Channel, tuple[PathStep, ...]]]:
    """The monitor's reset/override channels that ``watched`` can reach without passing the monitor.

    Paths through the auth service are mediated: the watched partition cannot forge a clinician.
    """
    g = ctx.graph
    auth = ctx.auth_nodes
    # a reset sent by an auth partition is mediated (unless the watched partition is that partition): such
    # channels are never reported, so when they are all there is no search to run
    candidates = [ch for ch in ctx.channels_into.get(monitor, ())
                  if ch.purpose in ("reset", "override") and (ch.src == watched or g.part(ch.src) not in auth)]
    if not candidates:
        return
    mon_node = g.part(monitor)
    parent = g.bfs([g.part(watched)], blocked=lambda n: n == mon_node or n in auth,
                   stop_at=[g.part(ch.src) for ch in candidates])
    for ch in candidates:
        src = g.part(ch.src)
        if src in parent:
            yield ch, (*g.path_to(parent, src), PathStep(P(monitor), ch.name))


def mediation_gaps(ctx: Context, monitor: str, watched: str) -> list[str]:
    """Why ``monitor`` does not mediate what ``watched`` sends it (empty: it does)."""
    gaps: list[str] = []
    if commands_unchecked(ctx, monitor, watched):
        gaps.append("it declares no gating (MED006)")
    if next(actuator_bypasses(ctx, monitor, watched), None) is not None:
        gaps.append(f"'{watched}' also drives an actuator without it (MED006)")
    if next(reachable_resets(ctx, monitor, watched), None) is not None:
        gaps.append(f"its reset/override is reachable from '{watched}' (MED005)")
    return gaps
