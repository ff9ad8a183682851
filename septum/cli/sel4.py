"""``septum sel4 build|boot|scenarios``: the device model as a seL4 image, booted under QEMU.

Exit codes: 0 ok; 1 a refused model (its analysis has blocking findings: nothing is built) or a scenario that
failed; 2 misuse, no SDK / QEMU / cross compiler, or a build that failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

COMMANDS: list[click.Command] = []


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def _scenario_ids(ids: tuple[str, ...]) -> list[str]:
    from septum.sel4.scenarios import SCENARIOS

    unknown = [s for s in ids if s not in SCENARIOS]
    if unknown:
        _fail(f"unknown seL4 scenario(s): {', '.join(unknown)} (see septum sel4 scenarios --list)", 2)
    return list(ids) or list(SCENARIOS)


def _build(model: Path, out: Path | None, scenario: str | None, config: str):
    from septum.sel4.build import BuildError, ModelRefused, Variant, build_image
    from septum.sel4.scenarios import SCENARIOS
    from septum.sel4.sdk import SdkError

    variant = SCENARIOS[scenario].variant if scenario else Variant()
    try:
        return build_image(model, out, variant=variant, config=config, log=lambda s: click.echo(f"  {s}", err=True))
    except ModelRefused as exc:
        _fail(str(exc), 1)
    except (BuildError, SdkError) as exc:
        _fail(f"septum sel4 build: {exc}", 2)


@click.group("sel4")
def sel4() -> None:
    """Build the model as a seL4 Microkit image and boot it under QEMU (docs/sel4.md)."""


@sel4.command("build")
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Image folder (default build/sel4/images/<variant>).")
@click.option("--scenario", help="Build a scenario's variant (septum sel4 scenarios --list).")
@click.option("--config", type=click.Choice(["debug", "release"]), default="debug", show_default=True,
              help="SDK config; only debug prints on the serial line.")
def build_cmd(model: Path | None, out: Path | None, scenario: str | None, config: str) -> None:
    """Analyse MODEL (default: the reference pump), generate, compile every PD and run the Microkit tool."""
    from septum.sel4.build import PUMP_MODEL

    if scenario:
        _scenario_ids((scenario,))
    built = _build(model or PUMP_MODEL, out, scenario, config)
    for note in built.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{built.image} ({built.image_bytes} bytes); system {built.system}")
    click.echo(f"{'PD':<16} {'ELF bytes':>10} {'loaded bytes':>13}  stand-in")
    for name, size in built.sizes.items():
        click.echo(f"{name:<16} {size.elf_bytes:>10} {size.load_bytes:>13}  {'yes' if name in built.standins else ''}")


@sel4.command("boot")
@click.argument("image", required=False, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--seconds", default=5.0, show_default=True, help="How long to show the serial line.")
@click.option("--until", "until", help="Stop at the first serial line containing this text (exit 1 if it never comes).")
@click.option("--icount/--real-time", default=True, show_default=True,
              help="Guest clock from QEMU's instruction counter (independent of host load) or the host clock.")
def boot_cmd(image: Path | None, seconds: float, until: str | None, icount: bool) -> None:
    """Boot IMAGE (default: the last `septum sel4 build` of the pump) and print its serial line; QEMU is ended."""
    from septum.sel4.build import ROOT
    from septum.sel4.qemu import Boot, QemuError
    from septum.sel4.scenarios import ICOUNT_SHIFT

    image = image or ROOT / "build" / "sel4" / "images" / "default" / "loader.img"
    if not image.is_file():
        _fail(f"{image}: no image; run `septum sel4 build` first", 2)
    try:
        with Boot(image, icount_shift=ICOUNT_SHIFT if icount else None) as boot:
            if until:
                boot.wait_for(until, seconds)
            else:
                boot.collect(seconds)
            for line in boot.lines:
                click.echo(line.text)
    except QemuError as exc:
        _fail(f"septum sel4 boot: {exc}", 1 if until else 2)


@sel4.command("scenarios")
@click.option("--list", "list_", is_flag=True, help="List the scenarios and exit.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per scenario.")
@click.argument("ids", nargs=-1)
def scenarios_cmd(list_: bool, as_json: bool, ids: tuple[str, ...]) -> None:
    """Build and boot each scenario (default: all) and check its serial line; one line each."""
    from septum.sel4.scenarios import SCENARIOS

    if list_:
        for sc in SCENARIOS.values():
            click.echo(f"{sc.id:<24} {sc.title}\n{'':<24} tries: {sc.tries}\n{'':<24} stopped by: {sc.stops}")
        return
    results = run_scenarios(_scenario_ids(ids), as_json)
    failed = [r.id for r in results if not r.ok]
    if not as_json:
        click.echo(f"{len(results) - len(failed)}/{len(results)} seL4 scenarios passed"
                   + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


def run_scenarios(ids: list[str], as_json: bool = False) -> list:
    """Build and run the given scenarios, printing one line (or JSON object) each; used by ``septum attack``."""
    from septum.sel4 import scenarios
    from septum.sel4.build import BuildError, ModelRefused
    from septum.sel4.qemu import QemuError
    from septum.sel4.sdk import SdkError

    results = []
    for sid in ids:
        try:
            image = scenarios.build([sid])[sid].image
            res = scenarios.run(sid, image)
        except (ModelRefused, BuildError, SdkError, QemuError) as exc:
            res = scenarios.Outcome(sid, failures=[f"could not build or boot: {str(exc).splitlines()[0]}"])
        click.echo(json.dumps(res.as_dict()) if as_json else res.line())
        results.append(res)
    return results


def attack_ids() -> list[str]:
    """The seL4 scenarios ``septum attack`` offers (the hostile network PD builds), as it names them."""
    from septum.sel4.scenarios import SCENARIOS

    return [f"sel4-{sc.id}" for sc in SCENARIOS.values() if sc.attack]


def list_attack_scenarios() -> None:
    from septum.sel4.scenarios import SCENARIOS
    from septum.sel4.sdk import sdk_unavailable_reason

    reason = sdk_unavailable_reason()
    for sc in (s for s in SCENARIOS.values() if s.attack):
        click.echo(f"{'sel4-' + sc.id:<24} {sc.title} (seL4 under QEMU"
                   + (f"; not available here: {reason}" if reason else "") + ")")
        click.echo(f"{'':<24} tries: {sc.tries}\n{'':<24} stopped by: {sc.stops}")


def run_attack_scenarios(names: list[str], as_json: bool, explicit: bool) -> list:
    """For ``septum attack``: run the named seL4 scenarios when an SDK and QEMU are here; else say why not.

    Without them the scenarios are skipped with a printed line, or, when the user named them, reported as
    failures (asking for something that cannot run is not a pass).
    """
    from septum.sel4.qemu import find_qemu
    from septum.sel4.scenarios import Outcome
    from septum.sel4.sdk import sdk_unavailable_reason

    if not names:
        return []
    reason = sdk_unavailable_reason() or (None if find_qemu() else "qemu-system-aarch64 not installed")
    if reason is not None:
        click.echo(f"seL4 scenarios skipped: {reason}", err=True)
        if not explicit:
            return []
        return [Outcome(n.removeprefix("sel4-"), failures=[f"cannot run: {reason}"]) for n in names]
    return run_scenarios([n.removeprefix("sel4-") for n in names], as_json)


COMMANDS = [sel4]
