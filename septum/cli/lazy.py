"""A click group whose subcommands are imported only when one of them is run (or help lists them).

Each area module (``septum/cli/<area>.py``) pulls in its own library stack — compliance, services with
cryptography, the runtime, generators. ``septum check`` needs only the analysis area, so importing every
area at start-up made the whole process several times slower than the check itself.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """Commands named in ``lazy`` (command name -> module whose ``COMMANDS`` holds it) load on first use."""

    def __init__(self, *args: object, lazy: dict[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy: dict[str, str] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, cmd_name: str) -> None:
        module = importlib.import_module(self.lazy[cmd_name])
        # register every command the module offers: they were all imported anyway
        for cmd in module.COMMANDS:
            if cmd.name in self.lazy and self.lazy[cmd.name] == module.__name__:
                self.commands.setdefault(cmd.name, cmd)
        if cmd_name not in self.commands:
            # a wrong map is a programming error, not a user mistake: say which entry is wrong
            raise RuntimeError(f"{module.__name__} has no command {cmd_name!r} (septum.cli lazy map)")
