"""Shared fixture for the CLI tests: run `septum` in-process."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from septum.cli import cli


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
