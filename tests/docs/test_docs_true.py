"""The docs say no more than the code (issue 18). Each check reads the code at test time, so a new event kind,
validator rule or cited file makes it fail until the docs follow."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import septum

ROOT = Path(__file__).parents[2]
PKG = Path(septum.__file__).parent
RUNTIME = PKG / "runtime"
DOCS = ROOT / "docs"
SDF_INVALID = ROOT / "tests" / "gen" / "sdf_invalid"


def _str_arg(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def emitted_event_kinds(root: Path = RUNTIME) -> set[str]:
    """Every event kind the runtime emits: ``x.emit("kind", ...)``, and ``emit`` handed on with its kind
    (``f(self.events.emit, "kind", ...)``)."""
    kinds: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Attribute) and node.func.attr == "emit" and node.args:
                kind = _str_arg(node.args[0])
                if kind is not None:
                    kinds.add(kind)
            for a, b in zip(node.args, node.args[1:], strict=False):
                if isinstance(a, ast.Attribute) and a.attr == "emit" and _str_arg(b) is not None:
                    kinds.add(_str_arg(b) or "")
    return kinds


def documented_event_kinds() -> set[str]:
    """The list in docs/runtime.md: the backticked, comma-separated kinds after "delivered to in-process
    subscribers:"."""
    text = (DOCS / "runtime.md").read_text()
    m = re.search(r"delivered to in-process subscribers:\s*`([^`]+)`", text)
    assert m, "docs/runtime.md no longer has the event list after 'delivered to in-process subscribers:'"
    return {k.strip() for k in m.group(1).split(",") if k.strip()}


def test_emitted_kinds_are_found() -> None:
    # the extraction itself: kinds every supervisor emits, by both call forms
    kinds = emitted_event_kinds()
    assert {"started", "ready", "exited", "safe_state", "heartbeat_missed", "stopped"} <= kinds


def test_extraction_sees_both_call_forms(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text('ev.emit("one", partition="p")\nlater(self.events.emit, "two", x=1)\n'
                                   'ev.emit(kind)\nlog.info("three")\n')
    assert emitted_event_kinds(tmp_path) == {"one", "two"}


def test_runtime_md_lists_exactly_the_event_kinds_the_runtime_emits() -> None:
    emitted, documented = emitted_event_kinds(), documented_event_kinds()
    assert not emitted - documented, f"emitted but not in docs/runtime.md: {sorted(emitted - documented)}"
    assert not documented - emitted, f"in docs/runtime.md but never emitted: {sorted(documented - emitted)}"


def _cited_documents(path: Path) -> list[str]:
    """Documents a source file cites: a path ending in .md with a folder (``docs/model.md``), or a design
    note's capitalised name (``MODEL.md``). Lower-case bare names are output files (``report.md``)."""
    text = path.read_text()
    return [m for m in re.findall(r"[\w./-]*\.md\b", text) if "/" in m or re.fullmatch(r"[A-Z][A-Z0-9_-]*\.md", m)]


# files of the upstream sources that the code names (the seL4 SDK build copies Microkit's licence), not documents
UPSTREAM_FILES = {"LICENSE.md"}


def test_source_cites_no_missing_document() -> None:
    # what the repository holds: not the venv, not built artefacts (build/ has the SDK, with its own .md files)
    names = {p.name for p in ROOT.rglob("*.md") if not {".venv", "build"} & set(p.relative_to(ROOT).parts)}
    names |= UPSTREAM_FILES
    missing: list[str] = []
    for src in sorted(PKG.rglob("*.py")):
        for cited in _cited_documents(src):
            exists = (ROOT / cited).is_file() if "/" in cited else cited in names
            if not exists:
                missing.append(f"{src.relative_to(ROOT)} cites {cited}")
    assert not missing, "cited documents that are not in the repository: " + "; ".join(missing)


def test_schema_cites_no_design_file() -> None:
    # the one the issue found: schema.py named a design note outside the repository
    assert "shared/design" not in (PKG / "model" / "schema.py").read_text()


def validator_error_rules() -> set[str]:
    """Every error rule id the SDF parser and validator can report (``self.error(loc, "rule", ...)`` and
    ``Diagnostic(loc, "error", "rule", ...)``), read from their source."""
    rules: set[str] = set()
    for name in ("sdf_parse.py", "sdf_validate.py"):
        tree = ast.parse((PKG / "gen" / name).read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef) or fn.name in ("error", "warning"):
                continue  # the helpers themselves pass the rule through
            for node in ast.walk(fn):
                if not isinstance(node, ast.Call):
                    continue
                f = node.func
                called = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                if called == "error" and len(node.args) >= 2:
                    rule = _str_arg(node.args[1])
                elif called == "Diagnostic" and len(node.args) >= 3 and _str_arg(node.args[1]) == "error":
                    rule = _str_arg(node.args[2])
                else:
                    continue
                assert rule is not None, f"{name}:{node.lineno}: a rule id that is not a literal cannot be checked"
                rules.add(rule)
    return rules


def _fixture_table() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in (SDF_INVALID / "expected.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            fixture, rule = line.split("\t")[:2]
            rows[fixture] = rule
    return rows


def test_every_validator_error_rule_has_an_invalid_fixture() -> None:
    rules = validator_error_rules()
    assert len(rules) >= 40 and "duplicate_schedule" in rules
    covered = set(_fixture_table().values())
    assert not rules - covered, f"validator rules without an invalid fixture: {sorted(rules - covered)}"
    assert not covered - rules, f"fixtures expect rules the validator does not have: {sorted(covered - rules)}"


def test_generators_md_fixture_count_is_true() -> None:
    fixtures = sorted(SDF_INVALID.glob("*.system"))
    text = (DOCS / "generators.md").read_text()
    m = re.search(r"invalid fixture in `tests/gen/sdf_invalid/` \((\d+) in all\)", text)
    assert m, "docs/generators.md no longer says how many invalid fixtures there are"
    assert int(m.group(1)) == len(fixtures) == len(_fixture_table())
