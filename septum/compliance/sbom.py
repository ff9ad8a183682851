"""CycloneDX SBOM of the device, built from the model's components (and optionally the environment).

Shape (CycloneDX 1.6 JSON, built with cyclonedx-python-lib and checked with its strict JSON validator):
- ``metadata.component``: the device (type ``device``), with its manufacturer as supplier;
- one ``application`` component per partition (bom-ref ``partition:<name>``), depending on its libraries;
- one ``library`` component per distinct package (bom-ref: its purl, else ``component:<name>@<version>``),
  with the partitions it runs in, the support level and the end-of-support date.

NTIA minimum elements: supplier (``supplier.name``), component name, version, unique identifier (purl or
bom-ref), dependency relationships (``dependencies``), author of the SBOM data (``metadata.authors``, and a
component's ``authors`` when the model names one), timestamp (``metadata.timestamp``). The per-component
level of support and end-of-support date are CycloneDX properties: ``cdx:lifecycle:milestone:endOfSupport``
(official taxonomy) and ``septum:support:level`` (our addendum, values as in the model: active, limited,
security-only, none, unknown).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import re
from dataclasses import dataclass, field

from septum.model import schema as s


class SbomError(RuntimeError):
    """The SBOM could not be produced (missing library, invalid purl, ...)."""


@dataclass
class SbomEntry:
    """One distinct package of the device, for the SBOM and for summaries."""

    name: str
    version: str
    purl: str | None
    supplier: str
    author: str
    license: str
    support: str
    end_of_support: dt.date | None
    partitions: list[str] = field(default_factory=list)
    depends_on: tuple[str, ...] = ()
    source: str = "model"  # "model" or "installed"

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


def entries(model: s.Model, *, installed: bool = False) -> list[SbomEntry]:
    """The device's packages, merged across partitions (same purl, or same name and version)."""
    by_ref: dict[str, SbomEntry] = {}
    for part, comps in model.components.items():
        for c in comps:
            e = SbomEntry(c.name, c.version, c.purl, c.supplier, c.author, c.license, c.support,
                          c.end_of_support, [], c.depends_on)
            e = by_ref.setdefault(e.ref, e)
            if part not in e.partitions:
                e.partitions.append(part)
    if installed:
        for part, pkgs in installed_packages(model).items():
            for e in pkgs:
                e = by_ref.setdefault(e.ref, e)
                if part not in e.partitions:
                    e.partitions.append(part)
    return sorted(by_ref.values(), key=lambda e: (e.name.lower(), e.version))


# ----------------------------------------------------------------------------- installed packages


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_packages(model: s.Model) -> dict[str, list[SbomEntry]]:
    """For each partition with a Python entry point (``runs: pkg.mod:func``), the installed distribution
    that provides the top-level package and everything it requires, from the current environment.

    A partition whose package is not installed as a distribution (e.g. only on ``sys.path``) contributes
    nothing: we list what we can prove is installed, never guesses.
    """
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError as e:  # pragma: no cover
        raise SbomError("the 'packaging' package is needed to read installed requirements") from e
    providers = md.packages_distributions()
    out: dict[str, list[SbomEntry]] = {}
    for pname, part in model.partitions.items():
        module = part.runs.split(":", 1)[0] if part.runs else ("septum" if part.service else None)
        if module is None:
            continue
        top = module.split(".", 1)[0]
        seen: dict[str, SbomEntry] = {}
        todo = list(dict.fromkeys(providers.get(top, [])))
        while todo:
            dname = todo.pop()
            key = _normalise(dname)
            if key in seen:
                continue
            try:
                dist = md.distribution(dname)
            except md.PackageNotFoundError:
                continue
            meta = dist.metadata
            version = dist.version
            deps: list[str] = []
            for req_text in dist.requires or []:
                try:
                    req = Requirement(req_text)
                except InvalidRequirement:
                    continue
                if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                    continue  # optional extras and other platforms are not installed for this partition
                deps.append(req.name)
                todo.append(req.name)
            seen[key] = SbomEntry(
                name=meta["Name"] or dname, version=version, purl=f"pkg:pypi/{key}@{version}",
                supplier=meta.get("Maintainer") or meta.get("Author") or "", author=meta.get("Author") or "",
                license=meta.get("License-Expression") or "", support="unknown", end_of_support=None,
                partitions=[], depends_on=tuple(deps), source="installed",
            )
        out[pname] = list(seen.values())
    return out


# ----------------------------------------------------------------------------- CycloneDX


def build_bom(model: s.Model, *, installed: bool = False, timestamp: dt.datetime | None = None):  # type: ignore[no-untyped-def]
    """A ``cyclonedx.model.bom.Bom`` for the device."""
    try:
        from cyclonedx.model import Property
        from cyclonedx.model.bom import Bom, BomMetaData
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
        from cyclonedx.model.dependency import Dependency
        from cyclonedx.model.license import LicenseExpression
        from packageurl import PackageURL
    except ImportError as e:
        raise SbomError("the SBOM needs cyclonedx-python-lib: pip install 'septum[compliance]'") from e

    dev = model.device
    maker = OrganizationalEntity(name=dev.manufacturer) if dev.manufacturer else None
    device = Component(name=dev.name, version=dev.version, type=ComponentType.DEVICE, bom_ref="device",
                       supplier=maker, manufacturer=maker, description=dev.description or None)
    meta = BomMetaData(
        component=device,
        timestamp=timestamp or dt.datetime.now(dt.UTC),
        authors=[OrganizationalContact(name=dev.manufacturer or "unknown")],
        supplier=maker,
        properties=[Property(name="septum:generator", value="septum sbom (derived from the device model)")],
    )
    bom = Bom(metadata=meta)

    def depend(src: Component, targets: list[Component]) -> None:
        # Bom.register_dependency searches the existing set linearly on every call (quadratic for large
        # devices); each of our refs is registered exactly once, so we add the Dependency directly.
        bom.dependencies.add(Dependency(ref=src.bom_ref, dependencies=[Dependency(ref=t.bom_ref) for t in targets]))

    libs: dict[str, Component] = {}
    by_name: dict[str, Component] = {}
    items = entries(model, installed=installed)
    for e in items:
        props = [Property(name="septum:support:level", value=e.support),
                 Property(name="septum:partitions", value=",".join(sorted(e.partitions))),
                 Property(name="septum:source", value=e.source)]
        if e.end_of_support:
            props.append(Property(name="cdx:lifecycle:milestone:endOfSupport", value=e.end_of_support.isoformat()))
        purl = None
        if e.purl:
            try:
                purl = PackageURL.from_string(e.purl)
            except ValueError as err:
                raise SbomError(f"component {e.name} {e.version}: invalid purl {e.purl!r}: {err}") from err
        comp = Component(
            name=e.name, version=e.version, type=ComponentType.LIBRARY, bom_ref=e.ref, purl=purl,
            supplier=OrganizationalEntity(name=e.supplier) if e.supplier else None,
            authors=[OrganizationalContact(name=e.author)] if e.author else None,
            licenses=[LicenseExpression(e.license)] if e.license else None,
            properties=props,
        )
        libs[e.ref] = comp
        by_name.setdefault(_normalise(e.name), comp)
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
        depend(pc, [libs[e.ref] for e in items if pname in e.partitions])
    depend(device, list(part_comps.values()))
    for e in items:
        targets = [by_name[_normalise(d)] for d in e.depends_on if _normalise(d) in by_name]
        depend(libs[e.ref], targets)
    return bom


def sbom_json(model: s.Model, *, installed: bool = False, timestamp: dt.datetime | None = None) -> str:
    """CycloneDX 1.6 JSON text of the device SBOM."""
    from cyclonedx.output.json import JsonV1Dot6

    return JsonV1Dot6(build_bom(model, installed=installed, timestamp=timestamp)).output_as_string(indent=2)


def validate_sbom(text: str) -> list[str]:
    """Errors from cyclonedx-python-lib's strict CycloneDX 1.6 JSON validator (empty when valid)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    if errors is None:
        return []
    # the validator's messages quote the whole schema fragment; the first and last lines say what and where
    out = []
    for e in errors if isinstance(errors, list | tuple) else list(errors) or [errors]:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        out.append(f"{lines[0]} ({lines[-2]} {lines[-1]})" if len(lines) > 2 else " ".join(lines))
    return out
