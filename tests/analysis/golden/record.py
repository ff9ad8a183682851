"""Record what the engine reports on every shipped model: findings (rule, severity, message, elements, path
witness, waiver) and source positions (each finding element's location, and the location of every path the
source map knows, value and key). ``test_findings_unchanged.py`` compares the engine of the day against it.

    .venv/bin/python tests/analysis/golden/record.py [SEPTUM_SOURCE_ROOT]

Record with the engine the comparison is meant to hold against (the golden file in the repository was
recorded with the engine before the issue-16 speed work: ``git archive`` of that commit, its root given
as the argument), never with the engine under test.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
TODAY = dt.date(2026, 6, 1)


def model_paths() -> list[Path]:
    found = [*ROOT.glob("examples/*.yaml"), *ROOT.glob("examples/*/model.yaml"), *ROOT.glob("examples/flawed/*.yaml"),
             *ROOT.glob("examples/warmer/flawed/*.yaml"), *ROOT.glob("tests/cli/models/*.yaml"),
             ROOT / "tests/analysis/base_model.yaml", *HERE.glob("*.yaml")]
    return sorted(set(found))


def _probe_paths(data: Any, path: tuple[Any, ...] = (), depth: int = 5) -> list[tuple[Any, ...]]:
    """Every path into the model data down to ``depth`` (deeper than the source map keeps, on purpose)."""
    out = [path]
    if len(path) >= depth:
        return out
    if isinstance(data, dict):
        for k, v in data.items():
            out += _probe_paths(v, (*path, k), depth)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _probe_paths(v, (*path, i), depth)
    return out


def record(path: Path) -> dict[str, Any]:
    import yaml

    from septum.analysis import check
    from septum.model import ModelError, load
    from septum.report import element_location

    rel = str(path.relative_to(ROOT))
    try:
        model, source = load(rel)
    except ModelError as exc:
        return {"load_error": [str(i) for i in exc.issues]}
    report = check(model, source, today=TODAY)
    findings = []
    for f in report.findings:
        findings.append({
            "rule": f.rule, "severity": f.severity, "message": f.message, "waived": f.waived,
            "elements": [str(e) for e in f.elements],
            "locations": [str(element_location(source, model, e)) for e in f.elements],
            "path": [[str(s.node), s.channel] for s in f.path],
        })
    data = yaml.safe_load(path.read_text())
    positions = {}
    for p in _probe_paths(data):
        key = json.dumps(p)
        value, at_key = source.locate(p), source.locate(p, key=True)
        if value.file != rel or at_key.file != rel:
            raise SystemExit(f"{rel}: a location names another file: {value}, {at_key}")
        positions[key] = [value.line, value.column, at_key.line, at_key.column]
    return {"findings": findings, "positions": positions}


def main() -> None:
    if len(sys.argv) > 1:
        sys.path.insert(0, sys.argv[1])
    import septum

    print(f"recording with {Path(septum.__file__).parent}", file=sys.stderr)
    out = {str(p.relative_to(ROOT)): record(p) for p in model_paths()}
    # one line per model and per finding list: small, and a changed model shows in a diff as its own lines
    lines = [json.dumps(k) + ": " + json.dumps(v, sort_keys=True, separators=(",", ":"))
             for k, v in sorted(out.items())]
    (HERE / "findings.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
