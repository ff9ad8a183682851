"""MDS2 answers item by item, the views, the CLI commands, and the HTML report in headless Chromium."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from septum.cli import cli
from septum.compliance.mds2 import answers
from septum.compliance.views import all_views, svg
from septum.model.schema import Model

from .conftest import OSV_FIXTURES, PUMP

# (answer, basis) for every pump item the model decides, in the form's order
PUMP_MDS2 = {
    "DOC-1": ("Septum project (example device, not for clinical use)", "derived"),
    "DOC-2": ("Patient-controlled analgesia / large-volume infusion pump with a hospital link (FHIR R4 over HTTPS, "
              "HL7 v2 over MLLP/TLS), a front panel, and a safety monitor that limits delivery whatever the network "
              "or the UI says.", "derived"),
    "DOC-3": ("Septum reference PCA pump 0.1.0", "derived"), "DOC-10": ("Yes", "derived"),
    "DOC-11": ("No", "derived"),
    "MPII-1": ("Yes", "derived"), "MPII-3": ("Yes", "derived"), "MPII-3.3": ("No", "derived"),
    "MPII-3.4": ("No", "derived"), "MPII-3.5": ("Yes", "derived"), "MPII-3.6": ("No", "derived"),
    "ALOF-1": ("Yes", "derived"),
    "AUDT-1": ("Yes", "derived"), "AUDT-2": ("Yes", "derived"), "AUDT-2.1": ("Yes", "derived"),
    "AUDT-2.2": ("Yes", "derived"), "AUDT-2.8": ("Yes", "derived"), "AUDT-2.9": ("Yes", "derived"),
    "AUDT-2.10": ("Yes", "derived"), "AUDT-4.1": ("Yes", "derived"), "AUDT-7": ("Yes", "derived"),
    "AUTH-1": ("Yes", "derived"), "AUTH-2": ("Yes", "derived"), "AUTH-4": ("Yes", "derived"),
    "CSUP-1": ("Yes", "derived"), "CSUP-5": ("Yes", "derived"), "CSUP-5.3": ("Yes", "derived"),
    "CSUP-5.4": ("No", "derived"), "CSUP-10.1": ("Yes", "derived"),
    "EMRG-1": ("Yes", "derived"),
    "NAUT-1": ("Yes", "derived"), "NAUT-2": ("Yes", "derived"), "NAUT-3": ("Yes", "derived"),
    "CONN-1": ("Yes", "derived"), "CONN-1.1": ("No", "derived"), "CONN-1.1.1": ("No", "derived"),
    "CONN-1.1.2": ("No", "derived"), "CONN-1.1.3": ("No", "derived"), "CONN-1.1.4": ("No", "derived"),
    "CONN-1.2": ("Yes", "derived"), "CONN-1.2.1": ("Yes", "derived"), "CONN-1.2.2": ("No", "derived"),
    "CONN-1.2.3": ("No", "derived"), "CONN-1.2.4": ("No", "derived"), "CONN-2": ("Yes", "derived"),
    "CONN-3": ("Yes", "derived"), "CONN-5": ("Yes", "derived"), "CONN-7": ("Yes", "derived"),
    "PAUT-3": ("Yes", "derived"), "PAUT-8": ("No", "derived"), "PAUT-11": ("No", "derived"),
    "PAUT-12": ("Yes", "derived"), "PAUT-14": ("Yes", "derived"), "PAUT-14.1": ("Yes", "derived"),
    "PLOK-1": ("No", "derived"),
    "SBOM-1": ("Yes", "derived"), "SBOM-2": ("Yes", "derived"), "SBOM-2.1": ("Yes", "derived"),
    "SBOM-2.2": ("Yes", "derived"), "SBOM-2.3": ("Yes", "derived"), "SBOM-2.4": ("Yes", "derived"),
    "SAHD-3": ("Yes", "derived"), "SAHD-3.2": ("Yes", "derived"), "SAHD-5.1": ("Yes", "derived"),
    "SAHD-8": ("Yes", "derived"),
    "TXCF-1": ("No", "derived"), "TXCF-2": ("Yes", "derived"), "TXCF-4": ("Yes", "derived"),
    "TXIG-1": ("Yes", "derived"),
    "RMOT-3": ("Yes", "derived"),
    # sub-questions (issue 15 item 7)
    "DOC-11.1": ("N/A", "derived"), "DOC-11.2": ("N/A", "derived"), "DOC-11.3": ("N/A", "derived"),
    "DOC-11.4": ("N/A", "derived"), "MPII-2.1": ("Yes", "derived"), "MPII-2.6": ("Yes", "derived"),
    "AUDT-2.7": ("N/A", "derived"), "AUDT-2.8.1": ("N/A", "derived"), "AUDT-2.8.2": ("Yes", "derived"),
    "NAUT-2.1": ("Yes", "derived"), "TXCF-2.1": ("N/A", "derived"),
    "MPII-2.2": ("See note", "needs confirmation"), "MPII-2.3": ("See note", "needs confirmation"),
    "PAUT-1.1": ("See note", "needs confirmation"),
    # the model suggests, a person confirms
    "MPII-3.1": ("No", "needs confirmation"), "AUDT-1.1": ("See note", "needs confirmation"),
    "MLDP-1": ("Yes", "derived"), "MLDP-3": ("Yes", "derived"), "MLDP-4": ("Yes", "needs confirmation"),
    "CONN-8": ("See note", "needs confirmation"), "PAUT-1": ("See note", "needs confirmation"),
    "RDMP-4": ("Yes", "needs confirmation"), "SAHD-3.1": ("Yes", "needs confirmation"),
    "SAHD-12": ("No", "needs confirmation"), "RMOT-1": ("No", "needs confirmation"),
}


def test_pump_mds2_item_by_item(pump_model: Model) -> None:
    got = {a.id: a for a in answers(pump_model)}
    for qid, (ans, basis) in PUMP_MDS2.items():
        assert (got[qid].answer, got[qid].basis) == (ans, basis), qid
    decided = {q for q, a in got.items() if a.basis != "manual"}
    assert decided == set(PUMP_MDS2), "every model-decided item is pinned above"
    assert all(a.derived_from for a in got.values() if a.basis != "manual" and a.answer != "N/A")
    assert "interface:service_port" in got["SAHD-8"].derived_from
    assert got["CSUP-5.3"].derived_from == ("channel:updates_in", "channel:authorised_updates")
    assert "30 s" in got["PAUT-3"].note and "300 s" in got["ALOF-1"].note
    assert got["PAUT-12"].derived_from == ("role:biomed",)
    assert all(a.answer == "See note" for a in got.values() if a.basis == "manual")


def test_views_cover_the_guidance(pump_model: Model) -> None:
    views = {v.key: v for v in all_views(pump_model)}
    assert {"global", "multi-patient", "update"} <= set(views)
    assert {k for k in views if k.startswith("use-case-")} >= {"use-case-emergency_stop", "use-case-patient_bolus"}
    g = views["global"]
    assert len(g.details) == len(pump_model.channels) + sum(len(p.owns) for p in pump_model.partitions.values())
    https = next(p for p in g.details if p.via == "hospital_https")
    assert (https.protocol, https.port, https.direction, https.crypto) == ("https", "8443", "in", "tls1.3")
    assert https.strength.startswith("strong")
    mp = views["multi-patient"]
    assert any("accept_remote_order" in n and "clinician" in n for n in mp.notes)
    upd = views["update"]
    assert {n.id for n in upd.nodes} >= {"partition:network", "partition:auth", "partition:update"}
    text = svg(g)
    assert text.startswith("<svg") and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert svg(g) == text  # deterministic


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.output


def test_cli_commands(tmp_path: Path) -> None:
    code, out = run("threats", str(PUMP), "--format", "json")
    # 62: soft_limit_approvals, clinician_boluses and the runtime threats (issues 11, 13)
    assert code == 0 and json.loads(out)["summary"]["mitigated"] == 62
    code, out = run("sbom", str(PUMP), "-o", str(tmp_path / "s.json"))
    assert code == 0 and json.loads((tmp_path / "s.json").read_text())["bomFormat"] == "CycloneDX"
    code, out = run("mds2", str(PUMP), "-o", str(tmp_path / "m.csv"))
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert code == 0 and {r["id"]: r["answer"] for r in rows}["TXCF-2"] == "Yes"
    code, out = run("vulns", str(PUMP), "--osv", str(OSV_FIXTURES))
    assert code == 1 and "PYSEC-TEST-0001" in out and "4 match(es)" in out


@pytest.mark.parametrize("args", [
    ("threats", "missing.yaml"),
    ("vulns", str(PUMP), "--osv", "/nonexistent/osv"),
    ("report", str(PUMP), "-o", "OUT", "--format", "pdf"),
    ("threats", str(PUMP), "--threats", "/nonexistent/rules.yaml"),
])
def test_cli_user_errors_exit_2_without_traceback(tmp_path: Path, args: tuple[str, ...]) -> None:
    args = tuple(a.replace("OUT", str(tmp_path / "o")) for a in args)
    code, out = run(*args)
    assert code == 2 and "Traceback" not in out and "error" in out.lower()


def test_cli_bad_model_is_located(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("septum: 1\ndevice: {name: x}\npartitions: {p: {criticality: extreme}}\n")
    code, out = run("report", str(bad), "-o", str(tmp_path / "o"))
    assert code == 2 and "m.yaml:3" in out


CHROMIUM = "/usr/bin/chromium"


def test_html_report_renders_in_headless_chromium_without_console_errors(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); cannot render the HTML report")
    code, out = run("report", str(PUMP), "-o", str(tmp_path), "--osv", str(OSV_FIXTURES))
    assert code == 0, out
    html = (tmp_path / "report.html").read_text()
    # self-contained: no external scripts, styles, images or fonts
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)
    assert "<script" not in html and html.count("<svg") >= 4
    assert (tmp_path / "report.md").read_text().count("```mermaid") >= 4
    profile = tempfile.mkdtemp(dir=tmp_path)
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--window-size=1200,1600",
         "--virtual-time-budget=3000", f"--screenshot={shot}", f"file://{tmp_path / 'report.html'}"],
        capture_output=True, text=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    console = [ln for ln in proc.stderr.splitlines() if "Uncaught" in ln or "CONSOLE" in ln or ":CONSOLE" in ln]
    assert console == [], console
    assert proc.returncode == 0 and shot.stat().st_size > 20_000  # a blank page is a few kB


@pytest.mark.parametrize("missing", ["license_expression", "cyclonedx"])
def test_report_without_the_compliance_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """`septum report` in an install without `septum[compliance]`: exit 2 and the pip line, no traceback."""
    import sys

    from septum.compliance import sbom

    sbom._licensing.cache_clear()
    monkeypatch.setitem(sys.modules, missing, None)  # a None entry makes `import missing` raise ImportError
    try:
        code, out = run("report", str(PUMP), "-o", str(tmp_path / "o"), "--osv", str(OSV_FIXTURES))
    finally:
        sbom._licensing.cache_clear()
    assert code == 2 and "Traceback" not in out and "septum[compliance]" in out, out
