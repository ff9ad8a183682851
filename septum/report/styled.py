"""Styled lines for the terminal reports, printed as plain text without importing rich, or through rich in colour.

`septum check` prints plain text in CI, into pipes and files, which is nearly always; importing rich only to
print that cost it ~65 ms of a ~230 ms process on the 2-core machine (benchmarks/cli_startup.py). A
``Line`` is a list of (text, style) segments; ``Output`` writes it as its bare text when there is no colour
and hands it to a rich ``Console`` (imported then) when there is. The plain text is the same bytes rich
writes without colour: rich drops the same control characters from a segment's text (BEL, BS, VT, FF, CR),
expands tabs by terminal cells, and with ``soft_wrap`` neither wraps nor pads a line.
tests/report/test_styled_output.py compares the two.
"""

from __future__ import annotations

import io
from typing import Any

# what rich.control.strip_control_codes removes from text it is given
_CONTROL = dict.fromkeys((7, 8, 11, 12, 13))


class Line:
    """A line of report text in styled segments (rich style strings: "bold red", "dim", ...)."""

    __slots__ = ("parts", "style")

    def __init__(self, text: str = "", style: str | None = None) -> None:
        self.parts: list[tuple[str, str | None]] = [(text, None)] if text else []
        self.style = style  # the whole line's style, under its segments' own

    def append(self, text: str, style: str | None = None) -> Line:
        self.parts.append((text, style))
        return self

    @property
    def plain(self) -> str:
        text = "".join(text for text, _ in self.parts).translate(_CONTROL)
        return _expand_tabs(text) if "\t" in text else text

    def to_rich(self) -> Any:
        from rich.text import Text

        out = Text(style=self.style or "")
        for text, style in self.parts:
            out.append(text, style=style)
        return out


def _expand_tabs(text: str, size: int = 8) -> str:
    """Tabs to spaces as rich does it: by terminal cells (a control character takes none, a wide one two),
    the tab itself at least one space. Rare in a report, so rich's cell table is imported only here."""
    from rich.cells import cell_len

    out = []
    for line in text.split("\n"):
        chunks = line.split("\t")
        pos, pieces = 0, []
        for chunk in chunks[:-1]:
            piece = chunk + " "
            pos += cell_len(piece)
            pad = -pos % size
            pieces.append(piece + " " * pad)
            pos += pad
        pieces.append(chunks[-1])
        out.append("".join(pieces))
    return "\n".join(out)


class Output:
    """Where a report is printed: a string, in plain text or (``color``) with rich's ANSI styles."""

    def __init__(self, *, color: bool, width: int | None) -> None:
        self._buf = io.StringIO()
        self._console: Any = _console(self._buf, width) if color else None

    def print(self, line: Line | None = None) -> None:
        if self._console is not None:
            if line is None:
                self._console.print()
            else:
                self._console.print(line.to_rich(), soft_wrap=True)
            return
        self._buf.write("\n" if line is None else line.plain + "\n")

    def text(self) -> str:
        return self._buf.getvalue()


def _console(buf: io.StringIO, width: int | None) -> Any:
    from rich.console import Console

    return Console(
        file=buf,
        force_terminal=True,
        no_color=False,
        color_system="standard",
        width=width or 100,
        highlight=False,
        emoji=False,
        # never ask the real terminal anything: the output goes to a string
        force_jupyter=False,
        force_interactive=False,
    )
