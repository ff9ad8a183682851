"""Name -> function tables filled by decorators: how data files (MDS2 items, threat rules) find their code.

A data file cites a function by a stable name; the decorator registers the function under that name, so a
function can be renamed without breaking the link, and a name registered twice is refused at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


def registrar(table: dict[str, F], what: str) -> Callable[[str], Callable[[F], F]]:
    """A decorator factory that registers functions in ``table``; ``what`` names them in errors."""

    def named(name: str) -> Callable[[F], F]:
        def register(fn: F) -> F:
            if name in table:
                raise ValueError(f"{what} {name!r} registered twice ({table[name].__name__}, {fn.__name__})")
            table[name] = fn
            return fn

        return register

    return named
