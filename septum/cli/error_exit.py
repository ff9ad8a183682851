"""Any SeptumError that a command did not handle ends the ``septum`` command with exit 2 and its message.

Commands handle the errors they expect and word them for their context; this is the net under all of them,
so that a user mistake that reaches the top never shows up as a Python traceback. Exit 2 is what the
commands already use for input they cannot use (a model that does not load, a misused option).
"""

from __future__ import annotations

from typing import Any

import click

from septum.errors import SeptumError

from .lazy import LazyGroup

EXIT_SEPTUM_ERROR = 2


class SeptumErrorExit(click.ClickException):
    """A SeptumError seen at the top of the command group: click prints ``Error: <message>`` and exits 2."""

    exit_code = EXIT_SEPTUM_ERROR


class SeptumGroup(LazyGroup):
    """The lazy command group, with every unhandled SeptumError mapped to exit 2 and its message."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SeptumError as e:
            raise SeptumErrorExit(str(e) or type(e).__name__) from e
