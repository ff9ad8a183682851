"""`septum` commands for the services area."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
