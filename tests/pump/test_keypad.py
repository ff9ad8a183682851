"""The keypad as on a pump: digits, decimal, clear, enter, field by field, and key debounce."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from septum_pump.therapy.keypad import (
    DEBOUNCE_S,
    ENTRY_KEYS,
    FIELDS,
    MAX_DIGITS,
    Debouncer,
    KeypadEntry,
)


def type_keys(entry: KeypadEntry, *keys: str) -> list[str]:
    return [entry.press(k).kind for k in keys]


def test_a_value_is_typed_digit_by_digit_and_kept_by_enter() -> None:
    e = KeypadEntry()
    assert e.press("rate").kind == "entry"
    type_keys(e, "1", "2", "decimal", "5")
    assert e.entry_line() == "> rate 12.5_" and "rate" not in e.values
    assert e.press("enter").kind == "entry"
    assert e.values["rate"] == "12.5" and e.number("rate") == 12.5
    assert e.selected == "vtbi"  # the next field of the program


def test_field_by_field_through_the_program() -> None:
    e = KeypadEntry()
    e.press("drug", "normal-saline")
    assert e.selected == "concentration"
    type_keys(e, "enter")  # keeps the shown concentration
    assert e.selected == "rate"
    type_keys(e, "1", "0", "0", "enter", "5", "0", "0", "enter", "enter")
    assert (e.values["drug"], e.number("concentration"), e.number("rate"), e.number("vtbi"),
            e.number("weight")) == ("normal-saline", 1.0, 100.0, 500.0, 0.0)
    assert e.selected is None
    assert e.form_line() == "drug normal-saline | conc 1 | rate 100 | vtbi 500 | wt 0"


def test_clear_empties_the_typing_then_the_field() -> None:
    e = KeypadEntry()
    e.press("vtbi")
    type_keys(e, "5", "0", "enter")
    e.press("vtbi")
    type_keys(e, "9")
    e.press("clear")
    assert e.typed == "" and e.values["vtbi"] == "50"
    e.press("clear")
    assert "vtbi" not in e.values


def test_refusals() -> None:
    e = KeypadEntry()
    assert e.press("5").kind == "refused"  # no field selected
    assert e.press("rate", "100").kind == "refused"  # numbers only through the digit keys
    e.press("rate")
    e.press("decimal")
    assert e.press("decimal").kind == "refused"
    assert e.typed == "0."
    # a function key with an entry not yet entered: refused, the note says so
    out = e.press("program")
    assert out.kind == "refused" and "enter" in out.note
    for key in ("emergency_stop", "silence", "logout"):
        assert e.press(key).kind == "function"  # these use no field
    e.press("enter")
    assert e.values["rate"] == "0" and e.press("program").kind == "function"
    e.press("pin")
    assert e.press("decimal").kind == "refused"
    for _ in range(12):
        e.press("7")
    assert e.press("7").kind == "refused"
    assert e.entry_line() == "> pin " + "*" * 12 + "_"
    assert e.press("5", "x").kind == "refused"


def test_pin_is_taken_once() -> None:
    e = KeypadEntry()
    e.press("pin")
    type_keys(e, "4", "8", "3", "enter")
    assert e.take("pin") == "483" and e.take("pin") == ""


def test_debounce_ignores_a_repeat_within_the_interval_and_counts_it() -> None:
    assert DEBOUNCE_S == 0.05
    d = Debouncer()
    assert d.accept("0", "", 1.000)
    assert not d.accept("0", "", 1.030)  # bounce
    assert not d.accept("0", "", 1.049)  # still within 50 ms of the accepted press
    assert d.ignored == 2
    assert d.accept("0", "", 1.060)  # a second press of the same key
    assert d.accept("1", "", 1.061)  # a different key is never a bounce
    assert d.accept("0", "", 1.062)
    assert d.ignored == 2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(sorted(ENTRY_KEYS | FIELDS | {"program", "start"})),
                          st.tuples(st.sampled_from(sorted(FIELDS)), st.text(max_size=12))), max_size=80))
def test_no_key_sequence_leaves_an_unusable_number_in_the_form(keys: list) -> None:
    e = KeypadEntry()
    for k in keys:
        key, value = (k, "") if isinstance(k, str) else k
        e.press(key, value)
        for name in ("pin", "concentration", "rate", "vtbi", "weight"):
            text = e.values.get(name, "")
            assert len(text) <= max(MAX_DIGITS + 1, 12)
            if text:
                assert e.number(name) >= 0  # parses, finite, never negative (there is no minus key)
                if name == "pin":
                    assert text.isdigit()


@given(st.text(alphabet="0123456789", min_size=1, max_size=5), st.text(alphabet="0123456789", max_size=3))
def test_what_is_typed_is_what_is_entered(whole: str, frac: str) -> None:
    e = KeypadEntry()
    e.press("rate")
    keys = list(whole) + (["decimal", *frac] if frac else [])
    for k in keys:
        assert e.press(k).kind == "entry"
    e.press("enter")
    assert e.number("rate") == pytest.approx(float(whole + ("." + frac if frac else "")))
