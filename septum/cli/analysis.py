"""`septum` commands for the analysis area."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
