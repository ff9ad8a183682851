"""The ``septum`` command group. Subcommands are thin: they parse arguments and call library code.

Each area contributes its commands from ``septum/cli/<area>.py``; this module only assembles them.
"""

from __future__ import annotations

import click

from septum import __version__

from . import analysis, attack, compliance, gen, runtime, services


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="septum")
def cli() -> None:
    """Septum: model-driven separation architecture for connected medical devices."""


for _area in (analysis, gen, runtime, services, compliance, attack):
    for _cmd in _area.COMMANDS:
        cli.add_command(_cmd)


def main() -> None:
    cli(prog_name="septum")
