"""The pump's keypad as a person uses it: digit keys, decimal, clear and enter, field by field, debounced.

Pure logic (the ui partition feeds it the keys it reads from the keypad device; tests/pump/test_keypad.py).

Keys on the keypad:

  field keys   ``user``, ``drug``, ``order_id``, ``reason`` carry their text (on a pump: chosen from a list or
               typed on a text screen); ``pin``, ``concentration``, ``rate``, ``vtbi``, ``weight`` carry
               nothing: they select the field, whose value is then typed with the digit keys
  entry keys   ``0``-``9``, ``decimal``, ``clear`` (the typed digits; pressed again on an empty entry: the
               field's value), ``enter`` (keep the typed value and move to the next field of the program:
               drug, concentration, rate, vtbi, weight; an empty entry keeps the value the field had)
  function keys the rest (``program``, ``start``, ...): the ui partition handles them

A function key pressed while digits are typed but not entered is refused with a note on the display (the
value shown is not the value that would be used), except the keys that use no field: ``emergency_stop``,
``silence`` and ``logout``. A number is at most ``MAX_DIGITS`` characters with one decimal point (a PIN:
digits only, at most ``MAX_PIN_DIGITS``).

Debounce: a key that repeats the previous key (same key, same value) less than ``DEBOUNCE_S`` (50 ms) after
it, by the keypad's own time stamps of the presses, is contact bounce: it is ignored and counted
(``Debouncer.ignored``). Using the keypad's time stamps rather than the time the ui reads a key means a ui
partition that is slow to read two real presses cannot mistake them for a bounce and lose a digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DEBOUNCE_S = 0.05
DIGITS = frozenset("0123456789")
DECIMAL, CLEAR, ENTER = "decimal", "clear", "enter"
ENTRY_KEYS = frozenset({*DIGITS, DECIMAL, CLEAR, ENTER})
NUMERIC_FIELDS = ("pin", "concentration", "rate", "vtbi", "weight",
                  "demand", "lockout", "per_hour", "limit_1h", "limit_4h", "bolus_count",  # PCA prescription
                  "bolus_dose")  # a clinician bolus
TEXT_FIELDS = ("user", "drug", "order_id", "reason")
FIELDS = frozenset(NUMERIC_FIELDS + TEXT_FIELDS)
PROGRAM_ORDER = ("drug", "concentration", "rate", "vtbi", "weight")
NO_FIELD_KEYS = frozenset({"emergency_stop", "silence", "logout"})
MAX_DIGITS = 9  # 99999.999: the model's largest value is 10000
MAX_PIN_DIGITS = 12
MAX_TEXT = 256
LABELS = {"concentration": "conc", "rate": "rate", "vtbi": "vtbi", "weight": "wt"}


class Debouncer:
    """Drops a repeat of the previous key within ``interval_s`` of it (by the presses' own time stamps)."""

    def __init__(self, interval_s: float = DEBOUNCE_S) -> None:
        if not (isinstance(interval_s, int | float) and math.isfinite(interval_s) and interval_s >= 0):
            raise ValueError("the debounce interval must be a finite number of seconds >= 0")
        self.interval_s = interval_s
        self.ignored = 0
        self._last: tuple[str, str, float] | None = None

    def accept(self, key: str, value: str, at_s: float) -> bool:
        last = self._last
        if last is not None and (key, value) == last[:2] and 0 <= at_s - last[2] < self.interval_s:
            self.ignored += 1
            return False  # the bounce does not move the reference: a chattering contact stays one press
        self._last = (key, value, at_s)
        return True


@dataclass(frozen=True)
class Outcome:
    kind: str  # "entry" (the form changed), "function" (for the caller), "refused" (note says why)
    note: str = ""


@dataclass
class KeypadEntry:
    """The form being filled in: entered field values, the selected field and the digits typed into it."""

    values: dict[str, str] = field(default_factory=lambda: {"concentration": "1", "weight": "0"})
    selected: str | None = None
    typed: str = ""

    @property
    def typing(self) -> bool:
        return bool(self.typed)

    def press(self, key: str, value: str = "") -> Outcome:
        if key in FIELDS:
            return self._field(key, value)
        if key in ENTRY_KEYS:
            if value:
                return Outcome("refused", f"key {key} takes no value")
            return self._entry(key)
        if self.typing and key not in NO_FIELD_KEYS:
            return Outcome("refused", f"press enter to keep {self.selected} {self.typed} (or clear)")
        return Outcome("function")

    def take(self, name: str) -> str:
        """A field's value, removed from the form (the PIN once it is sent)."""
        if self.selected == name:
            self.selected, self.typed = None, ""
        return self.values.pop(name, "")

    def _field(self, key: str, value: str) -> Outcome:
        if self.typing:
            return Outcome("refused", f"press enter to keep {self.selected} {self.typed} (or clear)")
        if key in NUMERIC_FIELDS:
            if value:
                return Outcome("refused", f"{key}: type the value with the digit keys")
            self.selected, self.typed = key, ""
            return Outcome("entry")
        if len(value) > MAX_TEXT or any(not ch.isprintable() for ch in value):
            return Outcome("refused", f"{key}: at most {MAX_TEXT} printable characters")
        self.values[key] = value
        self.selected = self._next(key)
        return Outcome("entry")

    def _entry(self, key: str) -> Outcome:
        sel = self.selected
        if sel is None:
            return Outcome("refused", "select a field (e.g. rate) first")
        if key == CLEAR:
            if self.typed:
                self.typed = ""
            else:
                self.values.pop(sel, None)
            return Outcome("entry")
        if key == ENTER:
            if self.typed:
                if self.typed.endswith("."):
                    self.typed = self.typed[:-1]
                self.values[sel] = self.typed
            self.typed = ""
            self.selected = self._next(sel)
            return Outcome("entry")
        limit = MAX_PIN_DIGITS if sel == "pin" else MAX_DIGITS
        if len(self.typed) >= limit:
            return Outcome("refused", f"{sel}: at most {limit} characters")
        if key == DECIMAL:
            if sel == "pin":
                return Outcome("refused", "a PIN has digits only")
            if "." in self.typed:
                return Outcome("refused", f"{sel} has a decimal point already")
            self.typed = (self.typed or "0") + "."
            return Outcome("entry")
        self.typed += key
        return Outcome("entry")

    @staticmethod
    def _next(key: str) -> str | None:
        if key in PROGRAM_ORDER:
            i = PROGRAM_ORDER.index(key)
            return PROGRAM_ORDER[i + 1] if i + 1 < len(PROGRAM_ORDER) else None
        return None

    def number(self, name: str) -> float:
        """An entered numeric field as a number (0 if it was never entered); ValueError if it is not one."""
        text = self.values.get(name, "") or "0"
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{name} is not a finite number")
        return value

    # ------------------------------------------------------------------ for the display
    def entry_line(self) -> str:
        """The field being typed into, e.g. ``> rate 10_`` (a PIN shows one * per digit)."""
        if self.selected is None:
            return ""
        shown = "*" * len(self.typed) if self.selected == "pin" else self.typed
        if not self.typed and self.selected != "pin" and self.values.get(self.selected):
            shown = self.values[self.selected]
            return f"> {self.selected} {shown} (enter keeps it)"
        return f"> {self.selected} {shown}_"

    def form_line(self) -> str:
        v = self.values
        parts = [f"drug {v.get('drug', '-') or '-'}"]
        parts += [f"{LABELS[k]} {v.get(k, '-') or '-'}" for k in ("concentration", "rate", "vtbi", "weight")]
        return " | ".join(parts)
