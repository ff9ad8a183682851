"""`septum` commands for the gen area."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
