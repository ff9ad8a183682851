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
    return [PUMP, *sorted(MODELS.glob("*.yaml"))]


@pytest.fixture
def pump() -> tuple[Model, SourceMap]:
    return load(PUMP)
