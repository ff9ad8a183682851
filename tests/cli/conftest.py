"""Shared helpers for the CLI tests: run `septum` in-process and locate the test models."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from septum.cli import cli

MODELS = Path(__file__).parent / "models"


@pytest.fixture
def run():
    """Run `septum ARGS...`; a Python exception escaping the command fails the test (users never see
    a traceback)."""

    def _run(*args: str, env: dict[str, str] | None = None) -> Result:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return _run
