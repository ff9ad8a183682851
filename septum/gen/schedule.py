"""Build the Microkit domain schedule from the partitions' periods and budgets, and check it.

The schedule is a time-triggered table that the kernel replays forever. Its frame is the hyperperiod
(LCM of the periods), so every period window ``[k*P, (k+1)*P)`` lies inside one frame and the same table
serves every frame. The table comes from simulating preemptive earliest-deadline-first over one frame
on a grid whose unit is the GCD of every period and budget: with all parameters multiples of the unit,
EDF meets every deadline whenever utilisation is at most 1, and the result is deterministic (ties go to
the partition that comes first in the model). Adjacent units of one domain are merged into one entry.

A partition without a period reserves its budget once per frame (a deadline at the frame's end), so it
runs in whatever time the periodic partitions leave. Time nobody reserved goes to ``IDLE_DOMAIN``, a
domain with no protection domain in it: the kernel runs its idle thread there, so spare time is never
silently handed to a partition the model did not give it to. ``IDLE_DOMAIN`` is domain 0, the one the
Microkit monitor runs in, so no partition ever shares the monitor's domain; it counts against the kernel's
domain limit (``MAX_DOMAINS``, seL4's default ``KernelNumDomains``) like every partition's domain.

``shortfalls`` recomputes, from a finished table alone, what each partition receives in every window; the
generator runs it on the SDF it parsed back, so a bug here cannot ship a schedule that starves anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import gcd, lcm

from septum.errors import SeptumError

IDLE_DOMAIN = "idle"  # partition domains are all "dom_<name>", so this cannot clash with one
IDLE_DOMAIN_ID = 0  # the Microkit monitor's domain: partitions are numbered from 1
MAX_DOMAINS = 16  # seL4's default KernelNumDomains, which the default Microkit SDK is built with
MAX_FRAME_US = 10_000_000  # 10 s: a longer frame means periods that share no sane common multiple
MAX_UNITS = 10_000  # grid units per frame: bounds the table and the time to build and check it


@dataclass(frozen=True)
class Reservation:
    """``budget_us`` of CPU for ``domain`` in every ``window_us``; a window of None means once per frame."""

    partition: str
    domain: str
    budget_us: int
    window_us: int | None


@dataclass(frozen=True)
class Schedule:
    frame_us: int
    unit_us: int
    entries: list[tuple[str, int]]  # (domain, duration in microseconds), in order


class ScheduleError(SeptumError, ValueError):
    """The reservations cannot be honoured; ``partitions`` names the ones involved."""

    def __init__(self, partitions: Sequence[str], message: str) -> None:
        self.partitions = list(partitions)
        super().__init__(message)


def _ms(us: int) -> str:
    return f"{us // 1000} ms" if us % 1000 == 0 else f"{us} us"


def _describe(res: Reservation, frame_us: int) -> str:
    return f"'{res.partition}' {_ms(res.budget_us)} every {_ms(res.window_us or frame_us)}"


def frame_of(reservations: Sequence[Reservation]) -> int:
    """The hyperperiod; without any period, one pass over every partition's budget."""
    windows = [r.window_us for r in reservations if r.window_us is not None]
    return lcm(*windows) if windows else sum(r.budget_us for r in reservations)


def domains_needed(reservations: Sequence[Reservation]) -> int:
    """One domain per partition, and domain 0 for the Microkit monitor and the idle time."""
    return len({r.domain for r in reservations}) + 1


def check_domain_count(reservations: Sequence[Reservation], max_domains: int = MAX_DOMAINS) -> None:
    needed = domains_needed(reservations)
    if needed > max_domains:
        raise ScheduleError([r.partition for r in reservations],
                            f"{needed - 1} partitions need {needed - 1} scheduling domains plus domain "
                            f"{IDLE_DOMAIN_ID} for the Microkit monitor, {needed} in all; the kernel is built for "
                            f"{max_domains} (KernelNumDomains)")


def build(reservations: Sequence[Reservation], max_domains: int = MAX_DOMAINS) -> Schedule:
    """The EDF table over one frame, or ScheduleError naming the partitions that make it impossible."""
    if not reservations:
        raise ScheduleError([], "no partition to schedule")
    check_domain_count(reservations, max_domains)
    for r in reservations:
        if r.budget_us <= 0 or (r.window_us is not None and r.window_us <= 0):
            raise ScheduleError([r.partition], f"partition '{r.partition}' has a zero budget or period")
        if r.window_us is not None and r.budget_us > r.window_us:
            raise ScheduleError([r.partition], f"partition '{r.partition}' needs {_ms(r.budget_us)} in every "
                                f"{_ms(r.window_us)}: its budget is longer than its period")
    frame = frame_of(reservations)
    if frame > MAX_FRAME_US:
        named = [r for r in reservations if r.window_us is not None] or list(reservations)
        raise ScheduleError([r.partition for r in named],
                            f"the domain schedule's frame would be {_ms(frame)} (from "
                            + ", ".join(_describe(r, frame) for r in named)
                            + f"), longer than the {_ms(MAX_FRAME_US)} it may span; choose periods whose least "
                            "common multiple is shorter")
    # Exact arithmetic: a float sum could round 1.0000001 down and accept an impossible set.
    load = sum(Fraction(r.budget_us, r.window_us or frame) for r in reservations)
    if load > 1:
        raise ScheduleError([r.partition for r in reservations],
                            f"the partitions need {float(load):.1%} of the CPU, more than all of it: "
                            + ", ".join(_describe(r, frame) for r in reservations))
    unit = gcd(frame, *(r.budget_us for r in reservations), *(r.window_us or frame for r in reservations))
    if frame // unit > MAX_UNITS:
        raise ScheduleError([r.partition for r in reservations],
                            f"a {_ms(frame)} frame in steps of {unit} us needs {frame // unit} slots, more than "
                            f"{MAX_UNITS}; use budgets and periods with a larger common divisor: "
                            + ", ".join(_describe(r, frame) for r in reservations))

    remaining = [0] * len(reservations)
    deadline = [0] * len(reservations)
    units: list[str] = []
    for step in range(frame // unit):
        now = step * unit
        for i, r in enumerate(reservations):
            window = r.window_us or frame
            if now % window == 0:
                if remaining[i]:  # cannot happen with load <= 1; kept so a bug fails loudly
                    raise ScheduleError([r.partition], f"'{r.partition}' misses its deadline at {now} us")
                remaining[i], deadline[i] = r.budget_us // unit, now + window
        pending = [i for i, left in enumerate(remaining) if left]
        if pending:
            chosen = min(pending, key=lambda i: (deadline[i], i))
            remaining[chosen] -= 1
            units.append(reservations[chosen].domain)
        else:
            units.append(IDLE_DOMAIN)
    late = [reservations[i].partition for i, left in enumerate(remaining) if left]
    if late:
        raise ScheduleError(late, f"{', '.join(late)} miss their deadline at the end of the frame")

    entries: list[tuple[str, int]] = []
    for dom in units:
        if entries and entries[-1][0] == dom:
            entries[-1] = (dom, entries[-1][1] + unit)
        else:
            entries.append((dom, unit))
    return Schedule(frame, unit, entries)


def shortfalls(entries: Sequence[tuple[str, int]], reservations: Sequence[Reservation]) -> list[str]:
    """Every window in which a reservation gets less than its budget, read from the table alone."""
    frame = sum(us for _, us in entries)
    problems: list[str] = []
    spans: dict[str, list[tuple[int, int]]] = {}
    start = 0
    for dom, us in entries:
        spans.setdefault(dom, []).append((start, start + us))
        start += us
    for r in reservations:
        window = r.window_us or frame
        if frame % window:
            problems.append(f"the frame ({frame} us) is not a multiple of the period of '{r.partition}' "
                            f"({window} us)")
            continue
        for lo in range(0, frame, window):
            hi = lo + window
            got = sum(max(0, min(hi, b) - max(lo, a)) for a, b in spans.get(r.domain, []))
            if got < r.budget_us:
                problems.append(f"'{r.partition}' gets {got} us in [{lo}, {hi}) us, less than its budget of "
                                f"{r.budget_us} us")
    return problems
