"""The lazily assembled ``septum`` group: every command is still there with its help, and ``septum check``
no longer imports the areas it does not use."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from septum.cli import LAZY_COMMANDS, cli

PUMP = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump" / "model.yaml"
AREAS = sorted(set(LAZY_COMMANDS.values()))


def test_lazy_map_matches_every_area_module():
    # the map is the only list of commands: a command an area adds but the map misses would vanish
    registered = {}
    for name in AREAS:
        for cmd in importlib.import_module(name).COMMANDS:
            registered[cmd.name] = name
    assert registered == LAZY_COMMANDS


def test_top_level_help_lists_every_command_with_its_help():
    r = CliRunner().invoke(cli, ["--help"], prog_name="septum")
    assert r.exit_code == 0, r.output
    listed = r.output.split("Commands:", 1)[1]
    lines = {ln.split()[0]: ln for ln in listed.splitlines() if ln.strip()}
    assert set(lines) == set(LAZY_COMMANDS)
    for name, module in LAZY_COMMANDS.items():
        cmd = next(c for c in importlib.import_module(module).COMMANDS if c.name == name)
        short = cmd.get_short_help_str(limit=45).rstrip(".")
        assert short and short in lines[name], (name, lines[name])


def test_each_command_help_works():
    for name in LAZY_COMMANDS:
        r = CliRunner().invoke(cli, [name, "--help"], prog_name="septum")
        assert r.exit_code == 0, (name, r.output)
        assert f"Usage: septum {name}" in r.output


def test_unknown_command_is_a_usage_error():
    r = CliRunner().invoke(cli, ["chek"], prog_name="septum")
    assert r.exit_code == 2
    assert "No such command" in r.output


def test_check_imports_only_the_analysis_area():
    probe = (
        "import sys\n"
        "from septum.cli import main\n"
        f"sys.argv = ['septum', 'check', {str(PUMP)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    loaded = set(r.stderr.split())
    assert "septum.cli.analysis" in loaded
    for unused in ("septum.cli.services", "septum.cli.compliance", "septum.cli.runtime", "septum.cli.gen",
                   "septum.cli.attack", "septum.services", "septum.runtime", "cryptography", "jinja2",
                   "septum.analysis.diff", "septum.knowledge.osv",
                   # only for a mistake's hint, a JSON output or the rules folder scan (issue 16)
                   "difflib", "json", "pkgutil"):
        assert unused not in loaded, unused
