from __future__ import annotations

from pathlib import Path

import pytest

from septum.model import Model, SourceMap, load

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PUMP = ROOT / "examples" / "infusion_pump" / "model.yaml"
MODELS = HERE / "models"


def example_models() -> list[Path]:
    """Every model the repository ships: the reference pump and our own small ones."""
    found = sorted(MODELS.glob("*.yaml"))
    if PUMP.exists():
        found.insert(0, PUMP)
    return found


@pytest.fixture
def pump() -> tuple[Model, SourceMap]:
    if not PUMP.exists():
        pytest.skip("reference pump model not present")
    return load(PUMP)
