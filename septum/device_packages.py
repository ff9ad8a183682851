"""Device packages found through the ``septum.devices`` entry point group, not through the source tree.

A device package (the reference pump, ``septum-pump`` in ``examples/infusion_pump``) declares::

    [project.entry-points."septum.devices"]
    infusion_pump = "septum_pump.device_info"

and the module it names offers what ``septum attack`` and the demo use (``attack_suite()``, ``model_path()``,
``run_story()``...). Looking it up by entry point means the installed ``septum`` works wherever the device
package is installed (a wheel in a fresh venv, an editable install from a checkout) and says so plainly
when it is not, instead of reaching into a checkout's ``examples/`` folder.
"""

from __future__ import annotations

import importlib.metadata
from types import ModuleType

from septum.errors import SeptumError

GROUP = "septum.devices"
REFERENCE_PUMP = "infusion_pump"
INSTALL_HINT = {
    REFERENCE_PUMP: "pip install examples/hospital_client examples/infusion_pump  (from a Septum checkout; "
                    "`make` does this for the project's .venv)",
}


def device_package(name: str = REFERENCE_PUMP) -> ModuleType:
    """The module a device package registered under ``name``; a SeptumError saying how to install it if absent."""
    found = [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.name == name]
    hint = INSTALL_HINT.get(name, "install the package that provides it")
    if not found:
        what = "the reference pump" if name == REFERENCE_PUMP else f"device {name!r}"
        raise SeptumError(f"{what} is not installed (no {name!r} entry point in {GROUP}): {hint}")
    if len(found) > 1:  # two distributions claim the name: refuse rather than pick one by install order
        owners = ", ".join(sorted(f"{ep.value} ({ep.dist.name if ep.dist else '?'})" for ep in found))
        raise SeptumError(f"device {name!r} is registered more than once in {GROUP}: {owners}")
    try:
        loaded = found[0].load()
    except ImportError as exc:  # registered, but its code (or a dependency of it) is missing
        raise SeptumError(f"device {name!r} is registered ({found[0].value}) but cannot be imported: {exc}; "
                          f"reinstall it: {hint}") from exc
    if not isinstance(loaded, ModuleType):
        raise SeptumError(f"device {name!r}: entry point {found[0].value} names {type(loaded).__name__}, not a module")
    return loaded
