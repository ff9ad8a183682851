"""Version ordering per ecosystem, for matching components against OSV ranges.

OSV ranges are only meaningful under the ordering of the ecosystem that published them: PyPI versions
follow PEP 440 (``1.0rc1 < 1.0 < 1.0.post1``), SEMVER follows semver.org 2.0 (pre-releases sort before
the release, build metadata is ignored), and everything else gets a conservative generic ordering
(numeric runs compare as numbers, text runs as text). A version that cannot be parsed raises
``VersionError`` so the caller can report it instead of silently calling a component clean.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from septum.errors import SeptumError

try:  # packaging implements PEP 440 exactly; it is a runtime dependency of the compliance extra
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - exercised only on broken installs
    Version = None  # type: ignore[assignment,misc]
    InvalidVersion = ValueError  # type: ignore[assignment,misc]


class VersionError(SeptumError, ValueError):
    """A version string that the ecosystem's ordering cannot parse."""


Key = Any  # an orderable key; only keys from the same ecosystem are ever compared


# ----------------------------------------------------------------------------- PEP 440 (PyPI)

def pep440_key(v: str) -> Key:
    if Version is None:  # pragma: no cover
        raise VersionError("the 'packaging' package is needed to compare PyPI versions")
    try:
        return Version(v)
    except InvalidVersion as e:
        raise VersionError(f"not a PEP 440 version: {v!r}") from e


# ----------------------------------------------------------------------------- SemVer 2.0

_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def semver_key(v: str) -> Key:
    m = _SEMVER.match(v.strip())
    if not m:
        raise VersionError(f"not a semantic version: {v!r}")
    major, minor, patch, pre = m.groups()
    # A release sorts after all its pre-releases: (1, ) > (0, ids...).
    if pre is None:
        pre_key: tuple[Any, ...] = (1,)
    else:
        ids = []
        for ident in pre.split("."):
            # numeric identifiers sort before alphanumeric ones, and numerically among themselves
            ids.append((0, int(ident), "") if ident.isdigit() else (1, 0, ident))
        pre_key = (0, tuple(ids))
    return (int(major), int(minor), int(patch), pre_key)


# ----------------------------------------------------------------------------- generic fallback

_TOKEN = re.compile(r"\d+|[A-Za-z]+")


def generic_key(v: str) -> Key:
    """Split into numeric and alphabetic runs; numbers compare numerically and before text.

    Good enough for the dotted versions most ecosystems use; not a Debian/RPM/Maven comparator (those
    have their own rules, e.g. ``~``); callers should treat results for such ecosystems as best effort.
    """
    tokens = _TOKEN.findall(v)
    if not tokens:
        raise VersionError(f"version has no comparable part: {v!r}")
    out: list[tuple[int, int, str]] = []
    for t in tokens:
        out.append((0, int(t), "") if t.isdigit() else (1, 0, t.lower()))
    # strip trailing zero components so that 1.0 == 1.0.0
    while len(out) > 1 and out[-1] == (0, 0, ""):
        out.pop()
    return tuple(out)


# ecosystem name (OSV spelling, before any ':' suffix) -> key function
ECOSYSTEM_KEYS: dict[str, Callable[[str], Key]] = {
    "PyPI": pep440_key,
    "npm": semver_key,
    "crates.io": semver_key,
    "Go": semver_key,
    "Hex": semver_key,
    "Pub": semver_key,
}


def key_for(ecosystem: str, range_type: str = "ECOSYSTEM") -> Callable[[str], Key]:
    """The ordering to use for a range of ``range_type`` in ``ecosystem``.

    OSV: a SEMVER range always uses semantic versioning; an ECOSYSTEM range uses the ecosystem's own
    ordering (PEP 440 for PyPI, ...), falling back to the generic ordering for ecosystems we do not know.
    """
    if range_type == "SEMVER":
        return semver_key
    base = ecosystem.split(":", 1)[0]
    return ECOSYSTEM_KEYS.get(base, generic_key)

