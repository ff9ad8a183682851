"""The septum-findings/1 JSON report: documented keys, stable output, locations and witnesses."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from septum import __version__
from septum.analysis import check
from septum.model import load
from septum.report import render

MODELS = Path(__file__).parent.parent / "cli" / "models"
TODAY = dt.date(2026, 1, 1)

# The documented shape (docs/cli.md). Adding a key is allowed within format 1; these must stay.
TOP_KEYS = {"format", "tool", "model", "rules", "counts", "exit_code", "causes", "findings"}
FINDING_KEYS = {"rule", "title", "severity", "blocking", "message", "location", "elements", "path", "waived",
                "waiver", "extra", "cause"}
ELEMENT_KEYS = {"kind", "name", "qualified_name", "location"}
STEP_KEYS = {"node", "channel", "channel_location"}
LOCATION_KEYS = {"file", "line", "column"}


def _json(name: str, today: dt.date = TODAY) -> dict:
    model, source = load(MODELS / name)
    return json.loads(render(check(model, source, today=today), "json"))


def test_documented_keys():
    data = _json("flawed.yaml")
    assert set(data) == TOP_KEYS
    assert data["format"] == "septum-findings/1"
    assert data["tool"] == {"name": "septum", "version": __version__}
    assert data["model"]["device"] == {"name": "Flawed test device", "version": "1.0", "profile": "production"}
    assert set(data["counts"]) == {"error", "warning", "note", "waived"}
    assert data["exit_code"] == 1
    for f in data["findings"]:
        assert set(f) == FINDING_KEYS
        assert set(f["location"]) == LOCATION_KEYS
        for e in f["elements"]:
            assert set(e) == ELEMENT_KEYS
        for step in f["path"]:
            assert set(step) == STEP_KEYS


def test_output_is_byte_stable():
    model, source = load(MODELS / "flawed.yaml")
    a = render(check(model, source, today=TODAY), "json")
    model, source = load(MODELS / "flawed.yaml")
    b = render(check(model, source, today=TODAY), "json")
    assert a == b


def test_flow_finding_location_and_path():
    data = _json("flawed.yaml")
    f = next(f for f in data["findings"] if f["rule"] == "ISO001")
    assert f["severity"] == "error" and f["blocking"] is True
    assert f["title"] == "External input reaches a safety partition without passing a guard"
    assert f["location"]["line"] == 30 and f["location"]["column"] == 5
    assert f["location"]["file"].endswith("flawed.yaml")
    assert [(s["node"]["qualified_name"], s["channel"]) for s in f["path"]] == [
        ("interfaces.lan", None), ("partitions.network", None), ("partitions.control", "console")]
    assert f["path"][2]["channel_location"]["line"] == 38
    assert f["path"][0]["channel_location"] is None
    assert f["waiver"] is None


def test_waiver_info():
    data = _json("waived.yaml")
    (f,) = [f for f in data["findings"] if f["rule"] == "PRIV005"]
    assert f["waived"] is True and f["blocking"] is False
    assert f["waiver"] == {"reason": "auth rate-limits per principal", "by": "alice", "expires": "2030-01-31"}
    assert data["counts"]["waived"] == 1
    assert data["exit_code"] == 0


def test_clean_model():
    data = _json("clean.yaml")
    assert data["findings"] == []
    assert data["counts"] == {"error": 0, "warning": 0, "note": 0, "waived": 0}
    assert data["exit_code"] == 0
