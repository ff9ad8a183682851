"""The plain text of a report is the bytes rich writes without colour, and plain `septum check` never imports rich.

``septum.report.styled`` writes plain lines itself so that `septum check` need not import rich (~65 ms of
its start-up). What it writes must be what rich wrote before: these tests print the same lines both ways,
including the text rich changes (control characters it drops, tabs it expands, brackets it must not read as
markup, long lines it must not wrap).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from septum.report.styled import Line, Output

ROOT = Path(__file__).resolve().parents[2]
STYLES = [None, "bold", "bold red", "dim", "magenta", "blue"]


def _rich_plain(lines: list[Line | None], width: int | None) -> str:
    """What the renderer printed before: rich without colour, soft-wrapped."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, no_color=True, color_system=None, width=width or 100,
                      highlight=False, emoji=False, force_jupyter=False, force_interactive=False)
    for line in lines:
        if line is None:
            console.print()
        else:
            console.print(line.to_rich(), soft_wrap=True)
    return buf.getvalue()


def _ours(lines: list[Line | None], width: int | None) -> str:
    out = Output(color=False, width=width)
    for line in lines:
        out.print(line)
    return out.text()


def test_what_rich_changes_is_changed_alike() -> None:
    lines: list[Line | None] = [
        Line("  ").append("ISO001", "bold red").append("  ").append("a [bold]path[/bold] --[c]--> x", "bold"),
        Line("    path: a --[ch]--> b" + " -x-" * 60, style="magenta"),  # longer than the width: not wrapped
        None,
        Line("tab\there\tand\tthere").append("\tbell\a back\b vt\v ff\f cr\r end"),
        Line("\nNo findings."),
        Line("trailing spaces   "),
        Line(),
        Line("esc \x1b[31m stays as rich leaves it"),
    ]
    for width in (None, 40):
        assert _ours(lines, width) == _rich_plain(lines, width)


# ASCII with its control characters, plus accented, wide (CJK) and zero-width characters, tabs often
text = st.text(st.one_of(st.characters(codec="ascii"), st.sampled_from("é漢字\u200b\u0301\t")), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(st.tuples(text, st.sampled_from(STYLES)), max_size=5)), max_size=6))
def test_any_segments_print_the_same(spec: list[list[tuple[str, str | None]] | None]) -> None:
    lines: list[Line | None] = []
    for parts in spec:
        if parts is None:
            lines.append(None)
            continue
        line = Line()
        for t, style in parts:
            line.append(t, style)
        lines.append(line)
    assert _ours(lines, None) == _rich_plain(lines, None)


def test_colour_still_goes_through_rich() -> None:
    out = Output(color=True, width=None)
    out.print(Line("PASS", "bold green"))
    assert out.text() == "\x1b[1;32mPASS\x1b[0m\n"


def test_plain_check_does_not_import_rich() -> None:
    code = ("import sys\nfrom septum.cli import main\n"
            f"sys.argv = ['septum', 'check', {str(ROOT / 'examples' / 'infusion_pump' / 'model.yaml')!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "print('rich imported' if any(m == 'rich' or m.startswith('rich.') for m in sys.modules) else 'no rich',"
            " code)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert res.stdout.strip().splitlines()[-1] == "no rich 0", res.stdout + res.stderr
