"""`septum` commands for the runtime area."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
