"""`septum` commands for the compliance area: report, sbom, threats, mds2, vulns.

Thin wrappers over ``septum.compliance``. Every user error (model, OSV data, threat-rule file, output
path) is printed as one clear message and exits 2; nothing the user can cause ends in a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from septum.model import Model, ModelError, SourceMap, load
from septum.model.loader import iter_issue_lines

F = TypeVar("F", bound=Callable[..., Any])


class _UserError(Exception):
    pass


def _clean_errors(fn: F) -> F:
    """Turn the errors a user can cause into a message on stderr and exit status 2."""
    from septum.compliance.sbom import SbomError
    from septum.compliance.threat_rules import ThreatRuleError
    from septum.knowledge.osv import OsvError

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ModelError as e:
            for line in iter_issue_lines(e):
                click.echo(line, err=True)
        except (OsvError, ThreatRuleError, SbomError, _UserError) as e:
            click.echo(f"error: {e}", err=True)
        except OSError as e:
            click.echo(f"error: {e.filename or ''}: {e.strerror or e}", err=True)
        raise SystemExit(2)

    return run  # type: ignore[return-value]


def _load(path: str) -> tuple[Model, SourceMap]:
    p = Path(path)
    if not p.is_file():
        raise _UserError(f"{path}: no such model file")
    return load(p)


def _threat_files(paths: tuple[str, ...]) -> tuple[Any, ...]:
    from septum.compliance.threat_rules import load_threat_file

    return tuple(load_threat_file(p) for p in paths)


def _write(path: Path, text: str) -> None:
    if path.parent and not path.parent.exists():
        raise _UserError(f"{path.parent}: output folder does not exist")
    path.write_text(text, encoding="utf-8")


THREATS_OPT = click.option("--threats", "threat_paths", multiple=True, type=click.Path(),
                           help="Extra threat rules / decisions (YAML); may repeat.")


@click.command("report")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(), help="Folder to write into.")
@click.option("--osv", "osv_path", type=click.Path(), help="OSV records (file, folder or .zip) to match offline.")
@click.option("--format", "formats", default="html,md", show_default=True, help="Comma-separated: html, md.")
@THREATS_OPT
@_clean_errors
def report_cmd(model: str, out_dir: str, osv_path: str | None, formats: str, threat_paths: tuple[str, ...]) -> None:
    """Write the compliance report (HTML, Markdown, SBOM, MDS2 CSV) for MODEL into a folder."""
    from septum.compliance.report_data import build
    from septum.compliance.sbom import inventory, sbom_json
    from septum.knowledge.osv import load_osv

    wanted = {f.strip().lower() for f in formats.split(",") if f.strip()}
    unknown = wanted - {"html", "md"}
    if unknown or not wanted:
        raise _UserError(f"--format takes html and/or md, not {', '.join(sorted(unknown)) or 'nothing'}")
    m, src = _load(model)
    db = load_osv(osv_path) if osv_path else None
    inv = inventory(m, model_dir=Path(model).resolve().parent)  # read once: the report and its SBOM
    data = build(m, src, osv=db, threat_files=_threat_files(threat_paths), inv=inv)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _UserError(f"{out}: cannot create output folder: {e.strerror or e}") from e
    from septum.compliance.mds2 import to_csv

    written = []
    sbom_name = "sbom.cdx.json"
    _write(out / sbom_name, sbom_json(m, inv=inv))
    _write(out / "mds2.csv", to_csv(data.mds2))
    written += [sbom_name, "mds2.csv"]
    if "html" in wanted:
        from septum.compliance.report_html import render_html

        _write(out / "report.html", render_html(data, sbom_file=sbom_name))
        written.append("report.html")
    if "md" in wanted:
        from septum.compliance.report_md import render_md

        _write(out / "report.md", render_md(data))
        written.append("report.md")
    c = data.findings.counts()
    click.echo(f"wrote {', '.join(written)} to {out}: {c['error']} error(s), {c['warning']} warning(s), "
               f"{len(data.threats)} threats ({data.threat_counts['open']} open)")


@click.command("sbom")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", type=click.Path(), help="Write to this file instead of standard output.")
@click.option("--installed/--declared-only", default=True, show_default=True,
              help="Components from the installed Python environment (the model's declarations are checked "
                   "against it), or only the model's declarations, unverified.")
@_clean_errors
def sbom_cmd(model: str, output: str | None, installed: bool) -> None:
    """CycloneDX 1.6 JSON SBOM of MODEL, validated before it is written. Declarations of the model that the
    environment contradicts are printed as warnings on stderr (and kept in the SBOM's metadata)."""
    from septum.compliance.sbom import inventory, sbom_json, validate_sbom

    m, _ = _load(model)
    inv = inventory(m, installed=installed, model_dir=Path(model).resolve().parent)
    for issue in inv.issues:
        click.echo(f"warning: {issue.kind}: {issue}", err=True)
    text = sbom_json(m, installed=installed, inv=inv)
    errors = validate_sbom(text)
    if errors:
        raise _UserError("generated SBOM does not validate: " + "; ".join(errors[:3]))
    if output:
        _write(Path(output), text + "\n")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


@click.command("threats")
@click.argument("model", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@THREATS_OPT
@_clean_errors
def threats_cmd(model: str, fmt: str, threat_paths: tuple[str, ...]) -> None:
    """The STRIDE threat model of MODEL with each threat's status and evidence."""
    from septum.compliance.stride import summary, threat_model

    m, _ = _load(model)
    ts = threat_model(m, *_threat_files(threat_paths))
    if fmt == "json":
        click.echo(json.dumps({"summary": summary(ts), "threats": [t.as_dict() for t in ts]}, indent=2))
        return
    for t in ts:
        how = ", ".join(map(str, t.mitigated_by)) if t.mitigated_by else t.reason
        click.echo(f"{t.status:14} {t.stride} {t.id}: {t.title}\n{'':17}{how}")
    click.echo(f"{len(ts)} threats: " + ", ".join(f"{v} {k}" for k, v in summary(ts).items()))


@click.command("mds2")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="CSV file to write.")
@_clean_errors
def mds2_cmd(model: str, output: str) -> None:
    """MDS2 answers derived from MODEL, as CSV (section, id, question, answer, basis, derived_from, note)."""
    from septum.compliance.mds2 import answers, to_csv

    m, _ = _load(model)
    rows = answers(m)
    _write(Path(output), to_csv(rows))
    derived = sum(1 for a in rows if a.basis == "derived")
    click.echo(f"wrote {output}: {len(rows)} items, {derived} derived from the model, "
               f"{sum(1 for a in rows if a.basis == 'needs confirmation')} need confirmation, "
               f"{sum(1 for a in rows if a.basis == 'manual')} manual")


@click.command("vulns")
@click.argument("model", type=click.Path())
@click.option("--osv", "osv_path", required=True, type=click.Path(), help="OSV file, folder or .zip export.")
@_clean_errors
def vulns_cmd(model: str, osv_path: str) -> None:
    """Match MODEL's components against offline OSV records. Exit 1 if any match is not waived."""
    from septum.analysis import check
    from septum.knowledge.osv import load_osv

    m, src = _load(model)
    db = load_osv(osv_path)
    report = check(m, src, options={"osv": db}, select=["VULN001"])
    click.echo(f"{len(db.records)} OSV records from {db.files} file(s) ({db.withdrawn} withdrawn, ignored)")
    unchecked = sorted({f"{p}/{c.name}" for p, cs in m.components.items() for c in cs if not c.purl})
    for f in report.findings:
        click.echo(f"{f.severity}{' (waived)' if f.waived else ''}: {f.message}")
    if unchecked:
        click.echo("not checked (no purl): " + ", ".join(unchecked))
    # exit by this command's own findings: matches that no waiver accepts. A note about a waiver (stale,
    # expired) is printed above but is not a vulnerability.
    matches = [f for f in report.findings if f.rule == "VULN001"]
    open_matches = [f for f in matches if not f.waived]
    click.echo(f"{len(matches)} match(es), {len(matches) - len(open_matches)} waived")
    raise SystemExit(1 if open_matches else 0)


COMMANDS: list[click.Command] = [report_cmd, sbom_cmd, threats_cmd, mds2_cmd, vulns_cmd]
