"""LIVE — liveness: a partition whose silence matters gives a heartbeat, often enough for its monitor."""

from __future__ import annotations

from collections.abc import Iterator

from septum.model import schema as s

from ..context import Context, P
from ..finding import Finding
from ..registry import rule

# The supervisor declares a heartbeat missed after this many heartbeat periods of silence (supervisor.py,
# and `septum run --explain`: "missed after 2 periods"); a hung partition is noticed that late at best.
MISSED_PERIODS = 2
# Without a declared tolerance a monitor accepts its controller silent for this many of the controller's own
# periods: the last command it acted on is that many control periods stale.
DEFAULT_TOLERATED_PERIODS = 4
TOLERANCE_KEY = "max_silence_ms"


def _monitors_of(model: s.Model) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for mname, mon in model.partitions.items():
        for watched in mon.monitors:
            out.setdefault(watched, []).append(mname)
    return out


@rule(
    "LIVE001", "A monitored or safety partition gives no heartbeat", "error",
    rationale="""A partition that hangs without exiting is only noticed if it has to prove it is alive.
    Without `heartbeat_ms` the supervisor watches only for process exit: a hung controller keeps its last
    command in force and its monitor, or the safety case, never learns that it stopped. An error for a
    partition some monitor watches; a warning for a safety partition nobody in the model monitors.""",
    fix="""Declare `heartbeat_ms` on the partition (the runtime then kills and restarts or fails it safe
    after two missed periods), no longer than its monitor tolerates (LIVE002).""",
    cwe=(754,), precision="high",
)
def live001(ctx: Context) -> Iterator[Finding]:
    monitors = _monitors_of(ctx.model)
    for pname, part in ctx.model.partitions.items():
        if part.heartbeat_ms is not None:
            continue
        watchers = monitors.get(pname, [])
        if watchers:
            who = ", ".join(f"'{m}'" for m in watchers)
            yield ctx.finding(
                "LIVE001", f"partition '{pname}' is monitored by {who} but declares no heartbeat_ms: if it hangs, "
                "only process exit is supervised and nothing notices", P(pname), *map(P, watchers))
        elif part.criticality == "safety":
            # a warning, not an error: no monitor in the model depends on noticing this hang, but the
            # safety case does
            yield ctx.finding(
                "LIVE001", f"safety partition '{pname}' declares no heartbeat_ms: if it hangs, only process exit "
                "is supervised and nothing notices", P(pname), severity="warning")


def tolerance_ms(model: s.Model, monitor: str, watched: str) -> tuple[int | None, str]:
    """How long ``monitor`` tolerates ``watched`` being silent, and where that number comes from.

    The monitor's ``config`` may say it (``max_silence_ms.<watched>`` or ``max_silence_ms``: the same value
    its code reads); otherwise ``DEFAULT_TOLERATED_PERIODS`` of the watched partition's period, if it has one.
    """
    cfg = model.partitions[monitor].config
    for key in (f"{TOLERANCE_KEY}.{watched}", TOLERANCE_KEY):
        if key in cfg:
            v = cfg[key]
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                return None, f"config {key} of '{monitor}' is {v!r}, not a positive number of milliseconds"
            return v, f"'{monitor}' declares {key}: {v}"
    period = model.partitions[watched].resources.period_ms
    if period is None:
        return None, ""
    return DEFAULT_TOLERATED_PERIODS * period, (
        f"by default {DEFAULT_TOLERATED_PERIODS} of its {period} ms periods")


@rule(
    "LIVE002", "A heartbeat is slower than its monitor tolerates", "error",
    rationale="""The supervisor notices a hung partition two heartbeat periods after its last beat. If that
    is longer than its monitor tolerates the partition being silent, a hang is detected only after the
    hazard window: the monitor acts on a command that is already too old.""",
    fix=f"""Shorten the monitored partition's `heartbeat_ms` so that {MISSED_PERIODS} x heartbeat_ms is within
    the monitor's tolerance: `config: {{{TOLERANCE_KEY}: N}}` on the monitor (or
    `{TOLERANCE_KEY}.<partition>` for one of several), by default {DEFAULT_TOLERATED_PERIODS} of the monitored
    partition's periods.""",
    cwe=(754,), precision="high",
)
def live002(ctx: Context) -> Iterator[Finding]:
    model = ctx.model
    for mname, mon in model.partitions.items():
        for watched in mon.monitors:
            hb = model.partitions[watched].heartbeat_ms
            limit, why = tolerance_ms(model, mname, watched)
            if limit is None:
                if why:
                    yield ctx.finding("LIVE002", f"monitor '{mname}': {why}", P(mname), P(watched))
                continue
            if hb is None:
                continue  # LIVE001 says so
            detect = MISSED_PERIODS * hb
            if detect > limit:
                yield ctx.finding(
                    "LIVE002",
                    f"'{watched}' beats every {hb} ms, so a hang is noticed after {detect} ms, but its monitor "
                    f"'{mname}' tolerates {limit} ms of silence ({why})", P(watched), P(mname))
