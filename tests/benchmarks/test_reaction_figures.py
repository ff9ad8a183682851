"""The safety reaction benchmark's percentile, verdict and monitor period (no device needed)."""

from __future__ import annotations

import math

import msgspec
import pytest
import safety_reaction as sr

from septum.model import load


def test_p99_needs_enough_samples() -> None:
    # 30 trials: a "p99" would only be the maximum, so there is none
    assert sr.percentile([float(i) for i in range(30)], 0.99) is None
    assert sr.percentile([float(i) for i in range(99)], 0.99) is None


def test_p99_is_nearest_rank() -> None:
    xs = [float(i) for i in range(1, 201)]  # 1..200, shuffled order must not matter
    xs.reverse()
    assert sr.percentile(xs, 0.99) == 198.0  # two samples above it, not the maximum
    assert sr.percentile([float(i) for i in range(1, 101)], 0.99) == 99.0


def test_a_motor_that_did_not_stop_counts_against_the_percentile() -> None:
    xs = [1.0] * 197 + [math.inf] * 3  # three failed trials in 200: above 1 %
    assert sr.percentile(xs, 0.99) == math.inf
    line = sr.goal_line("safety_reaction_occlusion", xs, 10.0)
    assert line.endswith("— missed") and "p99 inf ms" in line


def test_goal_line_verdicts() -> None:
    ok = [2.0] * 200
    assert sr.goal_line("safety_reaction_air", ok, 10.0) == "GOAL safety_reaction_air: p99 2.00 ms vs <= 10 ms — met"
    assert "missed (n=150 < 200" in sr.goal_line("safety_reaction_air", ok[:150], 10.0)
    assert "missed (n=20 < 100" in sr.goal_line("safety_reaction_air", ok[:20], 10.0)
    assert sr.goal_line("safety_reaction_air", [12.0] * 200, 10.0).endswith("— missed")


def test_monitor_period_comes_from_the_model() -> None:
    model, _ = load(sr.MODEL)
    name, ms = sr.monitor_period_ms(model)
    assert (name, ms) == ("safety_monitor", float(model.partitions["safety_monitor"].resources.period_ms))
    # a model with another period gives that period, whatever the pump's constants say
    part = model.partitions["safety_monitor"]
    faster = msgspec.structs.replace(part, resources=msgspec.structs.replace(part.resources, period_ms=7))
    changed = msgspec.structs.replace(model, partitions={**model.partitions, "safety_monitor": faster})
    assert sr.monitor_period_ms(changed) == ("safety_monitor", 7.0)


def test_reset_interval_comes_from_the_fault_reset_channel() -> None:
    model, _ = load(sr.MODEL)
    assert sr.reset_interval_s(model) == pytest.approx(1.0)  # fault_reset: 1/s
