"""`septum` commands for the gen area: ``gen microkit``, ``gen camkes`` and ``validate-sdf``.

Exit codes: 0 ok; 1 validation errors, a refused model (blocking findings) or output that differs
under ``--check``; 2 misuse or unreadable input (including a model that does not load).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from septum.model import Model, ModelError, SourceMap, load

if TYPE_CHECKING:
    from septum.gen.layout import AddressPlan

COMMANDS: list[click.Command] = []


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    raise SystemExit(code)


def _load_model(path: str) -> tuple[Model, SourceMap]:
    try:
        return load(path)
    except ModelError as exc:
        _fail(str(exc), 2)
    except OSError as exc:
        _fail(f"{path}: error: cannot read model: {exc.strerror or exc}", 2)
    raise AssertionError("unreachable")


def _refuse_if_blocking(model: Model, source: SourceMap, force: bool) -> None:
    """The system that runs is the system that was analysed: no output for a model with blocking findings."""
    from septum.analysis import check

    blocking = check(model, source).blocking
    if not blocking:
        return
    for f in blocking:
        where = ", ".join(str(e) for e in f.elements)
        click.echo(f"error: {f.rule}: {f.message} ({where})", err=True)
    if force:
        click.echo(f"warning: generating anyway (--force) despite {len(blocking)} blocking finding(s)", err=True)
        return
    _fail(f"refusing to generate: the model has {len(blocking)} blocking finding(s); fix or waive them "
          "(or pass --force to generate an unanalysed system)", 1)


def _address_plan(path: str | None) -> AddressPlan | None:
    from septum.gen.layout import load_address_plan

    if path is None:
        return None
    try:
        return load_address_plan(path)
    except ValueError as exc:
        _fail(str(exc), 2)
    raise AssertionError("unreachable")


def _write_or_check(files: dict[str, str], out: Path, check: bool) -> None:
    if check:
        differ = [rel for rel, text in sorted(files.items())
                  if not (out / rel).is_file() or (out / rel).read_text(encoding="utf-8") != text]
        for rel in differ:
            click.echo(f"{out / rel}: differs from what the model generates", err=True)
        if differ:
            _fail(f"{len(differ)} generated file(s) are out of date; regenerate them", 1)
        click.echo(f"{out}: {len(files)} file(s) up to date")
        return
    for rel, text in sorted(files.items()):
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {len(files)} file(s) to {out}")


def _generate(model_path: str, out: str, force: bool, plan_path: str | None, check: bool,
              producer: Callable[..., dict[str, str]]) -> None:
    from septum.gen.layout import MappingError
    from septum.gen.microkit import GenerationError

    model, source = _load_model(model_path)
    _refuse_if_blocking(model, source, force)
    plan = _address_plan(plan_path)
    try:
        files = producer(model, source, model_file=Path(model_path).name, address_plan=plan)
    except MappingError as exc:
        _fail(f"{exc}\nthe model cannot be mapped onto seL4", 1)
    except GenerationError as exc:
        _fail(f"internal error: {exc}", 1)
    try:
        _write_or_check(files, Path(out), check)
    except OSError as exc:
        _fail(f"{out}: error: cannot write output: {exc.strerror or exc}", 2)


_model_arg = click.argument("model", type=click.Path(dir_okay=False))
_out_opt = click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
                        help="Directory to write into (created if missing).")
_force_opt = click.option("--force", is_flag=True, help="Generate even if the analysis has blocking findings.")
_plan_opt = click.option("--address-plan", "plan", type=click.Path(dir_okay=False),
                         help="YAML file with device physical addresses, sizes and IRQs (see docs/generators.md).")
_check_opt = click.option("--check", is_flag=True,
                          help="Write nothing; exit 1 if the files in the output directory differ from a fresh run.")
_dialect_opt = click.option("--microkit", "dialect", type=click.Choice(["current", "1.2"]), default="current",
                            show_default=True,
                            help="Microkit version to target: current (2.x, domain schedule) or 1.2 (Microkit 1.2.6: "
                                 "no domain scheduler, time isolation by MCS budget/period only).")


@click.group("gen")
def gen() -> None:
    """Generate seL4 configurations (Microkit, CAmkES) from the model."""


@gen.command("microkit")
@_model_arg
@_out_opt
@_force_opt
@_plan_opt
@_check_opt
@_dialect_opt
def microkit_cmd(model: str, out: str, force: bool, plan: str | None, check: bool, dialect: str) -> None:
    """A Microkit system description, one C header per protection domain, and a mapping report."""
    from septum.gen import microkit

    def produce(*args: object, **kwargs: object) -> dict[str, str]:
        generated = microkit.generate(*args, **kwargs, dialect=dialect)  # type: ignore[arg-type]
        for note in generated.notes:
            click.echo(f"note: {note}", err=True)
        return generated.files

    _generate(model, out, force, plan, check, produce)


@gen.command("camkes")
@_model_arg
@_out_opt
@_force_opt
@_plan_opt
@_check_opt
def camkes_cmd(model: str, out: str, force: bool, plan: str | None, check: bool) -> None:
    """A CAmkES assembly: a component per partition, explicit access rights on every dataport."""
    from septum.gen import camkes

    _generate(model, out, force, plan, check, camkes.generate)


@gen.command("c-channels")
@_model_arg
@_out_opt
@_force_opt
@_plan_opt
@_check_opt
def c_channels_cmd(model: str, out: str, force: bool, plan: str | None, check: bool) -> None:
    """Typed C channels: message structs, a checked ring per channel, send/recv (header-only, freestanding)."""
    from septum.sel4 import c_channels

    _generate(model, out, force, plan, check, c_channels.generate)


@click.command("validate-sdf")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="Also prove the file grants exactly this model's channels (round trip).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@_dialect_opt
@click.option("--max-domains", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Scheduling domains the kernel is built for (seL4's KernelNumDomains), the monitor's domain 0 "
                   "included.")
@click.option("--arch", type=click.Choice(["aarch64", "riscv64", "x86_64"]), default="aarch64", show_default=True,
              help="Architecture of the kernel build (interrupt forms, I/O ports, address-space top).")
@click.option("--cores", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Cores of the kernel build (a PD's 'cpu'; the domain scheduler needs one core).")
def validate_sdf(file: str, model_path: str | None, strict: bool, dialect: str, max_domains: int, arch: str,
                 cores: int) -> None:
    """Validate a Microkit system description file (errors name file:line:col)."""
    from septum.gen.microkit import _reverse_notifications
    from septum.gen.roundtrip import compare
    from septum.gen.sdf_model import Target
    from septum.gen.sdf_validate import validate_file

    target = Target(arch=arch, cores=cores, max_domains=max_domains)  # type: ignore[arg-type]
    try:
        system, diags = validate_file(file, dialect, target)  # type: ignore[arg-type]
    except OSError as exc:
        _fail(f"{file}: error: cannot read: {exc.strerror or exc}", 2)
    for d in diags:
        click.echo(str(d), err=d.severity == "error")
    n_err = sum(d.severity == "error" for d in diags)
    n_warn = len(diags) - n_err
    problems: list[str] = []
    if model_path is not None and system is not None and n_err == 0:
        model, _source = _load_model(model_path)
        problems = compare(model, system)
        if dialect == "1.2":
            # Microkit 1.2 cannot make a channel's notification one-way: a warning, not an error.
            problems, widenings = _reverse_notifications(model, system, problems)
            for w in widenings:
                click.echo(f"{file}: warning: {w} (Microkit 1.2 lets both channel ends notify) [roundtrip]")
            n_warn += len(widenings)
        for p in problems:
            click.echo(f"{file}: error: {p} [roundtrip]", err=True)
    if n_err or problems or (strict and n_warn):
        _fail(f"{file}: {n_err + len(problems)} error(s), {n_warn} warning(s)", 1)
    click.echo(f"{file}: valid ({n_warn} warning(s))")


COMMANDS = [gen, validate_sdf]
