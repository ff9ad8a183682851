"""What the reference pump offers Septum through the ``septum.devices`` entry point (``infusion_pump``).

``septum attack`` and ``septum demo`` find this module by entry point (``septum.device_packages``), so they
work wherever ``septum-pump`` is installed. The model and the drug library are package data
(``septum_pump/data/``; in a checkout those are links to ``examples/infusion_pump/model.yaml`` and
``drug_library.yaml``, the files one edits). ``septum-pump model`` prints the model's path for the shell::

    septum check "$(septum-pump model)"
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.resources import as_file, files
from pathlib import Path
from types import ModuleType
from typing import Any

NAME = "infusion_pump"
TITLE = "the reference PCA / infusion pump"


def _data(name: str) -> Path:
    # A wheel or an editable install both leave the package on the file system: the runtime loads the model
    # by path (its folder is the model's folder), so a zipped install is refused rather than extracted away.
    with as_file(files("septum_pump") / "data" / name) as path:
        resolved = Path(path).resolve()  # in a checkout: the edited file, not the link beside the code
    if not resolved.is_file():
        raise FileNotFoundError(f"septum_pump/data/{name} is missing: reinstall septum-pump")
    return resolved


def model_path() -> Path:
    """The pump's Septum model (model.yaml)."""
    return _data("model.yaml")


def drug_library_path() -> Path:
    """The drug library the pump is provisioned with (drug_library.yaml)."""
    return _data("drug_library.yaml")


def attack_suite() -> ModuleType:
    """The attack scenarios (``SCENARIOS``, ``run_suite``) that ``septum attack`` runs."""
    from . import attacks

    return attacks


def run_story(log: Callable[[tuple[str, bool, str]], None] | None = None) -> list[tuple[str, bool, str]]:
    """The demo's device story under the real runtime."""
    from .story import run_story as story

    return story(log=log)


def run_hospital_story() -> list[tuple[str, bool, str]]:
    """The demo's hospital order story."""
    from .story_hospital import run_hospital_story as story

    return story()


def main(argv: list[str] | None = None) -> int:
    """``septum-pump model|library``: print where the installed pump's files are."""
    args = sys.argv[1:] if argv is None else argv
    paths: dict[str, Callable[[], Any]] = {"model": model_path, "library": drug_library_path}
    if len(args) != 1 or args[0] not in paths:
        print("usage: septum-pump model|library  (prints the path of the pump's model.yaml or drug_library.yaml)",
              file=sys.stderr)
        return 2
    try:
        print(paths[args[0]]())
    except FileNotFoundError as exc:
        print(f"septum-pump: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
