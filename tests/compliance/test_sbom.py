"""The device SBOM: what is installed (importlib.metadata), the model's components as claims checked against it,
the Requires-Dist graph, RECORD hashes, SPDX licences, metadata.tools; CycloneDX 1.6 that the strict validator
accepts; and the same components as cyclonedx-py finds in this venv."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import importlib.metadata as md
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from msgspec.structs import replace

from septum import __version__
from septum.compliance import sbom
from septum.compliance.sbom import entries, inventory, normalise, sbom_json, validate_sbom
from septum.model import load
from septum.model.schema import Component, Model

FIXED = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
HERE = Path(__file__).parent


def _libs(text: str) -> dict[str, dict]:
    return {c["bom-ref"]: c for c in json.loads(text)["components"] if c["type"] == "library"}


def _installed_dist(name: str) -> md.Distribution:
    return sbom._distributions()[normalise(name)]


# ----------------------------------------------------------------------------- a small device of our own

MODEL = """\
septum: 1
device: {name: Tiny, version: "1.0", profile: production, manufacturer: Acme}
interfaces:
  lan: {kind: network, external: true, protocol: https, port: 8443, authentication: mutual-tls,
        encryption: tls1.3, carries: [commands]}
partitions:
  app:
    runs: tinyapp.main:run
    criticality: none
    owns: [lan]
    allow: {net: true}
    resources: {memory_mb: 64, period_ms: 100, budget_ms: 10}
  auth:
    service: auth
    criticality: high
    mitigation: [authenticating]
    resources: {memory_mb: 64, period_ms: 100, budget_ms: 10}
messages:
  Cmd: {speed: {type: int, min: 0, max: 100}}
channels:
  - {name: cmd_in, from: app, to: auth, message: Cmd, rate: 10/s}
components:
  app:
COMPONENTS
"""

FAKE_FILES = {
    "fakedist/__init__.py": "VALUE = 1\n",
    "fakedist/core.py": "def f():\n    return 2\n",
}


def _record_row(path: str, data: bytes) -> list[str]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [path, f"sha256={digest}", str(len(data))]


def _make_fake_dist(site: Path, *, license_lines: str) -> None:
    """An installed distribution written as a wheel installer would (METADATA, RECORD with hashes)."""
    rows = []
    for rel, text in FAKE_FILES.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
        rows.append(_record_row(rel, text.encode()))
    info = site / "fakedist-1.2.3.dist-info"
    info.mkdir()
    meta = ("Metadata-Version: 2.4\nName: fakedist\nVersion: 1.2.3\nAuthor: Fake Maker\n" + license_lines
            + "Requires-Dist: msgspec\n"
            + 'Requires-Dist: hl7; extra == "hl7"\n'  # an extra nobody asks for
            + 'Requires-Dist: pywin32; sys_platform == "win32"\n'  # another platform
            + 'Requires-Dist: pyyaml; python_version >= "3.0"\n')
    (info / "METADATA").write_text(meta)
    rows.append(_record_row("fakedist-1.2.3.dist-info/METADATA", meta.encode()))
    rows.append(["fakedist-1.2.3.dist-info/RECORD", "", ""])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    (info / "RECORD").write_text(buf.getvalue())


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """A model dir with project code ``tinyapp`` and a site dir holding ``fakedist``."""
    proj = tmp_path / "proj"
    app = proj / "tinyapp"
    app.mkdir(parents=True)
    (app / "__init__.py").write_text("")
    # the entry module imports a distribution and a project module; that module imports lazily, in a
    # function; a module nobody imports names hl7 (so hl7 must not be listed)
    (app / "main.py").write_text("import json\nimport fakedist\nfrom . import helper\n\ndef run(p):\n    pass\n")
    (app / "helper.py").write_text('"""import hl7  (a docstring is not an import)"""\n\ndef g():\n'
                                   "    from cryptography.hazmat.primitives import hashes\n    return hashes\n")
    (app / "unused.py").write_text("import hl7\n")
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    sbom._clear_caches()
    yield proj, site
    sbom._clear_caches()


def _tiny_model(proj: Path, components: list[str]) -> Model:
    text = MODEL.replace("COMPONENTS", "\n".join(f"    - {c}" for c in components) or "    []")
    (proj / "model.yaml").write_text(text)
    return load(proj / "model.yaml")[0]


def test_components_are_what_the_code_imports_and_requires(tiny: tuple[Path, Path]) -> None:
    proj, site = tiny
    _make_fake_dist(site, license_lines="License: Apache 2.0\n")
    m = _tiny_model(proj, [])
    inv = inventory(m, model_dir=proj)
    names = {normalise(e.name) for e in inv.entries}
    assert {"fakedist", "msgspec", "pyyaml", "cryptography", "septum"} <= names
    assert "hl7" not in names and "pywin32" not in names  # unused module, unrequested extra, other platform
    fake = next(e for e in inv.entries if e.name == "fakedist")
    assert set(fake.depends_on) == {_ref("msgspec"), _ref("pyyaml")}
    assert fake.partitions == ["app"] and fake.license == "Apache-2.0" and fake.license_from == "License"
    assert inv.roots["auth"] == [_ref("septum")]
    assert set(inv.roots["app"]) == {_ref("fakedist"), _ref("cryptography")}
    assert inv.issues == []
    # every installed component at its installed version, once
    for e in inv.entries:
        assert e.version == _installed_dist(e.name).version and e.source == "installed"
    assert len(names) == len(inv.entries)


def _ref(name: str) -> str:
    d = _installed_dist(name)
    return sbom.pypi_purl(d.metadata["Name"], d.version)


def test_record_hash_is_sha256_over_sorted_record_rows_and_files_are_checked(tiny: tuple[Path, Path]) -> None:
    proj, site = tiny
    _make_fake_dist(site, license_lines="Classifier: License :: OSI Approved :: MIT License\n")
    m = _tiny_model(proj, [])
    fake = next(e for e in entries(m, model_dir=proj) if e.name == "fakedist")
    rows = sorted(r for r in csv.reader(io.StringIO((site / "fakedist-1.2.3.dist-info/RECORD").read_text()))
                  if r[1].startswith("sha256="))
    assert fake.sha256 == hashlib.sha256("".join(",".join(r) + "\n" for r in rows).encode()).hexdigest()
    assert fake.license == "MIT" and fake.license_from == "classifier"
    bom = _libs(sbom_json(m, model_dir=proj, timestamp=FIXED))
    (h,) = bom["pkg:pypi/fakedist@1.2.3"]["hashes"]
    assert h == {"alg": "SHA-256", "content": fake.sha256}
    # a file changed after installation is reported, with the file
    (site / "fakedist" / "core.py").write_text("def f():\n    return 3\n")
    sbom._clear_caches()
    issues = inventory(m, model_dir=proj).issues
    assert [(i.kind, i.component) for i in issues] == [("integrity", "fakedist")]
    assert "fakedist/core.py" in issues[0].message


def test_declarations_are_claims_checked_against_the_environment(tiny: tuple[Path, Path]) -> None:
    proj, site = tiny
    _make_fake_dist(site, license_lines="License: BSD\n")
    msgspec_v = md.version("msgspec")
    m = _tiny_model(proj, [
        "{name: fakedist, version: '1.2.3', purl: 'pkg:pypi/fakedist@1.2.3', supplier: Fake Maker, support: active,"
        " end_of_support: 2030-01-01}",
        "{name: msgspec, version: '0.0.1', purl: 'pkg:pypi/msgspec@0.0.1', support: active}",
        f"{{name: hl7, version: '{md.version('hl7')}'}}",
        "{name: no-such-dist-septum-test, version: '1.0', purl: 'pkg:pypi/no-such-dist-septum-test@1.0'}",
        "{name: cryptography, version: '" + md.version("cryptography") + "', supplier: Somebody Else}",
        "{name: openssl, version: '3.0.13', purl: 'pkg:generic/openssl@3.0.13', supplier: OpenSSL}",
    ])
    inv = inventory(m, model_dir=proj)
    kinds = {(i.component, i.kind) for i in inv.issues}
    assert kinds == {("msgspec", "version"), ("hl7", "not-imported"), ("no-such-dist-septum-test", "not-installed"),
                     ("cryptography", "supplier")}
    msg = next(i.message for i in inv.issues if i.kind == "version")
    assert "0.0.1" in msg and msgspec_v in msg
    # one msgspec, at the installed version; the claim added no second component
    assert [e.version for e in inv.entries if e.name == "msgspec"] == [msgspec_v]
    # a claim about another version says nothing about the support of the installed one
    assert next(e for e in inv.entries if e.name == "msgspec").support == "unknown"
    fake = next(e for e in inv.entries if e.name == "fakedist")
    assert (fake.support, fake.end_of_support) == ("active", dt.date(2030, 1, 1))
    assert fake.license == "" and fake.license_name == "BSD"  # not an SPDX id: kept as words
    # not a Python distribution: listed as declared, not verified
    (ossl,) = [e for e in inv.entries if e.name == "openssl"]
    assert ossl.source == "declared" and ossl.partitions == ["app"]
    text = sbom_json(m, model_dir=proj, timestamp=FIXED)
    assert validate_sbom(text) == []
    claims = [p["value"] for p in json.loads(text)["metadata"]["properties"] if p["name"] == "septum:claim"]
    assert len(claims) == 4 and any(c.startswith("version: app/msgspec") for c in claims)


def test_cli_prints_claim_mismatches_as_warnings(tiny: tuple[Path, Path]) -> None:
    from click.testing import CliRunner

    from septum.cli import cli

    proj, site = tiny
    _make_fake_dist(site, license_lines="")
    _tiny_model(proj, ["{name: msgspec, version: '0.0.1', purl: 'pkg:pypi/msgspec@0.0.1'}"])
    r = CliRunner().invoke(cli, ["sbom", str(proj / "model.yaml"), "-o", str(proj / "s.json")])
    assert r.exit_code == 0, r.output
    assert "warning: version: app/msgspec: declared version 0.0.1, installed" in r.stderr
    assert _ref("msgspec") in _libs((proj / "s.json").read_text())


def test_pump_sbom_validates_and_has_ntia_elements(pump_model: Model) -> None:
    text = sbom_json(pump_model, timestamp=FIXED)
    assert validate_sbom(text) == []
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6" and bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["timestamp"].startswith("2025-01-02T03:04:05")
    assert bom["metadata"]["authors"] and bom["metadata"]["component"]["type"] == "device"
    tools = bom["metadata"]["tools"]["components"]
    assert {"name": "septum", "version": __version__} in [{k: t[k] for k in ("name", "version")} for t in tools]
    libs = _libs(text)
    by_name: dict[str, list[dict]] = {}
    for c in libs.values():
        by_name.setdefault(normalise(c["name"]), []).append(c)
        assert c["version"] == _installed_dist(c["name"]).version
        assert c["purl"] == c["bom-ref"] and c["name"]
        # the supplier is the metadata's (Maintainer, else Author, else their e-mail names), never typed in
        assert c.get("supplier", {}).get("name", "") == sbom._supplier(_installed_dist(c["name"]).metadata)
    assert all(len(v) == 1 for v in by_name.values()), "one component per distribution"
    # the pump's own modules import these; septum's service partitions bring septum's requirements
    assert {"septum", "msgspec", "cryptography", "fhir-resources", "fhir-core", "pyyaml"} <= set(by_name)
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in bom["dependencies"]}
    assert deps["device"] == {f"partition:{p}" for p in pump_model.partitions}
    assert deps["partition:auth"] == {_ref("septum")}
    assert _ref("cryptography") in deps[_ref("septum")] and _ref("msgspec") in deps[_ref("septum")]
    assert _ref("fhir_core") in deps[_ref("fhir.resources")]
    hashed = [c for c in libs.values() if c.get("hashes")]
    # editable installs (septum, and septum-pump with the hospital client, which `make` installs) have no hash
    editable = [c for c in libs.values() if sbom._record_hash(str(_installed_dist(c["name"])._path))[0] is None]
    assert len(hashed) == len(libs) - len(editable)
    # licences: the SPDX expression the metadata gives, else its words; none left out
    spdx = 0
    for c in libs.values():
        expr, words, _field = sbom.licence(_installed_dist(c["name"]).metadata)
        got = c.get("licenses", [])
        if expr:
            spdx += 1
            assert got in ([{"expression": expr, "acknowledgement": "declared"}],
                           [{"license": {"id": expr, "acknowledgement": "declared"}}]), c["name"]
        elif words:
            assert got == [{"license": {"name": words, "acknowledgement": "declared"}}], c["name"]
        else:
            assert got == [], c["name"]
    assert spdx >= len(libs) * 3 // 4  # in this venv 20 of 23 (the others say only "BSD")


def test_pump_claims_follow_the_environment(pump_model: Model) -> None:
    # the pump model declares versions; whichever are installed here, each claim is checked, never listed
    inv = inventory(pump_model)
    for part, comps in pump_model.components.items():
        for c in comps:
            d = sbom._distributions().get(normalise(c.name))
            e = next((x for x in inv.entries if normalise(x.name) == normalise(c.name)), None)
            flagged = {i.kind for i in inv.issues if i.partition == part and i.component == c.name}
            if d is None:
                assert flagged == {"not-installed"} and e is None
            elif e is None or part not in e.partitions:
                assert flagged == {"not-imported"}
            elif d.version != c.version:
                assert "version" in flagged and e.version == d.version


def test_declared_only_and_ntia_gaps(pump_model: Model) -> None:
    comps = dict(pump_model.components)
    comps["ui"] = (*comps["ui"], Component(name="widgets", version="1.0", depends_on=("msgspec",)))
    m = replace(pump_model, components=comps)
    text = sbom_json(m, installed=False, timestamp=FIXED)
    assert validate_sbom(text) == []
    deps = {d["ref"]: d.get("dependsOn", []) for d in json.loads(text)["dependencies"]}
    assert deps["component:widgets@1.0"] == ["pkg:pypi/msgspec@0.22.0"]
    gaps = {e.name: e.ntia_gaps() for e in entries(m, installed=False)}
    assert gaps["widgets"] == ["supplier", "unique identifier (purl)"] and gaps["msgspec"] == []
    # installed: widgets is no Python distribution here, so it is listed as declared and depends on the
    # installed msgspec
    inst = {d["ref"]: d.get("dependsOn", []) for d in json.loads(sbom_json(m, timestamp=FIXED))["dependencies"]}
    assert inst["component:widgets@1.0"] == [_ref("msgspec")]


def test_validator_rejects_a_broken_document(pump_model: Model) -> None:
    bom = json.loads(sbom_json(pump_model, timestamp=FIXED))
    bom["components"][0]["type"] = "nonsense"
    errors = validate_sbom(json.dumps(bom))
    assert errors and "nonsense" in errors[0]


# ----------------------------------------------------------------------------- against cyclonedx-py


def _cyclonedx_py() -> str | None:
    exe = Path(sys.executable).with_name("cyclonedx-py")
    return str(exe) if exe.exists() else shutil.which("cyclonedx-py")


def test_components_agree_with_cyclonedx_py_for_this_venv(pump_model: Model, tmp_path: Path) -> None:
    exe = _cyclonedx_py()
    if exe is None:
        pytest.skip("cyclonedx-py is not installed (pip install 'septum[test]'); cannot compare")
    out = tmp_path / "theirs.json"
    subprocess.run([exe, "environment", sys.executable, "--output-reproducible", "-o", str(out)],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    theirs_bom = json.loads(out.read_text())
    theirs = {normalise(c["name"]): c for c in theirs_bom["components"]}
    ours = {normalise(c["name"]): c for c in _libs(sbom_json(pump_model, timestamp=FIXED)).values()}
    only_ours = sorted(set(ours) - set(theirs))
    only_theirs = sorted(set(theirs) - set(ours))
    both = sorted(set(ours) & set(theirs))
    print(f"ours {len(ours)}, theirs {len(theirs)}, both {len(both)}")
    print("only in ours:", only_ours)
    print("only in theirs (no partition imports or requires them):", only_theirs)
    assert only_ours == []
    for n in both:
        assert ours[n]["version"] == theirs[n]["version"], n
        if "purl" in theirs[n]:  # cyclonedx-py gives the root project (editable septum) no purl
            assert ours[n]["purl"] == theirs[n]["purl"], n
    # nothing only in theirs is something a partition uses: none of ours depends on it
    refs_theirs = {c["bom-ref"]: normalise(c["name"]) for c in theirs_bom["components"]}
    their_deps = {refs_theirs[d["ref"]]: {refs_theirs[x] for x in d.get("dependsOn", [])}
                  for d in theirs_bom["dependencies"] if d["ref"] in refs_theirs}
    refs_ours = {c["bom-ref"]: n for n, c in ours.items()}
    our_deps = {refs_ours[d["ref"]]: {refs_ours[x] for x in d.get("dependsOn", []) if x in refs_ours}
                for d in json.loads(sbom_json(pump_model, timestamp=FIXED))["dependencies"] if d["ref"] in refs_ours}
    for n, ds in our_deps.items():
        # cyclonedx-py also follows every extra whose package happens to be installed; ours follows the
        # requirements that apply, so ours is a subset of theirs
        assert ds <= their_deps.get(n, set()), (n, ds - their_deps.get(n, set()))


def test_unreadable_or_missing_code_is_reported_not_guessed(tiny: tuple[Path, Path]) -> None:
    proj, site = tiny
    _make_fake_dist(site, license_lines="")
    (proj / "tinyapp" / "helper.py").write_text("def broken(:\n")
    (proj / "tinyapp" / "main.py").write_text("import fakedist\nimport nosuchthing_septum_test\nfrom . import helper\n")
    m = _tiny_model(proj, [])
    issues = {(i.component, i.kind): i.message for i in inventory(m, model_dir=proj).issues}
    assert "SyntaxError" in issues[("tinyapp.helper", "unresolved-import")]
    assert "no installed distribution" in issues[("nosuchthing_septum_test", "unresolved-import")]
    text = MODEL.replace("tinyapp.main:run", "tinyapp.absent:run").replace("COMPONENTS", "    []")
    (proj / "model.yaml").write_text(text)
    inv = inventory(load(proj / "model.yaml")[0], model_dir=proj)
    assert [(i.partition, i.kind) for i in inv.issues] == [("app", "unresolved-import")]
    assert "not found" in inv.issues[0].message and "app" not in inv.roots
