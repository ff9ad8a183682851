"""OSV loading and matching: each range kind, each edge, withdrawn records, malformed input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from septum.knowledge.osv import OsvAffected, OsvError, OsvRange, affects, load_osv
from septum.knowledge.versions import VersionError, generic_key, pep440_key, semver_key
from septum.model.schema import Component

FIXTURES = Path(__file__).parent / "osv"


def rng(kind: str, *events: tuple[str, str]) -> OsvRange:
    return OsvRange(kind, tuple(events))


def aff(eco: str, *ranges: OsvRange, versions: tuple[str, ...] = ()) -> OsvAffected:
    return OsvAffected(eco, "pkg", ranges, versions)


def hit(a: OsvAffected, v: str) -> bool:
    return affects(a, v) is not None


# ------------------------------------------------------------------ range kinds and edges

def test_introduced_zero_fixed_is_half_open() -> None:
    a = aff("PyPI", rng("ECOSYSTEM", ("introduced", "0"), ("fixed", "2.0")))
    assert hit(a, "0.1") and hit(a, "1.9.9")
    assert not hit(a, "2.0")  # fixed is exclusive
    assert not hit(a, "2.0.1")


def test_introduced_is_inclusive_lower_bound() -> None:
    a = aff("PyPI", rng("ECOSYSTEM", ("introduced", "1.5"), ("fixed", "2.0")))
    assert not hit(a, "1.4.9")
    assert hit(a, "1.5") and hit(a, "1.5.0")  # PEP 440: 1.5 == 1.5.0


def test_last_affected_is_inclusive_upper_bound() -> None:
    a = aff("PyPI", rng("ECOSYSTEM", ("introduced", "1.0"), ("last_affected", "1.4")))
    assert hit(a, "1.4")
    assert not hit(a, "1.4.1")
    assert not hit(a, "0.9")


def test_open_range_affects_everything_after_introduced() -> None:
    a = aff("PyPI", rng("ECOSYSTEM", ("introduced", "3.0")))
    assert hit(a, "3.0") and hit(a, "99")
    assert not hit(a, "2.99")


def test_several_intervals_in_one_range_and_unsorted_events() -> None:
    # events out of order on purpose: evaluation sorts them by version
    a = aff("PyPI", rng("ECOSYSTEM", ("introduced", "2.0"), ("fixed", "1.2"), ("introduced", "1.0"),
                        ("fixed", "2.1")))
    assert hit(a, "1.1") and not hit(a, "1.5") and hit(a, "2.0") and not hit(a, "2.1")
    assert not hit(a, "0.9")


def test_introduced_and_fixed_at_same_version_affect_nothing_there() -> None:
    a = aff("PyPI", rng("ECOSYSTEM", ("introduced", "1.0"), ("fixed", "1.0")))
    assert not hit(a, "1.0")


def test_limit_caps_the_range() -> None:
    a = aff("PyPI", rng("ECOSYSTEM", ("introduced", "0"), ("limit", "2.0")))
    assert hit(a, "1.9")
    assert not hit(a, "2.0")


def test_pep440_prerelease_and_post_release_ordering() -> None:
    a = aff("PyPI", rng("ECOSYSTEM", ("introduced", "0"), ("fixed", "2.0")))
    assert hit(a, "2.0rc1")  # a release candidate of the fixed version is still affected
    assert not hit(a, "2.0.post1")
    b = aff("PyPI", rng("ECOSYSTEM", ("introduced", "1.0"), ("fixed", "1.0.post2")))
    assert hit(b, "1.0.post1") and not hit(b, "1.0.post2")


def test_semver_range_prerelease_and_build_metadata() -> None:
    a = aff("npm", rng("SEMVER", ("introduced", "1.0.0-alpha"), ("fixed", "1.0.0")))
    assert hit(a, "1.0.0-alpha") and hit(a, "1.0.0-beta.2") and hit(a, "1.0.0-rc.1")
    assert not hit(a, "1.0.0") and not hit(a, "1.0.0+build.5")
    assert semver_key("1.0.0-alpha.1") < semver_key("1.0.0-alpha.beta")  # numeric before alphanumeric
    assert semver_key("1.0.0-beta.2") < semver_key("1.0.0-beta.11")  # numerically


def test_semver_range_type_wins_over_ecosystem_ordering() -> None:
    # a SEMVER range in the PyPI ecosystem still uses semantic versioning
    a = aff("PyPI", rng("SEMVER", ("introduced", "1.0.0"), ("fixed", "1.2.0")))
    assert hit(a, "1.1.0")
    with pytest.raises(VersionError):
        affects(a, "1.1")  # not a semantic version


def test_ecosystem_fallback_for_unknown_ecosystem() -> None:
    a = aff("Debian:12", rng("ECOSYSTEM", ("introduced", "0"), ("fixed", "3.0.11-1")))
    assert hit(a, "3.0.9-1") and hit(a, "3.0.11-0")
    assert not hit(a, "3.0.11-1") and not hit(a, "3.1")
    assert generic_key("1.0") == generic_key("1.0.0")
    assert generic_key("1.10") > generic_key("1.9")


def test_git_ranges_are_ignored_but_explicit_versions_match() -> None:
    a = aff("PyPI", rng("GIT", ("introduced", "abc123"), ("fixed", "def456")), versions=("1.2.3",))
    assert hit(a, "1.2.3")
    assert not hit(a, "1.2.4")


def test_explicit_versions_compare_by_ecosystem_equality() -> None:
    a = aff("PyPI", versions=("2.0",))
    assert affects(a, "2.0.0") == ("versions", ())
    assert not hit(a, "2.0.1")


def test_pep440_rejects_garbage() -> None:
    with pytest.raises(VersionError):
        pep440_key("not a version")


@given(
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
)
def test_semver_interval_agrees_with_tuple_order(lo: tuple[int, ...], hi: tuple[int, ...], v: tuple[int, ...]) -> None:
    lo, hi = min(lo, hi), max(lo, hi)  # a well-formed range opens before it closes
    s = ".".join(map(str, lo)), ".".join(map(str, hi)), ".".join(map(str, v))
    a = aff("npm", rng("SEMVER", ("introduced", s[0]), ("fixed", s[1])))
    assert hit(a, s[2]) == (lo <= v < hi)


# ------------------------------------------------------------------ database and components

def comp(name: str, version: str, purl: str | None) -> Component:
    return Component(name=name, version=version, purl=purl)


def test_fixture_folder_matches_by_purl_and_skips_withdrawn() -> None:
    db = load_osv(FIXTURES)
    assert db.files == 3 and len(db.records) == 4 and db.withdrawn == 1
    crypto = db.match(comp("cryptography", "43.0.1", "pkg:pypi/cryptography@43.0.1"))
    assert [m.record.id for m in crypto] == ["PYSEC-TEST-0001"]
    assert crypto[0].fixed == ("44.0.1",) and crypto[0].record.severity == "HIGH"
    assert db.match(comp("cryptography", "44.0.1", "pkg:pypi/cryptography@44.0.1")) == []
    # withdrawn record against msgspec, and an npm record of the same name: neither matches
    assert db.match(comp("msgspec", "0.22.0", "pkg:pypi/msgspec@0.22.0")) == []
    # name normalisation: the record says "HL7"; last_affected is inclusive
    assert [m.record.id for m in db.match(comp("hl7", "0.4.5", "pkg:pypi/hl7@0.4.5"))] == ["OSV-TEST-0002"]
    assert db.match(comp("hl7", "0.4.6", "pkg:pypi/hl7@0.4.6")) == []


def test_component_without_purl_is_not_guessed() -> None:
    db = load_osv(FIXTURES)
    assert db.match(comp("cryptography", "43.0.1", None)) == []


def test_unparseable_component_version_is_reported_not_clean() -> None:
    db = load_osv(FIXTURES)
    ms = db.match(comp("cryptography", "banana", "pkg:pypi/cryptography@banana"))
    assert len(ms) == 1 and ms[0].how == "unknown" and "could not compare" in ms[0].note


def test_zip_export_loads(tmp_path: Path) -> None:
    z = tmp_path / "all.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(FIXTURES / "PYSEC-TEST-0001.json", "PYSEC-TEST-0001.json")
    db = load_osv(z)
    assert [r.id for r in db.records] == ["PYSEC-TEST-0001"]


# ------------------------------------------------------------------ malformed input

@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"summary": "x"}', "no string 'id'"),
        ('{"id": "X", "affected": {}}', "'affected' must be a list"),
        ('{"id": "X", "affected": [{"package": {"name": "a"}}]}', "'ecosystem' and 'name'"),
        ('{"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},'
         ' "ranges": [{"type": "RANGE", "events": [{"introduced": "0"}]}]}]}', "SEMVER, ECOSYSTEM or GIT"),
        ('{"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},'
         ' "ranges": [{"type": "ECOSYSTEM", "events": [{"broken": "1"}]}]}]}', "unknown event"),
        ('{"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},'
         ' "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "1"}]}]}]}', "needs an 'introduced'"),
        ('{"id": "X", "withdrawn": 5}', "'withdrawn' must be"),
    ],
)
def test_malformed_records_raise_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(OsvError) as e:
        load_osv(f)
    assert message in str(e.value) and "bad.json" in str(e.value)


def test_missing_path_empty_folder_and_bad_zip(tmp_path: Path) -> None:
    with pytest.raises(OsvError, match="no such file"):
        load_osv(tmp_path / "nope")
    with pytest.raises(OsvError, match=r"no OSV \.json records"):
        load_osv(tmp_path)
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(OsvError, match="not a valid zip"):
        load_osv(bad)


def test_list_file_reports_index(tmp_path: Path) -> None:
    f = tmp_path / "list.json"
    f.write_text(json.dumps([{"id": "A"}, {"nope": 1}]))
    with pytest.raises(OsvError, match=r"list.json\[1\]"):
        load_osv(f)
