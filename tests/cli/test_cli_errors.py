"""An unhandled SeptumError from any command ends ``septum`` with exit 2 and its message, no traceback."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from septum.cli import cli
from septum.compliance.threat_rules import ThreatRuleError
from septum.crypto.keys import KeyFileError
from septum.errors import SeptumError


def _raising(exc: BaseException) -> click.Command:
    @click.command("raise-for-test")
    def cmd() -> None:
        raise exc

    return cmd


@pytest.mark.parametrize("exc", [
    KeyFileError("key file /nowhere/manufacturer.key is missing"),
    ThreatRuleError("rules.yaml: threat X: unknown evidence check(s) nope"),  # also a ValueError
    SeptumError("the base class itself"),
])
def test_a_septum_error_from_a_command_exits_2_with_its_message(
        exc: SeptumError, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli.commands, "raise-for-test", _raising(exc))
    result = CliRunner().invoke(cli, ["raise-for-test"])
    assert result.exit_code == 2, result.output
    assert f"Error: {exc}" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # click exited; nothing escaped as the exception itself


def test_other_exceptions_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # a bug must keep its traceback: only SeptumError is a message for the user
    monkeypatch.setitem(cli.commands, "raise-for-test", _raising(ZeroDivisionError("a bug")))
    result = CliRunner().invoke(cli, ["raise-for-test"])
    assert result.exit_code == 1
    assert isinstance(result.exception, ZeroDivisionError)


def test_the_installed_entry_point_maps_it_too() -> None:
    # the real process: a real command raising a real SeptumError subclass that it does not handle itself
    code = (
        "import click, sys\n"
        "from septum.cli import cli\n"
        "from septum.services.update_bundle import BundleError\n"
        "@cli.command('raise-for-test')\n"
        "def cmd():\n"
        "    raise BundleError('bundle refused: signature does not verify')\n"
        "cli(prog_name='septum', args=['raise-for-test'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Error: bundle refused: signature does not verify" in proc.stderr
    assert "Traceback" not in proc.stderr
