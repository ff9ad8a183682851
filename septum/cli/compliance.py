"""`septum` commands for the compliance area."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
