"""Offline matching of components against OSV vulnerability records.

Input is a local file or folder (or a ``.zip`` such as the per-ecosystem ``all.zip`` exports of
osv.dev) holding records in the OSV schema (ossf/osv-schema). Nothing here touches the network.

Range semantics follow the schema:
- ``affected[].versions`` lists affected versions explicitly;
- ``affected[].ranges[]`` of type ``SEMVER`` or ``ECOSYSTEM`` hold ``events``; sorted by version, an
  ``introduced`` event opens an affected interval (``"0"`` means "from the beginning"), ``fixed`` closes it
  exclusively, ``last_affected`` closes it inclusively, and ``limit`` caps it;
- ``GIT`` ranges name commits, which a component version cannot be placed between: they are ignored (the
  explicit ``versions`` list that OSV exports alongside them still matches);
- a record with ``withdrawn`` set is kept for the record but never matches.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from septum.errors import SeptumError
from septum.model.schema import Component

from .versions import Key, VersionError, key_for


class OsvError(SeptumError, ValueError):
    """Malformed or unreadable OSV input; the message names the file and the problem."""


# purl type -> OSV ecosystem name
PURL_ECOSYSTEMS: dict[str, str] = {
    "pypi": "PyPI", "npm": "npm", "cargo": "crates.io", "golang": "Go", "maven": "Maven",
    "gem": "RubyGems", "nuget": "NuGet", "composer": "Packagist", "hex": "Hex", "pub": "Pub",
    "deb": "Debian", "apk": "Alpine", "cocoapods": "CocoaPods", "swift": "SwiftURL",
}

_PURL = re.compile(r"^pkg:(?P<type>[A-Za-z.+-]+)/(?P<path>[^@?#]+)(?:@(?P<version>[^?#]+))?")


def parse_purl(purl: str) -> tuple[str, str, str | None]:
    """``pkg:pypi/cryptography@43.0.1`` -> ("pypi", "cryptography", "43.0.1"); raises OsvError."""
    m = _PURL.match(purl)
    if not m:
        raise OsvError(f"not a package URL: {purl!r}")
    from urllib.parse import unquote

    return m["type"].lower(), unquote(m["path"]), unquote(m["version"]) if m["version"] else None


def normalise_name(ecosystem: str, name: str) -> str:
    base = ecosystem.split(":", 1)[0]
    if base == "PyPI":  # PEP 503: case-insensitive, runs of -_. are equivalent
        return re.sub(r"[-_.]+", "-", name).lower()
    if base in ("npm", "crates.io", "NuGet", "Packagist", "Hex", "Pub"):
        return name.lower()
    return name


def component_package(c: Component) -> tuple[str, str, str] | None:
    """(OSV ecosystem, normalised name, version) of a component, or None when it names no ecosystem."""
    if not c.purl:
        return None
    ptype, path, pversion = parse_purl(c.purl)
    eco = PURL_ECOSYSTEMS.get(ptype)
    if eco is None:
        return None
    if eco == "Maven":
        path = path.replace("/", ":", 1)
    elif eco not in ("Go", "npm"):
        path = path.rsplit("/", 1)[-1]  # e.g. pkg:deb/debian/openssl -> openssl
    # the model's version field is authoritative; the purl's version is a copy of it
    return eco, normalise_name(eco, path), c.version or pversion or ""


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class OsvRange:
    type: str  # SEMVER | ECOSYSTEM | GIT
    events: tuple[tuple[str, str], ...]  # (kind, version) with kind introduced|fixed|last_affected|limit


@dataclass(frozen=True)
class OsvAffected:
    ecosystem: str
    name: str  # normalised
    ranges: tuple[OsvRange, ...]
    versions: tuple[str, ...]


@dataclass(frozen=True)
class OsvRecord:
    id: str
    summary: str
    aliases: tuple[str, ...]
    severity: str  # a label ("HIGH", a CVSS vector, ...) or ""
    withdrawn: str | None
    affected: tuple[OsvAffected, ...]
    source: str  # file the record came from


@dataclass(frozen=True)
class OsvMatch:
    record: OsvRecord
    component: Component
    ecosystem: str
    how: str  # "range" | "versions"
    fixed: tuple[str, ...]  # versions that fix it, from the matching ranges
    note: str = ""


_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


def _expect(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise OsvError(f"{where}: {what}")


def parse_record(data: Any, where: str) -> OsvRecord:
    """One OSV record (a parsed JSON object) checked and converted; OsvError names ``where`` on a bad one."""
    _expect(isinstance(data, dict), where, "an OSV record must be a JSON object")
    rid = data.get("id")
    _expect(isinstance(rid, str) and bool(rid), where, "record has no string 'id'")
    where = f"{where} ({rid})"
    affected_raw = data.get("affected", [])
    _expect(isinstance(affected_raw, list), where, "'affected' must be a list")
    affected: list[OsvAffected] = []
    for i, a in enumerate(affected_raw):
        aw = f"{where} affected[{i}]"
        _expect(isinstance(a, dict), aw, "must be an object")
        pkg = a.get("package")
        ranges_raw = a.get("ranges", [])
        versions_raw = a.get("versions", [])
        _expect(isinstance(ranges_raw, list), aw, "'ranges' must be a list")
        _expect(isinstance(versions_raw, list) and all(isinstance(v, str) for v in versions_raw),
                aw, "'versions' must be a list of strings")
        if pkg is None:  # a GIT-only entry (no package) cannot match a component version
            continue
        _expect(isinstance(pkg, dict), aw, "'package' must be an object")
        eco, name, purl = pkg.get("ecosystem"), pkg.get("name"), pkg.get("purl")
        if (not isinstance(eco, str) or not isinstance(name, str)) and isinstance(purl, str):
            ptype, path, _ = parse_purl(purl)
            eco, name = PURL_ECOSYSTEMS.get(ptype, ptype), path.rsplit("/", 1)[-1]
        _expect(isinstance(eco, str) and isinstance(name, str), aw,
                "'package' needs string 'ecosystem' and 'name' (or a purl)")
        ranges: list[OsvRange] = []
        for j, r in enumerate(ranges_raw):
            rw = f"{aw} ranges[{j}]"
            _expect(isinstance(r, dict), rw, "must be an object")
            rtype = r.get("type")
            _expect(rtype in ("SEMVER", "ECOSYSTEM", "GIT"), rw,
                    f"'type' must be SEMVER, ECOSYSTEM or GIT, not {rtype!r}")
            events_raw = r.get("events")
            _expect(isinstance(events_raw, list) and bool(events_raw), rw, "'events' must be a non-empty list")
            events: list[tuple[str, str]] = []
            for k, ev in enumerate(events_raw):
                _expect(isinstance(ev, dict) and len(ev) == 1, f"{rw} events[{k}]",
                        "each event must be an object with exactly one key")
                (kind, ver), = ev.items()
                _expect(kind in _EVENT_KINDS and isinstance(ver, str), f"{rw} events[{k}]",
                        f"unknown event {kind!r} (expected one of {', '.join(_EVENT_KINDS)} with a string)")
                events.append((kind, ver))
            _expect(any(k == "introduced" for k, _ in events), rw, "a range needs an 'introduced' event")
            ranges.append(OsvRange(rtype, tuple(events)))
        affected.append(OsvAffected(eco, normalise_name(eco, name), tuple(ranges), tuple(versions_raw)))
    aliases = data.get("aliases", [])
    _expect(isinstance(aliases, list), where, "'aliases' must be a list")
    withdrawn = data.get("withdrawn")
    _expect(withdrawn is None or isinstance(withdrawn, str), where, "'withdrawn' must be a timestamp string")
    return OsvRecord(
        id=rid, summary=str(data.get("summary") or data.get("details", "")[:200] or ""),
        aliases=tuple(str(a) for a in aliases), severity=_severity_label(data),
        withdrawn=withdrawn, affected=tuple(affected), source=where.split(" (")[0],
    )


def _severity_label(data: dict[str, Any]) -> str:
    db = data.get("database_specific")
    if isinstance(db, dict) and isinstance(db.get("severity"), str):
        return db["severity"].upper()
    sev = data.get("severity")
    if isinstance(sev, list) and sev and isinstance(sev[0], dict):
        return str(sev[0].get("score", ""))
    return ""


# ----------------------------------------------------------------------------- range evaluation


def _affected_by_range(version: Key, rng: OsvRange, key: Any) -> tuple[bool, tuple[str, ...]]:
    """Walk the range's events in version order; the last event at or below ``version`` decides."""
    keyed: list[tuple[int, Any, str, str]] = []
    limits: list[Any] = []
    for kind, ver in rng.events:
        if kind == "limit":
            limits.append(ver)
            continue
        if kind == "introduced" and ver == "0":
            keyed.append((0, None, kind, ver))  # "0" sorts before every version
        else:
            keyed.append((1, key(ver), kind, ver))
    # events at the same version: introduced first, so "introduced: X, fixed: X" means "not affected"
    order = {"introduced": 0, "last_affected": 1, "fixed": 2}
    keyed.sort(key=lambda t: (1, t[1], order[t[2]]) if t[0] else (0, 0, order[t[2]]))
    affected = False
    for zero, k, kind, _ver in keyed:
        if kind == "introduced":
            if zero == 0 or version >= k:
                affected = True
        elif kind == "fixed":
            if version >= k:
                affected = False
        elif kind == "last_affected" and version > k:
            affected = False
    if affected and limits and all(version >= key(lim) for lim in limits if lim != "*"):
        affected = False
    fixed = tuple(v for kind, v in rng.events if kind == "fixed")
    return affected, fixed


def affects(affected: OsvAffected, version: str) -> tuple[str, tuple[str, ...]] | None:
    """How ``affected`` covers ``version`` ("versions" or "range", with fix versions), or None."""
    eco = affected.ecosystem
    if version in affected.versions:
        return "versions", ()
    exact_key = key_for(eco)
    try:
        vk = exact_key(version)
        if any(_safe_eq(exact_key, v, vk) for v in affected.versions):
            return "versions", ()
    except VersionError:
        pass
    for rng in affected.ranges:
        if rng.type == "GIT":
            continue
        key = key_for(eco, rng.type)
        vk = key(version)  # VersionError propagates: the caller reports "could not compare"
        hit, fixed = _affected_by_range(vk, rng, key)
        if hit:
            return "range", fixed
    return None


def _safe_eq(key: Any, v: str, vk: Any) -> bool:
    try:
        return bool(key(v) == vk)
    except VersionError:
        return False


# ----------------------------------------------------------------------------- database


@dataclass
class OsvDatabase:
    records: list[OsvRecord] = field(default_factory=list)
    files: int = 0
    # (ecosystem base, normalised name) -> [(record, affected entry)]
    index: dict[tuple[str, str], list[tuple[OsvRecord, OsvAffected]]] = field(default_factory=dict)

    def add(self, rec: OsvRecord) -> None:
        self.records.append(rec)
        for a in rec.affected:
            self.index.setdefault((a.ecosystem.split(":", 1)[0], a.name), []).append((rec, a))

    @property
    def withdrawn(self) -> int:
        return sum(1 for r in self.records if r.withdrawn)

    def match(self, component: Component) -> list[OsvMatch]:
        """Every non-withdrawn record affecting ``component`` (identified by its purl)."""
        try:
            pkg = component_package(component)
        except OsvError:
            return []
        if pkg is None:
            return []
        eco, name, version = pkg
        out: list[OsvMatch] = []
        seen: set[str] = set()
        for rec, aff in self.index.get((eco, name), ()):
            if rec.withdrawn or rec.id in seen:
                continue
            try:
                hit = affects(aff, version)
            except VersionError as e:
                # fail loud, never silently clean: report the record as a possible match
                out.append(OsvMatch(rec, component, eco, "unknown", (), note=f"could not compare versions: {e}"))
                seen.add(rec.id)
                continue
            if hit:
                seen.add(rec.id)
                out.append(OsvMatch(rec, component, eco, hit[0], hit[1]))
        return out


def _iter_json_documents(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        for p in files:
            try:
                yield str(p), p.read_bytes()
            except OSError as e:
                raise OsvError(f"{p}: cannot read: {e.strerror or e}") from e
        return
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                for name in sorted(zf.namelist()):
                    if name.endswith(".json"):
                        yield f"{path}!{name}", zf.read(name)
        except zipfile.BadZipFile as e:
            raise OsvError(f"{path}: not a valid zip archive") from e
        return
    try:
        yield str(path), path.read_bytes()
    except OSError as e:
        raise OsvError(f"{path}: cannot read: {e.strerror or e}") from e


def load_osv(path: str | Path) -> OsvDatabase:
    """Load OSV records from a JSON file (one record or a list), a folder of them, or a .zip export.

    Raises ``OsvError`` with the file and the problem for anything malformed or unreadable.
    """
    p = Path(path)
    if not p.exists():
        raise OsvError(f"{p}: no such file or folder")
    db = OsvDatabase()
    for where, raw in _iter_json_documents(p):
        db.files += 1
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise OsvError(f"{where}: not valid JSON: {e}") from e
        docs: Iterable[Any] = data if isinstance(data, list) else [data]
        for i, d in enumerate(docs):
            db.add(parse_record(d, where if not isinstance(data, list) else f"{where}[{i}]"))
    if db.files == 0:
        raise OsvError(f"{p}: no OSV .json records found")
    return db


def match_model(db: OsvDatabase, components: dict[str, tuple[Component, ...]]) -> list[tuple[str, OsvMatch]]:
    """(partition, match) for every component of every partition."""
    out: list[tuple[str, OsvMatch]] = []
    for part, comps in components.items():
        for c in comps:
            out.extend((part, m) for m in db.match(c))
    return out
