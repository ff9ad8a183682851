"""The MDS2 and STRIDE registries match their data files in both directions.

Answer functions (``@derives``) and evidence checks (``@evidence``) are registered by name; the shipped data
files cite those names. A name cited but not registered would fail at run time (or be refused as unknown); a
function registered but cited nowhere is dead code or a link broken by a rename. Both are caught here.
"""

from __future__ import annotations

from typing import Any

import pytest

from septum.compliance import mds2, stride
from septum.knowledge.shipped import shipped


def _mds2_cited() -> set[str]:
    return {item["derive"] for item in shipped("mds2.yaml")["items"] if item.get("derive") is not None}


def _threats_cited() -> set[str]:
    return {name for rule in shipped("threats.yaml")["threats"] for name in rule["mitigated_by"]}


def test_every_mds2_derive_name_has_a_function_and_every_function_is_cited() -> None:
    cited, registered = _mds2_cited(), set(mds2.DERIVE)
    assert cited, "mds2.yaml cites no derivation: the data file was not read"
    assert sorted(cited - registered) == [], "cited in septum/data/mds2.yaml but not registered with @derives"
    assert sorted(registered - cited) == [], "registered with @derives but cited by no item of mds2.yaml"


def test_every_threat_evidence_name_has_a_check_and_every_check_is_cited() -> None:
    cited, registered = _threats_cited(), set(stride.EVIDENCE)
    assert cited, "threats.yaml cites no evidence check: the data file was not read"
    assert sorted(cited - registered) == [], "cited in septum/data/threats.yaml but not registered with @evidence"
    assert sorted(registered - cited) == [], "registered with @evidence but cited by no rule of threats.yaml"


@pytest.mark.parametrize(("register", "registry"), [(mds2.derives, mds2.DERIVE), (stride.evidence, stride.EVIDENCE)])
def test_a_name_registered_twice_is_refused(register: Any, registry: dict[str, Any]) -> None:
    name = next(iter(registry))
    before = dict(registry)
    with pytest.raises(ValueError, match="registered twice"):
        register(name)(lambda *a: None)
    assert registry == before
