"""Helpers for the service end-to-end tests: run a test model under the real supervisor."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from septum.model import load
from septum.runtime.sandbox.probe import probe
from septum.runtime.supervisor import Supervisor, remove_state_dir

HERE = Path(__file__).parent
MODELS = HERE / "models"
PUMP_MODEL = HERE.parents[1] / "examples" / "infusion_pump" / "model.yaml"


def require_root() -> None:
    if not probe().root:
        print("SKIP: these tests run partitions under their own uids and need root")
        pytest.skip("needs root (partitions run under their own uids)")


def tmpdir(prefix: str) -> Path:
    """A directory partitions (other uids) can traverse (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o711)  # traverse only
    return d


@contextlib.contextmanager
def running(model: str | Path, *, provision: Mapping[str, Path] | None = None, check: bool = True,
            state: Path | None = None, **kw: Any) -> Iterator[Supervisor]:
    path = Path(model) if Path(model).is_absolute() else MODELS / model
    m, src = load(path)
    own_state = state is None
    state = state or tmpdir("septum-svc-")
    sup = Supervisor(m, src, model_dir=path.parent, state_dir=state, check=check, provision=provision, **kw)
    sup.start()
    try:
        assert sup.wait_ready(20), "device did not become ready: " + "; ".join(sup.failures)
        yield sup
    finally:
        sup.stop()
        if own_state:
            remove_state_dir(state)
