"""The device SBOM: CycloneDX 1.6 JSON that the CycloneDX library's validator accepts, with NTIA elements."""

from __future__ import annotations

import datetime as dt
import json

from msgspec.structs import replace

from septum.compliance.sbom import entries, sbom_json, validate_sbom
from septum.model.schema import Component, Model

FIXED = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_pump_sbom_validates_and_has_ntia_elements(pump_model: Model) -> None:
    text = sbom_json(pump_model, timestamp=FIXED)
    assert validate_sbom(text) == []
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6" and bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["timestamp"].startswith("2025-01-02T03:04:05")
    assert bom["metadata"]["authors"] and bom["metadata"]["component"]["type"] == "device"
    libs = {c["bom-ref"]: c for c in bom["components"] if c["type"] == "library"}
    # msgspec runs in five partitions but is one component
    assert sorted(libs) == sorted({
        "pkg:pypi/cryptography@43.0.1", "pkg:pypi/hl7@0.4.5", "pkg:pypi/fhir.resources@8.3.0",
        "pkg:pypi/msgspec@0.22.0", "pkg:pypi/argon2-cffi@25.1.0"})
    for c in libs.values():
        assert c["supplier"]["name"] and c["name"] and c["version"] and c["purl"]
    props = {p["name"]: p["value"] for p in libs["pkg:pypi/cryptography@43.0.1"]["properties"]}
    assert props["cdx:lifecycle:milestone:endOfSupport"] == "2027-12-31"
    assert props["septum:support:level"] == "active"
    assert props["septum:partitions"] == "audit,network,update"
    hl7 = {p["name"]: p["value"] for p in libs["pkg:pypi/hl7@0.4.5"]["properties"]}
    assert hl7["septum:support:level"] == "limited" and "cdx:lifecycle:milestone:endOfSupport" not in hl7
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in bom["dependencies"]}
    assert deps["device"] == {f"partition:{p}" for p in pump_model.partitions}
    assert deps["partition:auth"] == {"pkg:pypi/argon2-cffi@25.1.0", "pkg:pypi/msgspec@0.22.0"}


def test_validator_rejects_a_broken_document(pump_model: Model) -> None:
    bom = json.loads(sbom_json(pump_model, timestamp=FIXED))
    bom["components"][0]["type"] = "nonsense"
    errors = validate_sbom(json.dumps(bom))
    assert errors and "nonsense" in errors[0]


def test_depends_on_between_components_and_ntia_gaps(pump_model: Model) -> None:
    comps = dict(pump_model.components)
    comps["ui"] = (*comps["ui"], Component(name="widgets", version="1.0", depends_on=("msgspec",)))
    m = replace(pump_model, components=comps)
    text = sbom_json(m, timestamp=FIXED)
    assert validate_sbom(text) == []
    deps = {d["ref"]: d.get("dependsOn", []) for d in json.loads(text)["dependencies"]}
    assert deps["component:widgets@1.0"] == ["pkg:pypi/msgspec@0.22.0"]
    gaps = {e.name: e.ntia_gaps() for e in entries(m)}
    assert gaps["widgets"] == ["supplier", "unique identifier (purl)"] and gaps["msgspec"] == []


def test_installed_packages_of_service_partitions_are_added(pump_model: Model) -> None:
    # service partitions run Septum itself; the installed septum distribution and its requirements join
    es = [e for e in entries(pump_model, installed=True) if e.source == "installed"]
    names = {e.name.lower() for e in es}
    assert "septum" in names and "pyyaml" in names  # msgspec merges into the model's own entry
    assert all(e.purl and e.purl.startswith("pkg:pypi/") for e in es)
    assert validate_sbom(sbom_json(pump_model, installed=True, timestamp=FIXED)) == []
