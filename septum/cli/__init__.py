"""The ``septum`` command group. Subcommands are thin: they parse arguments and call library code.

Each area contributes its commands from ``septum/cli/<area>.py``; this module only assembles them.
"""

from __future__ import annotations

import click

from septum import __version__

from .error_exit import SeptumGroup

# command name -> the area module that defines it; imported only when that command runs (or help lists it)
LAZY_COMMANDS: dict[str, str] = {
    **dict.fromkeys(("check", "rules", "explain", "diff", "schema"), "septum.cli.analysis"),
    **dict.fromkeys(("gen", "validate-sdf"), "septum.cli.gen"),
    "run": "septum.cli.runtime",
    **dict.fromkeys(("audit", "update", "provision"), "septum.cli.services"),
    **dict.fromkeys(("report", "sbom", "threats", "mds2", "vulns"), "septum.cli.compliance"),
    "attack": "septum.cli.attack",
    "decommission": "septum.cli.decommission",
    "sel4": "septum.cli.sel4",
}


@click.group(cls=SeptumGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="septum")
def cli() -> None:
    """Septum: model-driven separation architecture for connected medical devices."""


def main() -> None:
    cli(prog_name="septum")
