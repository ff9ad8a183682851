"""Septum and the example packages import each other as installed packages, never by editing ``sys.path``.

Before issue 17, ``septum attack``, the demo and the seL4 build put ``examples/infusion_pump`` on ``sys.path``
(so they worked only from a checkout) and the pump's attack suite and the hospital client reached into each
other's folders the same way. The one legitimate edit is the partition boot, which sets the import path the
plan computed for the sandboxed interpreter.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "septum", ROOT / "examples" / "infusion_pump" / "septum_pump",
            ROOT / "examples" / "hospital_client" / "hospital_client"]
ALLOWED = {ROOT / "septum" / "runtime" / "boot.py"}  # sys.path[:0] = cfg.import_path (the plan's, in the sandbox)
MUTATORS = {"insert", "append", "extend", "remove", "pop", "clear"}


def _is_sys_path(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
            and node.value.id == "sys")


def sys_path_edits(path: Path) -> list[int]:
    """Line numbers where ``path`` changes ``sys.path`` (a call to a mutating method, or an assignment)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS
                and _is_sys_path(node.func.value)):
            lines.append(node.lineno)
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign):
            targets = [node.target]
        for t in targets:
            if _is_sys_path(t) or (isinstance(t, ast.Subscript) and _is_sys_path(t.value)):
                lines.append(node.lineno)
    return sorted(lines)


def test_no_package_edits_sys_path() -> None:
    found = [f"{p.relative_to(ROOT)}:{line}" for pkg in PACKAGES for p in sorted(pkg.rglob("*.py"))
             if p not in ALLOWED for line in sys_path_edits(p)]
    assert found == [], "import the installed package instead of editing sys.path"


def test_the_detector_sees_each_form(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import sys\nsys.path.insert(0, 'x')\nsys.path.append('y')\nsys.path[:0] = ['z']\n"
                   "sys.path += ['w']\nprint(sys.path[0])\n")
    assert sys_path_edits(src) == [2, 3, 4, 5]
    assert sys_path_edits(ROOT / "septum" / "runtime" / "boot.py"), "the allowed edit is still where it was"
