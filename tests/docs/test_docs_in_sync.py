"""The generated rule reference must match the rule registry."""

from septum.docs_gen import RULES_MD, render_rules


def test_rules_md_matches_registry() -> None:
    assert RULES_MD.exists(), "docs/rules.md is missing: run `python -m septum.docs_gen`"
    assert RULES_MD.read_text() == render_rules(), "docs/rules.md is out of date: run `python -m septum.docs_gen`"
