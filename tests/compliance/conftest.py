"""Shared fixtures: the reference pump model (loaded once) and the OSV fixture folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from septum.model import Model, SourceMap, load

ROOT = Path(__file__).resolve().parents[2]
PUMP = ROOT / "examples" / "infusion_pump" / "model.yaml"
OSV_FIXTURES = Path(__file__).parent / "osv"


@pytest.fixture(scope="session")
def pump() -> tuple[Model, SourceMap]:
    return load(PUMP)


@pytest.fixture(scope="session")
def pump_model(pump: tuple[Model, SourceMap]) -> Model:
    return pump[0]
