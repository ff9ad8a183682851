"""`septum` commands for the analysis area: check, rules, explain, diff, schema.

Exit codes (docs/cli.md): 0 nothing to report, 1 error-level findings (check) or a change that adds to the
attack surface (diff), 2 the model could not be loaded or the command was misused. Click's own usage
errors already exit 2, which keeps "misuse" and "bad model" on the same code.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from septum.analysis import Rule, all_rules, check, get_rule
from septum.analysis.registry import FAMILIES
from septum.model import Model, ModelError, json_schema, load
from septum.model.source import SourceMap
from septum.report import FORMATS, render

EXIT_LOAD = 2


def _close(word: str, known: list[str], *, n: int, cutoff: float = 0.6) -> list[str]:
    # difflib and json are imported where used: `septum check` on a good model needs neither
    import difflib

    return difflib.get_close_matches(word, known, n=n, cutoff=cutoff)


def _fail(message: str) -> NoReturn:
    click.echo(f"septum: error: {message}", err=True)
    sys.exit(EXIT_LOAD)


def _load(path: str) -> tuple[Model, SourceMap]:
    try:
        return load(path)
    except ModelError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        sys.exit(EXIT_LOAD)


def _parse_today(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date of the form YYYY-MM-DD") from None


def _parse_select(value: str | None) -> list[str] | None:
    """Comma list of rule ids or families; an unknown one is a usage error with suggestions."""
    if value is None:
        return None
    known = {r.id for r in all_rules()} | set(FAMILIES)
    wanted = [v.strip().upper() for v in value.split(",") if v.strip()]
    if not wanted:
        raise click.BadParameter("give at least one rule id or family", param_hint="--select")
    for w in wanted:
        if w not in known:
            close = _close(w, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `septum rules` lists them"
            raise click.BadParameter(f"unknown rule or family '{w}'{hint}", param_hint="--select")
    return wanted


def _use_color(output: Path | None) -> bool:
    # colour only for a person at a terminal; NO_COLOR (https://no-color.org) always wins
    return output is None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror}")


_format_opt = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Output format.")
_output_opt = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write the report to FILE instead of standard output.")
_today_opt = click.option(
    "--today", callback=_parse_today, metavar="YYYY-MM-DD", default=None,
    help="Evaluate waiver expiry as of this date (for reproducible reports). Default: today.")


@click.command("check")
@click.argument("model", type=click.Path(dir_okay=False))
@_format_opt
@_output_opt
@click.option("--select", metavar="RULES", default=None,
              help="Comma-separated rule ids or families to run (e.g. ISO,MED002). Default: all.")
@_today_opt
@click.option("--base", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory SARIF file URIs are relative to. Default: the working directory.")
@click.option("--osv", "osv_path", type=click.Path(path_type=Path), default=None,
              help="Offline OSV records (a file, folder or .zip export) for VULN001.")
def check_cmd(
    model: str, fmt: str, output: Path | None, select: str | None, today: dt.date | None, base: Path | None,
    osv_path: Path | None,
) -> None:
    """Analyse MODEL and report findings.

    Exit 0: no error-level findings; 1: error-level findings (not waived); 2: the model could not be
    loaded or the command was misused.
    """
    rules = _parse_select(select)
    m, source = _load(model)
    options: dict[str, object] = {}
    if osv_path is not None:
        from septum.knowledge.osv import OsvError, load_osv

        try:
            options["osv"] = load_osv(osv_path)
        except OsvError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
    report = check(m, source, today=today, select=rules, options=options)
    _emit(render(report, fmt, base=base, color=_use_color(output)), output)
    if output is not None:
        c = report.counts()
        click.echo(f"wrote {fmt} report to {output}: {c['error']} errors, {c['warning']} warnings, "
                   f"{c['note']} notes, {c['waived']} waived", err=True)
    sys.exit(report.exit_code)


def _rules_table(rules: list[Rule]) -> str:
    # plain aligned columns: greppable, no trailing padding, same on a terminal and in a pipe
    w_id = max([len("ID"), *(len(r.id) for r in rules)])
    w_sev = max([len("SEVERITY"), *(len(r.severity) for r in rules)])
    lines = [f"{'ID':<{w_id}}  {'SEVERITY':<{w_sev}}  TITLE"]
    lines += [f"{r.id:<{w_id}}  {r.severity:<{w_sev}}  {r.title}" for r in rules]
    return "\n".join(lines) + "\n"


@click.command("rules")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rules_cmd(fmt: str) -> None:
    """List every analysis rule: id, severity and title."""
    rules = all_rules()
    if fmt == "json":
        data = [{"id": r.id, "family": r.family, "severity": r.severity, "title": r.title,
                 "rationale": r.rationale, "fix": r.fix} for r in rules]
        import json

        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(_rules_table(rules), nl=False)


@click.command("explain")
@click.argument("rule_id", metavar="RULE")
def explain_cmd(rule_id: str) -> None:
    """Explain RULE: its title, severity, rationale and fix. A family name (ISO) lists its rules."""
    rule = get_rule(rule_id)
    if rule is None:
        fam = rule_id.strip().upper()
        if fam in FAMILIES:
            click.echo(f"{fam}: {FAMILIES[fam]}")
            for r in all_rules():
                if r.family == fam:
                    click.echo(f"  {r.id}  {r.severity:<7}  {r.title}")
            return
        ids = [r.id for r in all_rules()]
        close = _close(rule_id.upper(), ids, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `septum rules` lists every rule"
        _fail(f"unknown rule '{rule_id}'{hint}")
    click.echo(f"{rule.id}: {rule.title}")
    click.echo(f"severity: {rule.severity}    family: {rule.family} ({FAMILIES.get(rule.family, '')})")
    click.echo("")
    click.echo("Why it matters:")
    click.echo(click.wrap_text(rule.rationale, width=100, initial_indent="  ", subsequent_indent="  "))
    click.echo("")
    click.echo("How to fix it:")
    click.echo(click.wrap_text(rule.fix, width=100, initial_indent="  ", subsequent_indent="  "))


@click.command("diff")
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
@_output_opt
@_today_opt
def diff_cmd(old: str, new: str, fmt: str, output: Path | None, today: dt.date | None) -> None:
    """Report what changing OLD into NEW adds to the attack surface.

    Exit 0: nothing added; 1: the change adds to the attack surface (review it); 2: a model could not be
    loaded or the command was misused.
    """
    from septum.analysis.diff import diff
    from septum.report.json_report import render_diff_json
    from septum.report.text import render_diff_text

    # load both before exiting so every error in either file is shown at once
    loaded: list[tuple[Model, SourceMap]] = []
    failed = False
    for path in (old, new):
        try:
            loaded.append(load(path))
        except ModelError as exc:
            failed = True
            for issue in exc.issues:
                click.echo(str(issue), err=True)
    if failed:
        sys.exit(EXIT_LOAD)
    (om, osrc), (nm, nsrc) = loaded
    d = diff(om, nm, today=today)
    if fmt == "json":
        text = render_diff_json(d, om, osrc, nm, nsrc)
    else:
        text = render_diff_text(d, om, osrc, nm, nsrc, color=_use_color(output))
    _emit(text, output)
    sys.exit(d.exit_code)


@click.command("schema")
@_output_opt
def schema_cmd(output: Path | None) -> None:
    """Print the JSON Schema of the model file (for editors and validators)."""
    import json

    _emit(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n", output)


COMMANDS: list[click.Command] = [check_cmd, rules_cmd, explain_cmd, diff_cmd, schema_cmd]
