"""`septum` commands for the runtime area: ``septum run``."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

COMMANDS: list[click.Command] = []

# exit codes: 0 clean shutdown, 1 refused (findings) or a partition failure, 2 model load error / misuse


@click.command("run")
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--explain", is_flag=True, help="Print what is enforced per partition and exit.")
@click.option("--allow-debug", is_flag=True,
              help="Run a debug-profile model despite error-level findings (logged loudly).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for data dirs, logs and events.jsonl (default /tmp/septum-run-*).")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Device time runs this many times faster than real time.")
@click.option("--ready-timeout", type=float, default=10.0, show_default=True)
@click.option("--follow/--no-follow", default=None,
              help="Show what the device does while it runs: a live view on a terminal, one line per event "
                   "otherwise. Default: on when standard output is a terminal.")
def run_command(model_path: Path, explain: bool, allow_debug: bool, state_dir: Path | None,
                time_scale: float, ready_timeout: float, follow: bool | None) -> None:
    """Start the device described by MODEL, each partition in its own sandbox."""
    from septum.model import ModelError, load
    from septum.runtime.explain import explain as explain_text
    from septum.runtime.gate import RefusedToRun, describe
    from septum.runtime.plan import SetupError
    from septum.runtime.supervisor import PartitionFailed, Supervisor

    if not time_scale > 0:
        click.echo("septum run: --time-scale must be positive", err=True)
        sys.exit(2)
    try:
        model, source = load(model_path)
    except ModelError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"septum run: cannot read {model_path}: {exc.strerror}", err=True)
        sys.exit(2)
    model_dir = model_path.resolve().parent
    if explain:
        try:
            text, _ = explain_text(model, model_dir, state_dir or Path("<state-dir>"))
        except SetupError as exc:
            click.echo(f"septum run: {exc}", err=True)
            sys.exit(2)
        click.echo(text)
        return
    try:
        sup = Supervisor(model, source, model_dir=model_dir, state_dir=state_dir, time_scale=time_scale,
                         allow_debug=allow_debug, ready_timeout=ready_timeout)
    except (OSError, ValueError) as exc:
        click.echo(f"septum run: {exc}", err=True)
        sys.exit(2)

    def show(ev: Any) -> None:
        if ev.severity in ("warning", "error", "critical") or ev.kind in ("device_ready", "stopped"):
            who = f" {ev.partition}" if ev.partition else ""
            loud = "!!! " if ev.severity == "critical" else ""
            click.echo(f"{loud}[{ev.severity}] {ev.kind}{who} {ev.fields}", err=True)

    if follow is None:
        follow = sys.stdout.isatty()
    view = None
    if follow:
        from septum.runtime.live_view import LiveView

        # the view shows every event itself; subscribed before start so start-up is in it
        view = LiveView(sup, model.partitions)
    else:
        sup.events.subscribe(show)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sup.start()
    except RefusedToRun as exc:
        if view is not None:
            view.close(final=False)
        click.echo(f"septum run: {exc}", err=True)
        for f in exc.findings:
            click.echo(f"  {describe(f)}", err=True)
        sys.exit(1)
    except SetupError as exc:
        if view is not None:
            view.close(final=False)
        click.echo(f"septum run: {exc}", err=True)
        sys.exit(2)
    click.echo(f"septum run: state directory {sup.state_dir}", err=True)
    try:
        if not sup.wait_ready(ready_timeout + 5):
            click.echo("septum run: the device did not become ready in time", err=True)
            sup.stop()
            if view is not None:
                view.close()
            sys.exit(1)
    except PartitionFailed as exc:
        click.echo(f"septum run: {exc}", err=True)
        sup.stop()
        if view is not None:
            view.close()
        sys.exit(1)
    if view is not None:
        view.follow(lambda timeout: stop.is_set() or sup.wait(timeout))
    else:
        while not stop.is_set() and not sup.wait(0.2):
            pass
    sup.stop()
    if view is not None:
        view.close()
    sys.exit(1 if sup.failures else 0)


COMMANDS.append(run_command)
