"""CycloneDX SBOM of the device, built from what is installed; the model's ``components`` are claims checked
against it.

What is listed (CycloneDX 1.6 JSON, built with cyclonedx-python-lib and checked with its strict validator):
- ``metadata.component``: the device (type ``device``), with its manufacturer as supplier;
  ``metadata.tools``: Septum itself, with its version;
- one ``application`` component per partition (bom-ref ``partition:<name>``), depending on the installed
  distributions its code imports;
- one ``library`` component per installed Python distribution that some partition uses (bom-ref: its purl):
  name and version from ``importlib.metadata``, dependencies from its ``Requires-Dist`` (markers evaluated
  for this interpreter, extras followed only where a requirement asks for them), licence as an SPDX
  expression where the metadata allows one, a SHA-256 hash (see below), supplier from the metadata.

Which distributions a partition uses: a service partition runs Septum, so the ``septum`` distribution; a
``runs: pkg.mod:func`` partition whose package is an installed distribution uses that distribution; one whose
package is source next to the model (the pump's ``septum_pump``) is read without being imported: every
``import`` in the entry module and, transitively, in the project modules it imports is resolved to the
installed distribution that provides it (``importlib.metadata.packages_distributions``). Then the
``Requires-Dist`` closure of those distributions.

The component hash: SHA-256 over the distribution's RECORD (the installer's list of every file it wrote with
that file's SHA-256), canonicalised: the rows that carry a ``sha256=`` hash, as ``path,hash,size`` lines
sorted by path, UTF-8, each line ending in ``\\n``. It identifies the set of installed files and their
contents; it is not the hash of a wheel. Every listed file is re-hashed when the SBOM is built, and a file that
differs from RECORD is reported (``integrity``). Editable installs get no hash (their RECORD lists only the
import hook, not the source) and say so in ``septum:hash:none``.

The model's declarations (``components: {partition: [...]}``) are claims about the installed software. A claim
that does not hold is a :class:`ClaimIssue` (wrong version, not installed, not imported by that partition,
supplier contradicting the metadata, purl not that of the installed distribution), reported as
``septum:claim`` properties in ``metadata.properties``, printed as warnings by ``septum sbom``, and available to
the analysis through :func:`claim_issues`. The model's support level and end-of-support date are applied to the
installed component when name and version match. A declared component that cannot be checked against the
Python environment (a purl of another type, e.g. ``pkg:generic/openssl``) is listed as declared, with
``septum:source=declared (not verified)``.

NTIA minimum elements: supplier, name, version, unique identifier (purl), dependencies, SBOM author
(``metadata.authors``) and timestamp. Support: ``cdx:lifecycle:milestone:endOfSupport`` (official taxonomy)
and ``septum:support:level`` (our addendum: active, limited, security-only, none, unknown).
"""

from __future__ import annotations

import ast
import base64
import csv
import datetime as dt
import functools
import hashlib
import importlib.machinery
import importlib.metadata as md
import io
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from septum.errors import SeptumError
from septum.model import schema as s


class SbomError(SeptumError, RuntimeError):
    """The SBOM could not be produced (missing library, invalid purl, ...)."""


@dataclass
class SbomEntry:
    """One distinct package of the device, for the SBOM and for summaries."""

    name: str
    version: str
    purl: str | None
    supplier: str
    author: str
    license: str  # an SPDX expression, or "" when the metadata gives none that is valid
    support: str
    end_of_support: dt.date | None
    partitions: list[str] = field(default_factory=list)
    depends_on: tuple[str, ...] = ()
    source: str = "installed"  # "installed", or "declared" (from the model, not verifiable here)
    license_name: str = ""  # the metadata's licence words when they are no SPDX expression
    license_from: str = ""  # License-Expression | License | classifier
    sha256: str | None = None
    hash_note: str = ""  # what the hash covers, or why there is none
    modified: tuple[str, ...] = ()  # installed files that differ from RECORD

    @property
    def ref(self) -> str:
        return self.purl or f"component:{self.name}@{self.version}"

    def ntia_gaps(self) -> list[str]:
        """NTIA minimum elements this entry lacks."""
        gaps = []
        if not self.supplier:
            gaps.append("supplier")
        if not self.purl:
            gaps.append("unique identifier (purl)")
        if not self.version:
            gaps.append("version")
        return gaps


@dataclass(frozen=True)
class ClaimIssue:
    """A model declaration (or an installed file) that does not match what is installed."""

    partition: str
    component: str
    kind: str  # version | not-installed | not-imported | supplier | purl | integrity | unresolved-import
    message: str

    def __str__(self) -> str:
        return f"{self.partition}/{self.component}: {self.message}"


@dataclass
class Inventory:
    entries: list[SbomEntry]
    issues: list[ClaimIssue]
    roots: dict[str, list[str]]  # partition -> refs of the components it uses directly


# ----------------------------------------------------------------------------- installed distributions


def normalise(name: str) -> str:
    """PEP 503 name (for matching requirements to distributions)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi_purl(name: str, version: str) -> str:
    # purl spec, pypi type: lowercase, '_' -> '-' (dots stay: pkg:pypi/fhir.resources)
    return f"pkg:pypi/{name.lower().replace('_', '-')}@{version}"


@functools.cache
def _distributions() -> dict[str, md.Distribution]:
    """Installed distributions by normalised name. Where a name appears twice on sys.path (a project's
    ``*.egg-info`` next to its installed metadata), the one an installer wrote (it has a RECORD) wins."""
    out: dict[str, md.Distribution] = {}
    for d in md.distributions():
        name = d.metadata["Name"]
        if not name:
            continue
        key = normalise(name)
        if key not in out or (out[key].read_text("RECORD") is None and d.read_text("RECORD") is not None):
            out[key] = d
    return out


def _clear_caches() -> None:
    """Forget what was read from the environment (after installing or removing a distribution)."""
    _distributions.cache_clear()
    _providers.cache_clear()
    _record_hash.cache_clear()


@functools.cache
def _providers() -> dict[str, tuple[str, ...]]:
    return {k: tuple(v) for k, v in md.packages_distributions().items()}


def _field(meta: md.PackageMetadata, key: str) -> str:
    """A metadata field's first value, or "" (the protocol has no ``get``; ``meta[key]`` raises on 3.14)."""
    values = meta.get_all(key)
    return str(values[0]) if values else ""


def _supplier(meta: md.PackageMetadata) -> str:
    for key in ("Maintainer", "Author"):
        if _field(meta, key):
            return str(meta[key]).strip()
    for key in ("Maintainer-email", "Author-email"):
        names = [n for n, _addr in getaddresses([_field(meta, key)]) if n]
        if names:
            return ", ".join(names)
    return ""


# classifiers that name exactly one SPDX licence; "BSD License", "Apache Software License" do not (no
# clause count / version), so they are kept as words, not guessed
_CLASSIFIER_SPDX = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: Apache Software License 2.0": "Apache-2.0",
    "License :: OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "License :: OSI Approved :: Zope Public License": "ZPL-2.1",
    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "License :: OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "License :: OSI Approved :: BSD Zero Clause License (0BSD)": "0BSD",
    "License :: CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}


def _spdx(text: str) -> str | None:
    """``text`` as a normalised SPDX expression, or None (validated by the license-expression package)."""
    text = text.strip()
    if not text or "\n" in text or len(text) > 200:  # a pasted licence text is not an expression
        return None
    licensing = _licensing()
    from license_expression import ExpressionError  # importable: _licensing() checked it
    for candidate in (text, re.sub(r"\s+(?=\d)", "-", text)):  # "Apache 2.0" -> "Apache-2.0"
        try:
            info = licensing.validate(candidate)
        except ExpressionError:
            continue
        if not info.errors and info.normalized_expression:
            return str(info.normalized_expression)
    return None


@functools.cache
def _licensing() -> Any:
    try:
        from license_expression import get_spdx_licensing
    except ImportError as exc:  # a dependency of cyclonedx-python-lib: the compliance extra is not installed
        raise SbomError("the SBOM needs cyclonedx-python-lib: pip install 'septum[compliance]'") from exc
    return get_spdx_licensing()


def licence(meta: md.PackageMetadata) -> tuple[str, str, str]:
    """(SPDX expression or "", the metadata's words when not SPDX, which field it came from)."""
    le = _field(meta, "License-Expression")
    if le and (expr := _spdx(le)):
        return expr, "", "License-Expression"
    lic = _field(meta, "License").strip()
    if lic and (expr := _spdx(lic)):
        return expr, "", "License"
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    mapped = sorted({_CLASSIFIER_SPDX[c] for c in classifiers if c in _CLASSIFIER_SPDX})
    if mapped:
        return " OR ".join(mapped) if len(mapped) > 1 else mapped[0], "", "classifier"
    words = le or (lic if lic and "\n" not in lic else "") or next(
        (c.rsplit("::", 1)[-1].strip() for c in classifiers if c.count("::") > 1), "")
    return "", words, ("License" if lic else "classifier") if words else ""


@functools.cache
def _record_hash(dist_path: str) -> tuple[str | None, str, tuple[str, ...]]:
    """(SHA-256 over the canonical RECORD, what it covers, files on disk that differ from RECORD)."""
    dist = md.PathDistribution(Path(dist_path))
    record = dist.read_text("RECORD")
    if record is None:
        return None, "no RECORD file: not installed by a wheel installer", ()
    direct = dist.read_text("direct_url.json")
    if direct:
        try:
            if json.loads(direct).get("dir_info", {}).get("editable"):
                return None, "editable install: its RECORD lists the import hook, not the source files", ()
        except (ValueError, AttributeError):
            pass
    rows = []
    bad: list[str] = []
    for row in csv.reader(io.StringIO(record)):
        if len(row) < 2 or not row[1].startswith("sha256="):
            continue
        path, digest, size = row[0], row[1], row[2] if len(row) > 2 else ""
        rows.append(f"{path},{digest},{size}\n")
        try:
            data = Path(str(dist.locate_file(path))).read_bytes()
        except OSError:
            bad.append(f"{path} (missing)")
            continue
        got = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        if got != digest:
            bad.append(path)
    rows.sort()
    h = hashlib.sha256("".join(rows).encode()).hexdigest()
    return h, f"sha256 over the {len(rows)} hashed RECORD rows (path,sha256,size), sorted; files re-checked", \
        tuple(bad)


def _requirements(dist: md.Distribution, extras: frozenset[str]) -> list[tuple[str, frozenset[str]]]:
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for text in dist.requires or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in ("", *sorted(extras))):
            continue  # another platform, or an extra nobody asked for: not installed for this use
        out.append((req.name, frozenset(req.extras)))
    return out


# ----------------------------------------------------------------------------- what a partition imports


def _module_file(module: str, search: list[str]) -> Path | None:
    top, _, rest = module.partition(".")
    spec = importlib.machinery.PathFinder.find_spec(top, search)
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    if not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def scan_imports(module: str, search: list[str]) -> tuple[set[str], set[str]]:
    """The top-level names a project module imports (itself and the project modules it imports, read as
    source, never executed): (names provided by installed distributions, names nothing installed provides).
    The standard library is left out."""
    providers = _providers()
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    external: set[str] = set()
    unresolved: set[str] = set()
    seen: set[str] = set()
    todo = [module]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        parts = mod.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        path = _module_file(mod, search)
        if path is None:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (OSError, SyntaxError, UnicodeDecodeError) as e:
            unresolved.add(f"!{mod}: {type(e).__name__}")  # reported as unreadable, its imports unknown
            continue
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts if is_pkg else parts[:-1]
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                names = [prefix] + [f"{prefix}.{a.name}" for a in node.names if a.name != "*"]
            for name in names:
                top = name.split(".", 1)[0]
                if not top or top in stdlib:
                    continue
                if top in providers:
                    external.add(top)
                elif _module_file(top, search) is not None:
                    todo.append(name)  # project source (not a distribution): follow it
                elif name == names[0]:
                    unresolved.add(top)
    return external, unresolved - external


def _entry_module(part: s.Partition) -> str | None:
    if part.runs:
        return part.runs.split(":", 1)[0]
    return "septum" if part.service else None


# ----------------------------------------------------------------------------- the inventory


def _search_path(model_dir: Path | None) -> list[str]:
    return ([str(model_dir)] if model_dir is not None else []) + [p for p in sys.path if p]


def inventory(model: s.Model, *, model_dir: Path | None = None, installed: bool = True) -> Inventory:
    """Components of the device and the claims of the model that do not hold.

    ``installed=False`` lists the model's declarations alone (for an SBOM made where the device's software is
    not installed); each is then marked ``declared``.
    """
    if not installed:
        return _declared_only(model)
    dists = _distributions()
    providers = _providers()
    search = _search_path(model_dir)
    issues: list[ClaimIssue] = []
    by_key: dict[str, SbomEntry] = {}
    direct: dict[str, list[str]] = {}  # partition -> normalised names it imports

    def add(key: str, extras: frozenset[str], part: str) -> None:
        todo = [(key, extras)]
        done: set[tuple[str, frozenset[str]]] = set()
        while todo:
            k, ex = todo.pop()
            if (k, ex) in done:
                continue
            done.add((k, ex))
            dist = dists.get(k)
            if dist is None:
                continue
            e = by_key.get(k)
            reqs = _requirements(dist, ex)
            if e is None:
                e = by_key[k] = _entry_for(dist)
            deps = list(dict.fromkeys([*e.depends_on, *(normalise(n) for n, _ in reqs if normalise(n) in dists)]))
            e.depends_on = tuple(deps)
            if part not in e.partitions:
                e.partitions.append(part)
            todo += [(normalise(n), x) for n, x in reqs]

    for pname, part in model.partitions.items():
        module = _entry_module(part)
        if module is None:
            continue
        top = module.split(".", 1)[0]
        if top in providers:
            tops, unresolved = {top}, set[str]()
        else:
            if _module_file(module, search) is None:
                issues.append(ClaimIssue(pname, module, "unresolved-import",
                                         f"entry module {module} not found next to the model or on the Python "
                                         "path: its imports are not in the SBOM"))
                continue
            tops, unresolved = scan_imports(module, search)
        for name in sorted(unresolved):
            if name.startswith("!"):
                mod, _, why = name[1:].partition(": ")
                issues.append(ClaimIssue(pname, mod, "unresolved-import",
                                         f"cannot read the source of {mod} ({why}): its imports are not in the SBOM"))
            else:
                issues.append(ClaimIssue(pname, name, "unresolved-import",
                                         f"the code imports {name}, which no installed distribution provides"))
        keys = sorted({normalise(d) for t in tops for d in providers.get(t, ())})
        direct[pname] = keys
        for k in keys:
            add(k, frozenset(), pname)

    for e in by_key.values():
        e.partitions.sort()
        e.depends_on = tuple(by_key[d].ref for d in e.depends_on if d in by_key)
        for bad in e.modified:
            issues.append(ClaimIssue(",".join(e.partitions), e.name, "integrity",
                                     f"installed file {bad} differs from the hash in its RECORD"))

    declared = _check_claims(model, by_key, dists, issues)
    entries = sorted([*by_key.values(), *declared], key=lambda e: (e.name.lower(), e.version))
    roots = {p: [by_key[k].ref for k in keys if k in by_key] for p, keys in direct.items()}
    for e in declared:
        for p in e.partitions:
            roots.setdefault(p, []).append(e.ref)
    return Inventory(entries, issues, roots)


def _entry_for(dist: md.Distribution) -> SbomEntry:
    meta = dist.metadata
    name = str(meta["Name"])
    spdx, words, source = licence(meta)
    path = getattr(dist, "_path", None)
    sha, note, bad = _record_hash(str(path)) if path is not None else (None, "metadata not on disk", ())
    author = _field(meta, "Author").strip() or ", ".join(
        n for n, _a in getaddresses([_field(meta, "Author-email")]) if n)
    return SbomEntry(
        name=name, version=dist.version, purl=pypi_purl(name, dist.version), supplier=_supplier(meta),
        author=author, license=spdx, license_name=words, license_from=source, support="unknown",
        end_of_support=None, partitions=[], depends_on=(), source="installed", sha256=sha, hash_note=note,
        modified=bad,
    )


def _purl_type(purl: str | None) -> str | None:
    if not purl or not purl.startswith("pkg:"):
        return None
    return purl[4:].split("/", 1)[0].lower()


def _check_claims(model: s.Model, by_key: dict[str, SbomEntry], dists: dict[str, md.Distribution],
                  issues: list[ClaimIssue]) -> list[SbomEntry]:
    """Compare each declaration with the environment; return the declarations that cannot be checked here."""
    unverified: dict[str, SbomEntry] = {}
    for pname, comps in model.components.items():
        for c in comps:
            key = normalise(c.name)
            ptype = _purl_type(c.purl)
            if ptype not in (None, "pypi") or (ptype is None and key not in dists):
                # not a Python distribution (or nothing says it is): listed as the model declares it
                declared = SbomEntry(c.name, c.version, c.purl, c.supplier, c.author, c.license, c.support,
                                     c.end_of_support, [], c.depends_on, source="declared",
                                     hash_note="declared in the model; not verifiable in the Python environment")
                declared = unverified.setdefault(declared.ref, declared)
                if pname not in declared.partitions:
                    declared.partitions.append(pname)
                continue
            dist = dists.get(key)
            if dist is None:
                issues.append(ClaimIssue(pname, c.name, "not-installed",
                                         f"declared {c.name} {c.version}, but no such distribution is installed"))
                continue
            e = by_key.get(key)
            if e is None or pname not in e.partitions:
                issues.append(ClaimIssue(pname, c.name, "not-imported",
                                         f"declared for partition {pname}, but its code neither imports "
                                         f"{c.name} nor requires it (installed {dist.version})"))
                continue
            if c.version != e.version:
                issues.append(ClaimIssue(pname, c.name, "version",
                                         f"declared version {c.version}, installed {e.version}"))
            elif c.purl and c.purl != e.purl:
                issues.append(ClaimIssue(pname, c.name, "purl", f"declared purl {c.purl}, installed {e.purl}"))
            else:  # the claim is about this very component: its support facts apply
                e.support, e.end_of_support = c.support, c.end_of_support
            if c.supplier and not _same_party(c.supplier, dist.metadata):
                issues.append(ClaimIssue(pname, c.name, "supplier",
                                         f"declared supplier {c.supplier!r}, the package metadata says "
                                         f"{_supplier(dist.metadata)!r}"))
    for e in unverified.values():
        e.depends_on = tuple(by_key[normalise(d)].ref if normalise(d) in by_key else d for d in e.depends_on)
    return list(unverified.values())


def _same_party(claim: str, meta: md.PackageMetadata) -> bool:
    words = " ".join(_field(meta, k) for k in ("Author", "Maintainer", "Author-email", "Maintainer-email"))
    have, want = words.lower(), claim.lower().strip()
    return bool(want) and want in have


def _declared_only(model: s.Model) -> Inventory:
    by_ref: dict[str, SbomEntry] = {}
    for part, comps in model.components.items():
        for c in comps:
            e = SbomEntry(c.name, c.version, c.purl, c.supplier, c.author, c.license, c.support,
                          c.end_of_support, [], c.depends_on, source="declared")
            e = by_ref.setdefault(e.ref, e)
            if part not in e.partitions:
                e.partitions.append(part)
    by_name = {normalise(e.name): e.ref for e in by_ref.values()}
    for e in by_ref.values():
        e.depends_on = tuple(by_name.get(normalise(d), d) for d in e.depends_on)
    roots = {p: [e.ref for e in by_ref.values() if p in e.partitions] for p in model.partitions}
    return Inventory(sorted(by_ref.values(), key=lambda e: (e.name.lower(), e.version)), [], roots)


def entries(model: s.Model, *, installed: bool = True, model_dir: Path | None = None) -> list[SbomEntry]:
    """The device's packages (see :func:`inventory`)."""
    return inventory(model, installed=installed, model_dir=model_dir).entries


def claim_issues(model: s.Model, *, model_dir: Path | None = None) -> list[ClaimIssue]:
    """Model declarations that the installed environment contradicts (for the analysis and the CLI)."""
    return inventory(model, model_dir=model_dir).issues


# ----------------------------------------------------------------------------- CycloneDX


def _require_cyclonedx() -> None:
    """The SBOM is built and checked by cyclonedx-python-lib, an optional extra: say how to install it."""
    try:
        import cyclonedx  # noqa: F401
        import license_expression  # noqa: F401
    except ImportError as exc:
        raise SbomError("the SBOM needs cyclonedx-python-lib: pip install 'septum[compliance]'") from exc


def build_bom(model: s.Model, *, installed: bool = True, timestamp: dt.datetime | None = None,
              model_dir: Path | None = None, inv: Inventory | None = None) -> Any:
    """A ``cyclonedx.model.bom.Bom`` for the device."""
    _require_cyclonedx()
    try:
        try:
            from cyclonedx.contrib.license.factories import LicenseFactory
        except ImportError:  # cyclonedx-python-lib before 11.x
            from cyclonedx.factory.license import LicenseFactory
        from cyclonedx.model import HashAlgorithm, HashType, Property
        from cyclonedx.model.bom import Bom, BomMetaData
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
        from cyclonedx.model.dependency import Dependency
        from cyclonedx.model.license import DisjunctiveLicense, LicenseAcknowledgement
        from packageurl import PackageURL
    except ImportError as exc:
        raise SbomError("the SBOM needs cyclonedx-python-lib: pip install 'septum[compliance]'") from exc

    from septum import __version__

    inv = inv or inventory(model, installed=installed, model_dir=model_dir)
    dev = model.device
    maker = OrganizationalEntity(name=dev.manufacturer) if dev.manufacturer else None
    device = Component(name=dev.name, version=dev.version, type=ComponentType.DEVICE, bom_ref="device",
                       supplier=maker, manufacturer=maker, description=dev.description or None)
    tool = Component(name="septum", version=__version__, type=ComponentType.APPLICATION,
                     description="septum sbom: derived from the device model and the installed environment")
    meta = BomMetaData(
        component=device,
        timestamp=timestamp or dt.datetime.now(dt.UTC),
        authors=[OrganizationalContact(name=dev.manufacturer or "unknown")],
        supplier=maker,
        properties=[Property(name="septum:inventory", value="installed" if installed else "declared only")]
        + [Property(name="septum:claim", value=f"{i.kind}: {i}") for i in inv.issues],
    )
    meta.tools.components.add(tool)
    bom = Bom(metadata=meta)
    factory = LicenseFactory()

    def depend(src: Component, targets: Iterable[Component]) -> None:
        # Bom.register_dependency searches the existing set linearly on every call (quadratic for large
        # devices); each of our refs is registered exactly once, so we add the Dependency directly.
        bom.dependencies.add(Dependency(ref=src.bom_ref, dependencies=[Dependency(ref=t.bom_ref) for t in targets]))

    libs: dict[str, Component] = {}
    for e in inv.entries:
        props = [Property(name="septum:support:level", value=e.support),
                 Property(name="septum:partitions", value=",".join(sorted(e.partitions))),
                 Property(name="septum:source", value=e.source if e.source == "installed"
                          else "declared (not verified)")]
        if e.end_of_support:
            props.append(Property(name="cdx:lifecycle:milestone:endOfSupport", value=e.end_of_support.isoformat()))
        if e.sha256:
            props.append(Property(name="septum:hash:basis", value=e.hash_note))
        elif e.hash_note:
            props.append(Property(name="septum:hash:none", value=e.hash_note))
        purl = None
        if e.purl:
            try:
                purl = PackageURL.from_string(e.purl)
            except ValueError as err:
                raise SbomError(f"component {e.name} {e.version}: invalid purl {e.purl!r}: {err}") from err
        licenses = None
        if e.license:
            licenses = [factory.make_from_string(e.license, license_acknowledgement=LicenseAcknowledgement.DECLARED)]
        elif e.license_name:
            licenses = [DisjunctiveLicense(name=e.license_name, acknowledgement=LicenseAcknowledgement.DECLARED)]
            props.append(Property(name="septum:license:note",
                                  value=f"{e.license_from} gives {e.license_name!r}, which is no SPDX expression"))
        comp = Component(
            name=e.name, version=e.version, type=ComponentType.LIBRARY, bom_ref=e.ref, purl=purl,
            supplier=OrganizationalEntity(name=e.supplier) if e.supplier else None,
            authors=[OrganizationalContact(name=e.author)] if e.author else None,
            licenses=licenses, properties=props,
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=e.sha256)] if e.sha256 else None,
        )
        libs[e.ref] = comp
        bom.components.add(comp)

    part_comps: dict[str, Component] = {}
    for pname, part in model.partitions.items():
        pc = Component(
            name=pname, version=dev.version, type=ComponentType.APPLICATION, bom_ref=f"partition:{pname}",
            supplier=maker, description=part.description or None,
            properties=[Property(name="septum:criticality", value=part.criticality)]
            + ([Property(name="septum:service", value=part.service)] if part.service else []),
        )
        part_comps[pname] = pc
        bom.components.add(pc)
        depend(pc, [libs[r] for r in dict.fromkeys(inv.roots.get(pname, [])) if r in libs])
    depend(device, part_comps.values())
    for e in inv.entries:
        depend(libs[e.ref], [libs[d] for d in dict.fromkeys(e.depends_on) if d in libs])
    return bom


def sbom_json(model: s.Model, *, installed: bool = True, timestamp: dt.datetime | None = None,
              model_dir: Path | None = None, inv: Inventory | None = None) -> str:
    """CycloneDX 1.6 JSON text of the device SBOM."""
    _require_cyclonedx()
    from cyclonedx.output.json import JsonV1Dot6

    bom = build_bom(model, installed=installed, timestamp=timestamp, model_dir=model_dir, inv=inv)
    return JsonV1Dot6(bom).output_as_string(indent=2)


def validate_sbom(text: str) -> list[str]:
    """Errors from cyclonedx-python-lib's strict CycloneDX 1.6 JSON validator (empty when valid)."""
    _require_cyclonedx()
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    if errors is None:
        return []
    # the validator's messages quote the whole schema fragment; the first and last lines say what and where
    out = []
    for e in errors:  # with all_errors=True the library returns an iterable of errors
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        out.append(f"{lines[0]} ({lines[-2]} {lines[-1]})" if len(lines) > 2 else " ".join(lines))
    return out
