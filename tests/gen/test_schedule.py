"""The domain schedule honours every partition's period: checked from the generated SDF, window by window."""

from __future__ import annotations

from itertools import pairwise
from math import lcm
from pathlib import Path

import pytest
from click.testing import CliRunner

from septum.cli.gen import gen
from septum.gen import layout, microkit
from septum.gen.layout import MappingError, plan_system
from septum.gen.microkit import SDF_NAME, GenerationError, generate
from septum.gen.roundtrip import compare
from septum.gen.schedule import MAX_UNITS, Reservation, Schedule, ScheduleError, build, shortfalls
from septum.gen.sdf_validate import errors, validate_text
from septum.model import Model, load, loads

from .conftest import example_models

Table = list[tuple[str, int]]


def _model(*resources: str) -> Model:
    parts = "\n".join(f"  p{i}: {{resources: {{priority: 10{', ' + r if r else ''}}}}}"
                      for i, r in enumerate(resources))
    text = (f"septum: 1\ndevice: {{name: sched}}\npartitions:\n{parts}\nmessages:\n  Ping:\n    seq: {{type: int}}\n"
            "channels: []\n")
    return loads(text, "sched.yaml")[0]


def _table(model: Model, sdf: str) -> tuple[Table, dict[str, str]]:
    """The schedule as (domain, us) read back from the SDF, and each partition's domain."""
    system, diags = validate_text(sdf, SDF_NAME)
    assert system is not None and errors(diags) == [], diags
    assert system.domains is not None
    assert all(e.unit == "us" for e in system.domains.schedule)
    return [(e.domain, e.duration) for e in system.domains.schedule], {pd.name: pd.domain or "" for pd in system.pds}


def _received(table: Table, domain: str, lo: int, hi: int) -> int:
    """Time ``domain`` runs in [lo, hi) while the kernel replays the table back to back, forever."""
    frame = sum(us for _, us in table)
    total, start = 0, (lo // frame) * frame
    while start < hi:
        for dom, us in table:
            if dom == domain:
                total += max(0, min(hi, start + us) - max(lo, start))
            start += us
    return total


def _violations(model: Model, table: Table, domains: dict[str, str]) -> list[str]:
    """Written against the model, not the generator's plan: every window [k*P, (k+1)*P) gets B.

    The windows run over the LCM of frame and period, so a table whose frame is not a multiple of a period
    is judged on what the replayed table really gives. A partition without a period is owed its budget (or
    1 ms) once per frame.
    """
    frame = sum(us for _, us in table)
    out = []
    for name, part in model.partitions.items():
        r = part.resources
        if r.period_ms is None:
            period, budget = frame, (r.budget_ms or 1) * 1000
        else:
            period, budget = r.period_ms * 1000, (r.budget_ms or r.period_ms) * 1000
        for k in range(lcm(frame, period) // period):
            got = _received(table, domains[name], k * period, (k + 1) * period)
            if got < budget:
                out.append(f"{name}: {got} us in window {k}")
    return out


def _scheduled_models() -> list[Model]:
    shipped = [load(p)[0] for p in example_models()]
    synthetic = [
        _model("period_ms: 3, budget_ms: 1", "period_ms: 7, budget_ms: 2", "period_ms: 5, budget_ms: 1"),
        _model("period_ms: 4, budget_ms: 2", "period_ms: 6, budget_ms: 3"),  # utilisation exactly 1
        _model("period_ms: 10, budget_ms: 3", "budget_ms: 4", ""),  # budget-only and default partitions
        _model("budget_ms: 2", "budget_ms: 3"),  # no period at all: one pass over the budgets
        _model("period_ms: 20"),  # only a period: the whole period
    ]
    return [m for m in shipped if any(p.resources.period_ms or p.resources.budget_ms
                                      for p in m.partitions.values())] + synthetic


@pytest.mark.parametrize("model", _scheduled_models(), ids=lambda m: "-".join(
    f"{p.resources.budget_ms}/{p.resources.period_ms}" for p in m.partitions.values()))
def test_every_partition_gets_its_budget_in_every_window(model: Model) -> None:
    sdf = generate(model).files[SDF_NAME]
    system, _ = validate_text(sdf, SDF_NAME)
    assert system is not None and compare(model, system) == []
    table, domains = _table(model, sdf)
    assert _violations(model, table, domains) == []
    periods = [p.resources.period_ms * 1000 for p in model.partitions.values() if p.resources.period_ms]
    if periods:
        assert sum(us for _, us in table) == lcm(*periods)
    # merged: no two consecutive entries of one domain
    assert all(a[0] != b[0] for a, b in pairwise(table))


def test_pump_safety_monitor_runs_2_ms_in_every_10_ms(pump) -> None:  # type: ignore[no-untyped-def]
    model, source = pump
    generated = generate(model, source)
    table, domains = _table(model, generated.files[SDF_NAME])
    assert sum(us for _, us in table) == 100_000  # LCM of 10, 50 and 100 ms
    monitor = domains["safety_monitor"]
    assert [_received(table, monitor, k * 10_000, (k + 1) * 10_000) for k in range(10)] == [2000] * 10
    assert generated.notes == []  # the old "runs once per frame, not once per period" note is gone


def test_the_window_check_catches_a_frame_that_ignores_periods(pump) -> None:  # type: ignore[no-untyped-def]
    # The old generator's table (one slot per partition, a 37 ms frame) must fail the check above.
    model, _ = pump
    old = [(f"dom_{n}", p.resources.budget_ms * 1000) for n, p in model.partitions.items()]
    found = _violations(model, old, {n: f"dom_{n}" for n in model.partitions})
    assert found and all(v.startswith("safety_monitor") for v in found)


@pytest.mark.parametrize(("resources", "needle"), [
    (("period_ms: 10, budget_ms: 6", "period_ms: 15, budget_ms: 7"), "106.7% of the CPU"),
    (("period_ms: 10, budget_ms: 2", "period_ms: 20"), "120.0% of the CPU"),  # a period alone claims all of it
    (("period_ms: 9973, budget_ms: 1", "period_ms: 9967, budget_ms: 1"), "longer than the 10000 ms"),
])
def test_unschedulable_set_is_refused_naming_the_partitions(resources: tuple[str, ...], needle: str) -> None:
    model = _model(*resources)
    with pytest.raises(MappingError) as exc:
        plan_system(model)
    message = str(exc.value)
    assert "no domain schedule can honour the partitions' periods" in message and needle in message
    assert "'p0'" in message and "'p1'" in message


def test_unschedulable_model_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    text = ("septum: 1\ndevice: {name: sched}\npartitions:\n"
            "  fast: {resources: {priority: 10, period_ms: 10, budget_ms: 6}}\n"
            "  slow: {resources: {priority: 10, period_ms: 15, budget_ms: 7}}\n"
            "messages:\n  Ping:\n    seq: {type: int}\nchannels: []\n")
    path = tmp_path / "over.yaml"
    path.write_text(text)
    res = CliRunner().invoke(gen, ["microkit", str(path), "-o", str(tmp_path / "out"), "--force"])
    assert res.exit_code == 1
    assert "'fast' 6 ms every 10 ms" in res.output and "'slow' 7 ms every 15 ms" in res.output
    assert f"{path}:4:" in res.output  # points at the partitions
    assert not (tmp_path / "out").exists()


def test_too_many_slots_is_refused() -> None:
    with pytest.raises(ScheduleError, match=f"more than {MAX_UNITS}") as exc:
        build([Reservation("a", "dom_a", 1, 1_000_000), Reservation("b", "dom_b", 2, 10)])
    assert exc.value.partitions == ["a", "b"]


def test_shortfalls_reports_the_starved_window() -> None:
    monitor = Reservation("m", "dom_m", 2000, 5000)
    assert shortfalls([("dom_m", 2000), ("dom_x", 3000), ("dom_m", 2000), ("dom_x", 3000)], [monitor]) == []
    assert shortfalls([("dom_m", 4000), ("dom_x", 6000)], [monitor]) == [
        "'m' gets 0 us in [5000, 10000) us, less than its budget of 2000 us"]


def test_generator_refuses_to_emit_a_table_that_starves_a_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a scheduling bug: the generator's own check of the parsed SDF must stop it.
    def broken(reservations: list[Reservation]) -> Schedule:
        return Schedule(20_000, 1000, [(r.domain, 10_000) for r in reservations])

    monkeypatch.setattr(layout, "build", broken)
    with pytest.raises(GenerationError, match="'p0' gets 0 us in \\[10000, 20000\\)"):
        microkit.generate(_model("period_ms: 10, budget_ms: 1", "period_ms: 20, budget_ms: 1"))
