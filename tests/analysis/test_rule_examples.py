"""Every rule's documented examples are true: the failing one raises the rule (and exactly the other rules
it names), the passing one raises nothing unwaived, and every rule has both."""

from __future__ import annotations

import pytest

from septum.analysis import all_rules, check
from septum.analysis.examples import apply_patch, base_text, examples, run_example
from septum.model import loads

RULE_IDS = [r.id for r in all_rules()]


def test_the_example_device_is_clean() -> None:
    model, source = loads(base_text(), "example.yaml")
    assert check(model, source).findings == []


def test_every_rule_has_examples_and_every_example_a_rule() -> None:
    assert sorted(examples()) == sorted(RULE_IDS)
    known = set(RULE_IDS)
    for e in examples().values():
        assert set(e.also) <= known - {e.rule}, e.rule


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_failing_example_raises_exactly_its_rules(rule_id: str) -> None:
    e = examples()[rule_id]
    report = run_example(e.bad, osv=e.osv)
    assert {f.rule for f in report.findings} == {rule_id, *e.also}
    assert any(f.rule == rule_id for f in report.findings)


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_passing_example_raises_nothing_unwaived(rule_id: str) -> None:
    e = examples()[rule_id]
    report = run_example(e.good, osv=e.osv)
    assert [f.rule for f in report.findings if not f.waived] == []
    # a waived finding is allowed only where the example says so (the waiver rules)
    assert not any(f.waived for f in report.findings) or e.note


def test_merge_patch_semantics() -> None:
    base = {"a": {"b": 1, "c": 2}, "channels": [{"name": "x", "rate": "1/s"}, {"name": "y"}], "l": [1, 2]}
    patch = {"a": {"b": None, "d": 3}, "channels": [{"name": "x", "rate": None, "to": "p"}, {"name": "y",
             "removed": True}, {"name": "z"}], "l": [3]}
    assert apply_patch(base, patch) == {"a": {"c": 2, "d": 3}, "channels": [{"name": "x", "to": "p"}, {"name": "z"}],
                                        "l": [3]}
    assert base["channels"][0] == {"name": "x", "rate": "1/s"}  # the base is not modified
