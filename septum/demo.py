"""`make demo`: the reference device story, end to end, printed step by step.

Each step prints what it did and whether the device behaved; the demo exits 1 if any step did not, and 2
(saying how to install it) when the reference pump, package ``septum-pump``, is not installed: it is found
through the ``septum.devices`` entry point (septum/device_packages.py), not in the checkout.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from septum.analysis import check
from septum.device_packages import device_package
from septum.errors import SeptumError
from septum.model import ModelError, load

ROOT = Path(__file__).resolve().parents[1]
FLAWED = ROOT / "examples" / "flawed"

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


def _shown(path: Path) -> Path:
    """A path as the user sees it: relative to the checkout when it is in one (an installed pump is not)."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def step_check_pump() -> Step:
    pump = device_package().model_path()
    model, source = load(pump)
    report = check(model, source)
    counts = report.counts()
    console.print(f"[bold]septum check[/] {_shown(pump)}: {len(model.partitions)} partitions, "
                  f"{len(model.channels)} channels, {counts['error']} errors, {counts['warning']} warnings")
    return Step("reference pump model passes the analysis", not report.blocking,
                f"{counts['error']} errors, {counts['warning']} warnings")


def step_check_flawed() -> Step:
    path = FLAWED / "debug_console.yaml"
    model, source = load(path)
    report = check(model, source)
    console.print(f"\n[bold]septum check[/] {path.relative_to(ROOT)} (a debug console channel left in):")
    for f in report.findings:
        console.print(f"  [red]{f.rule}[/] {f.message}")
    rules = {f.rule for f in report.findings}
    return Step("a debug channel into pump control is caught", {"ISO001", "ISO002"} <= rules,
                ", ".join(sorted(rules)))


STEPS: list[Callable[[], Step]] = [step_check_pump, step_check_flawed]


def _log_row(row: tuple[str, bool, str]) -> None:
    name, ok, detail = row
    mark = "[green]ok  [/]" if ok else "[red]FAIL[/]"
    console.print(f"  {mark} {name}: {detail}")


def device_story() -> list[Step]:
    """The reference pump under the real runtime: therapy, PCA, faults, partition kills."""
    console.print("\n[bold]The reference pump under enforcement[/] (hardware simulated; hours run in seconds)")
    return [Step(name, ok, detail) for name, ok, detail in device_package().run_story(log=_log_row)]


def hospital_story() -> list[Step]:
    """A signed hospital order is only pre-filled; a clinician confirms it at the pump; unconfirmed ones expire."""
    console.print("\n[bold]Hospital order -> pre-filled at the pump -> clinician confirmation[/]")
    rows = device_package().run_hospital_story()
    for row in rows:
        _log_row(row)
    return [Step(name, ok, detail) for name, ok, detail in rows]


def attack_suite() -> list[Step]:
    """Every attack scenario against the running pump; one line each."""
    console.print("\n[bold]septum attack[/]: what an attacker tries, and what stops it")
    results = device_package().attack_suite().run_suite(None, on_result=lambda r: console.print("  " + r.line()))
    return [Step(f"attack {r.id}", r.ok, "stopped; therapy within limits; audit verified; recorded"
                 if r.ok else "; ".join(r.failures) or r.error or "failed") for r in results]


def sel4_story() -> list[Step]:
    """The same model as a seL4 image under QEMU: therapy, and the hostile network PD stopped by the kernel."""
    from septum.sel4.qemu import find_qemu
    from septum.sel4.sdk import sdk_unavailable_reason

    console.print("\n[bold]The same model on seL4[/] (a Microkit 1.2.6 image, booted under QEMU)")
    reason = sdk_unavailable_reason() or (None if find_qemu() else "qemu-system-aarch64 is not installed")
    if reason is not None:
        console.print(f"  skipped: no seL4 SDK here ({reason}); see docs/sel4.md")
        return []
    from septum.sel4 import scenarios

    steps = []
    for sid in ("therapy", "hostile-motor"):
        built = scenarios.build([sid])[sid]
        size = f"{built.image_bytes // 1024} KiB, {len(built.elfs)} PDs"
        console.print(f"  built {_shown(built.image)} ({size})")
        out = scenarios.run(sid, built.image)
        console.print("  " + out.line())
        steps.append(Step(f"seL4: {scenarios.SCENARIOS[sid].title}", out.ok,
                          "; ".join(out.evidence if out.ok else out.failures)[:200]))
    return steps


def main() -> int:
    try:  # every story but the flawed model's needs the reference pump: without it, say so once and stop
        device_package()
    except SeptumError as exc:
        console.print(f"[red]septum demo:[/] {exc}")
        return 2
    results: list[Step] = []
    for fn in STEPS:
        try:
            results.append(fn())
        except ModelError as exc:
            results.append(Step(fn.__name__, False, str(exc)))
    for story in (device_story, hospital_story, attack_suite, sel4_story):
        try:
            results += story()
        except Exception as exc:  # a device that did not start is a failed step, reported, not a traceback
            results.append(Step(story.__name__, False, f"{type(exc).__name__}: {exc}"))
    table = Table(title="What happened")
    table.add_column("step")
    table.add_column("result")
    table.add_column("detail")
    for r in results:
        table.add_row(r.name, "[green]ok[/]" if r.ok else "[red]FAILED[/]", r.detail)
    console.print()
    console.print(table)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
