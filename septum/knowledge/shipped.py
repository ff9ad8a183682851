"""Loading the catalogues Septum ships as data (``septum/data/*.yaml``), each once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_DATA = Path(__file__).resolve().parent.parent / "data"
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def shipped(name: str) -> Any:
    """Parsed content of ``septum/data/<name>``. Shipped files are ours: a parse error is a bug."""
    # a plain path, not importlib.resources: that pulled zipfile and tempfile into every `septum check`, and
    # Septum runs from a real folder anyway (the runtime maps the package into each sandbox)
    text = (_DATA / name).read_text(encoding="utf-8")
    # libyaml's loader when PyYAML has it: the pure-Python one took most of `septum check`'s own run time
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - CSafeLoader or SafeLoader
