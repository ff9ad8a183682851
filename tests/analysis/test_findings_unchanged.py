"""The engine's findings and the loader's source positions on every shipped model are those recorded in
golden/findings.json with the engine before the issue-16 speed work (golden/record.py says how): the same
rule ids, messages, elements, path witnesses and waivers, in the same order, and the same ``line:col`` for
every element of a finding and for every path into the model (value and key), however the index is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.analysis.golden.record import ROOT, model_paths, record

GOLDEN = json.loads((Path(__file__).parent / "golden" / "findings.json").read_text())
MODELS = [str(p.relative_to(ROOT)) for p in model_paths()]


def test_every_model_is_recorded() -> None:
    assert sorted(GOLDEN) == sorted(MODELS)
    assert len(MODELS) >= 20


@pytest.mark.parametrize("rel", MODELS)
def test_findings_and_positions_unchanged(rel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # locations are recorded relative to the repository
    now = record(ROOT / rel)
    want = GOLDEN[rel]
    if "load_error" in want:
        assert now == want
        return
    assert now["findings"] == want["findings"]
    assert now["positions"] == want["positions"]
