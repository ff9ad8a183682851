"""Each rule's failing and passing example, as a linter documents its rules.

The examples are data (``septum/data/rule_examples.yaml``): one small, clean *example device* (``base``),
and per rule a ``bad`` and a ``good`` change to it. A change is a YAML merge patch (RFC 7396: mappings
merge key by key, ``null`` deletes, anything else replaces) with one addition: ``channels`` entries are
matched by ``name`` (merged if the name exists, appended if not; ``removed: true`` deletes it).
``docs/rules.md`` shows both under the rule, and the tests run them: the bad one raises the rule (and
exactly the rules it lists in ``also``, findings of the same flaw), the good one raises nothing that is
not waived (WAIVER001's good example is a waiver still in force).
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from septum.knowledge.shipped import shipped
from septum.model import loads

from .engine import Report, check

__all__ = ["EXAMPLE_TODAY", "RuleExample", "apply_patch", "base_text", "examples", "run_example"]

EXAMPLES_FILE = "rule_examples.yaml"
# the day the examples are judged on: waiver expiry dates in them are relative to it
EXAMPLE_TODAY = dt.date(2026, 6, 1)


@dataclass(frozen=True)
class RuleExample:
    rule: str
    bad: str  # YAML merge patch text, shown verbatim in the docs
    good: str
    also: tuple[str, ...] = ()  # other rules the bad example raises (the same flaw seen by other rules)
    osv: tuple[dict[str, Any], ...] = ()  # OSV records the example is checked against (VULN)
    note: str = ""


def base_text() -> str:
    return str(shipped(EXAMPLES_FILE)["base"])


@cache
def examples() -> dict[str, RuleExample]:
    data = shipped(EXAMPLES_FILE)["rules"]
    return {rid: RuleExample(rid, str(e["bad"]), str(e["good"]), tuple(e.get("also", ())),
                             tuple(e.get("osv", ())), str(e.get("note", "")))
            for rid, e in data.items()}


def apply_patch(target: Any, patch: Any, *, key: str = "") -> Any:
    """RFC 7396 merge patch, with ``channels`` lists matched by name."""
    if key == "channels" and isinstance(patch, list) and isinstance(target, list):
        out = copy.deepcopy(target)
        index = {c.get("name"): i for i, c in enumerate(out) if isinstance(c, dict)}
        for entry in patch:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(entry, dict) and entry.get("removed") is True:
                if name in index:
                    out[index[name]] = None
                continue
            if name in index:
                out[index[name]] = apply_patch(out[index[name]], entry)
            else:
                out.append(copy.deepcopy(entry))
        return [c for c in out if c is not None]
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = apply_patch(merged.get(k), v, key=k)
    return merged


def example_model_text(patch_text: str) -> str:
    base = yaml.safe_load(base_text())
    patch = yaml.safe_load(patch_text) or {}
    return yaml.safe_dump(apply_patch(base, patch), sort_keys=False)


def run_example(patch_text: str, *, osv: tuple[dict[str, Any], ...] = ()) -> Report:
    """The findings of the example device with ``patch_text`` applied (OSV records given: VULN runs too)."""
    model, source = loads(example_model_text(patch_text), "example.yaml")
    options: dict[str, Any] = {}
    if osv:
        from septum.knowledge.osv import OsvDatabase, parse_record

        db = OsvDatabase(files=1)
        for i, rec in enumerate(osv):
            db.add(parse_record(rec, f"example record {i}"))
        options["osv"] = db
    return check(model, source, today=EXAMPLE_TODAY, options=options)
