"""Titration limit: a drug's rate may rise by at most the library's max_increase per period (titration.py)."""

from __future__ import annotations

import pytest
from septum_pump.therapy.drug_library import DrugLibraryError, load_drug_library
from septum_pump.therapy.program import Severity, Verdict
from septum_pump.therapy.state_machine import Controller, ControllerConfig
from septum_pump.therapy.titration import DEFAULT_PERIOD_S

from .conftest import LIBRARY_PATH, NURSE, Rig, heparin


def test_the_library_sets_the_rule_and_a_default_applies_without_one(library):
    rule = library.entry("heparin", "adult-med-surg").titration
    assert rule is not None and rule.max_increase == 500 and rule.period_s == 3600
    saline = library.entry("normal-saline", "adult-med-surg").titration  # none given: half the hard max per hour
    assert saline is not None and saline.max_increase == 250 and saline.period_s == DEFAULT_PERIOD_S


@pytest.mark.parametrize("bad, why", [
    ("titration: {max_increase: 500}", "missing key 'period_min'"),
    ("titration: {max_increase: -1, period_min: 60}", "at least zero"),
    ("titration: {max_increase: 5, period_min: 0}", "greater than zero"),
])
def test_a_bad_titration_entry_refuses_the_library(bad, why):
    text = LIBRARY_PATH.read_text().replace("titration: {max_increase: 500, period_min: 60}", bad)
    with pytest.raises(DrugLibraryError, match=why):
        load_drug_library(text.encode())


def test_rate_increases_are_capped_per_period_by_controller_and_monitor(library):
    rig = Rig(library, period_s=10.0)
    rig.reservoir_ml = 1000.0
    rig.start(heparin(rate=1000))
    rig.run(600)
    ctl = rig.controller
    too_fast = ctl.program_infusion(heparin(rate=1600), rig.now)  # +600 units/h within the hour
    assert too_fast.verdict is Verdict.REJECTED
    assert too_fast.issues[0].field == "rate" and too_fast.issues[0].severity is Severity.HARD
    assert "titration limit" in too_fast.issues[0].message
    assert ctl.program is not None and ctl.program.rate == 1000  # the running infusion is untouched
    ok = ctl.program_infusion(heparin(rate=1500), rig.now)
    assert ok.accepted and ctl.confirm_edit(NURSE, rig.now).ok
    assert ctl.program is not None and rig.monitor.accept_program(ctl.program, rig.now) == ()
    rig.run(600)
    # 1500 now, but 1000 was in effect within the last hour: no further rise yet
    assert not ctl.program_infusion(heparin(rate=1600), rig.now).accepted
    # stopping and re-programming does not reset the history
    assert ctl.stop(NURSE, rig.now).ok
    assert not ctl.program_infusion(heparin(rate=1600), rig.now).accepted
    rig.now += 3600.0  # an hour after the last change
    assert ctl.program_infusion(heparin(rate=1700), rig.now).accepted  # lowest in the hour is 1500


def test_the_monitor_applies_the_limit_itself(library):
    """A controller that skipped the check (or lost its history) cannot pass a fast rise to the monitor."""
    rig = Rig(library, period_s=10.0)
    rig.start(heparin(rate=1000))
    rig.run(60)
    fresh = Controller(library, ControllerConfig(period_s=10.0), now=rig.now)  # a controller with no history
    decision = fresh.program_infusion(heparin(rate=1700), rig.now)
    assert decision.accepted and decision.program is not None
    issues = rig.monitor.accept_program(decision.program, rig.now)
    assert issues and "titration limit" in issues[0].message
    assert rig.monitor.program is not None and rig.monitor.program.rate == 1000


def test_lowering_is_always_allowed(library):
    rig = Rig(library, period_s=10.0)
    rig.start(heparin(rate=1700))
    rig.run(60)
    assert rig.controller.program_infusion(heparin(rate=400), rig.now).accepted
