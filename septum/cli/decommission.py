"""``septum decommission``: export a final audit anchor, then erase the device's secrets and records."""

from __future__ import annotations

from pathlib import Path

import click

from septum.services.decommission import DecommissionError, Report, decommission, kind_of

CONFIRM = "--confirm-erase"


class UserError(click.ClickException):
    exit_code = 2


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def _preview(roots: list[Path]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for root in roots:
        for p in (root.rglob("*") if root.is_dir() else []):
            if p.is_file() and not p.is_symlink():
                n, size = out.get(kind_of(p), (0, 0))
                out[kind_of(p)] = (n + 1, size + p.stat().st_size)
    return out


def _print_report(report: Report) -> None:
    if report.anchor is not None:
        click.echo(f"{report.anchor_note}; anchor written to {report.anchor_path} (keep it off the device)")
    else:
        click.echo(f"no final audit anchor: {report.anchor_note}")
    click.echo("erased (overwritten with random bytes, then removed):")
    for kind, (n, size) in sorted(report.by_kind().items()):
        click.echo(f"  {kind}: {n} file(s), {_size(size)}")
    for e in report.erased:
        click.echo(f"    {e.path}")
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)


@click.command("decommission")
@click.argument("state_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--anchor-out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the final audit anchor (outside everything erased).")
@click.option("--provisioning", "extra", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A provisioning folder of this device to erase too (repeatable).")
@click.option("--device-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The device key file: erased last (crypto-erase of every sealed copy).")
@click.option("--audit-pub", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The audit public key (default: audit.pub beside the log).")
@click.option("--without-anchor", is_flag=True, help="Erase even when no anchor can be made (a damaged log).")
@click.option("--confirm-erase", "confirm", is_flag=True, help="Required: this cannot be undone.")
def decommission_command(state_dir: Path, anchor_out: Path, extra: tuple[Path, ...], device_key: Path | None,
                         audit_pub: Path | None, without_anchor: bool, confirm: bool) -> None:
    """Decommission a stopped device: anchor its audit log, then erase network settings, keys, credentials,
    the drug library, logs and the data disk images in STATE_DIR (the folder given to `septum run
    --state-dir`)."""
    if not (state_dir / "data").is_dir():
        raise UserError(f"{state_dir}: not a Septum device state folder (no data/ folder)")
    if not confirm:
        click.echo(f"would erase, in {state_dir}" + "".join(f" and {e}" for e in extra) + ":")
        for kind, (n, size) in sorted(_preview([state_dir, *extra]).items()):
            click.echo(f"  {kind}: {n} file(s), {_size(size)}")
        raise UserError(f"refusing to erase without {CONFIRM} (nothing was erased)")
    try:
        report = decommission(state_dir, anchor_out, extra=extra, device_key=device_key, audit_pub=audit_pub,
                              without_anchor=without_anchor)
    except DecommissionError as exc:
        raise UserError(str(exc)) from None
    _print_report(report)
    if report.problems:
        raise click.ClickException(f"{len(report.problems)} item(s) could not be erased (listed above)")


COMMANDS = [decommission_command]
