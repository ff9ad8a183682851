"""``septum attack [--list] [--json] [SCENARIO...]``: attack the running reference pump and show what stopped it.

Exit codes: 0 every scenario's attack failed and the device stayed safe; 1 at least one scenario failed;
2 misuse (unknown scenario), the reference pump (package ``septum-pump``) not installed, or the device could
not start. The suite is found through the ``septum.devices`` entry point (septum/device_packages.py).
"""

from __future__ import annotations

import json
import sys
from types import ModuleType

import click

from septum.device_packages import device_package
from septum.errors import SeptumError


def _suite() -> ModuleType:
    """The reference pump's attack suite, from the installed ``septum-pump`` (entry point ``septum.devices``)."""
    try:
        suite: ModuleType = device_package().attack_suite()
    except SeptumError as exc:  # not installed, or registered but not importable: say which and how to fix it
        click.echo(f"septum attack: {exc}", err=True)
        sys.exit(2)
    except ImportError as exc:  # installed, but part of the suite (or a dependency of it) is missing
        click.echo(f"septum attack: the reference pump's attack suite cannot be imported: {exc}; "
                   "reinstall septum-pump (pip install examples/hospital_client examples/infusion_pump)", err=True)
        sys.exit(2)
    return suite


@click.command("attack")
@click.option("--list", "list_", is_flag=True, help="List the scenarios and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per scenario.")
@click.option("--time-scale", default=10.0, show_default=True, help="Device time scale for the run.")
@click.argument("scenarios", nargs=-1)
def attack(list_: bool, as_json: bool, time_scale: float, scenarios: tuple[str, ...]) -> None:
    """Run the attack suite against the reference pump (needs root: the runtime's real sandbox)."""
    from .sel4 import attack_ids, list_attack_scenarios, run_attack_scenarios

    suite = _suite()
    if list_:
        for sc in suite.SCENARIOS.values():
            click.echo(f"{sc.id:<24} {sc.title}\n{'':<24} tries: {sc.tries}\n{'':<24} stopped by: {sc.stops}")
        list_attack_scenarios()
        return
    sel4_ids = attack_ids()  # the seL4 image's hostile network PD, when an SDK is here (docs/sel4.md)
    linux, sel4 = [s for s in scenarios if s in suite.SCENARIOS], [s for s in scenarios if s in sel4_ids]
    unknown = [s for s in scenarios if s not in suite.SCENARIOS and s not in sel4_ids]
    if unknown:
        click.echo(f"unknown scenario(s): {', '.join(unknown)} (see septum attack --list)", err=True)
        sys.exit(2)

    def show(res) -> None:
        click.echo(json.dumps(res.as_dict()) if as_json else res.line())

    results = []
    if linux or not scenarios:
        try:
            results = suite.run_suite(linux or None, on_result=show, time_scale=time_scale)
        except Exception as exc:  # the device never came up: say why, no traceback
            click.echo(f"septum attack: the device could not be started: {exc}", err=True)
            sys.exit(2)
    results += run_attack_scenarios(sel4 if scenarios else sel4_ids, as_json, explicit=bool(sel4))
    failed = [getattr(r, "name", r.id) for r in results if not r.ok]
    if not as_json:
        audited = ", audit log verified, event recorded" if linux or not scenarios else ""  # seL4: no audit log
        click.echo(f"{len(results) - len(failed)}/{len(results)} scenarios: attack stopped, therapy within limits"
                   f"{audited}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


COMMANDS = [attack]
