"""CAmkES assembly: a component per partition, fitting connectors, explicit dataport rights."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from septum.gen.camkes import CAMKES_NAME, generate, ident
from septum.model import load

from .conftest import example_models


@pytest.mark.parametrize("path", example_models(), ids=lambda p: p.parent.name + "/" + p.stem)
def test_assembly_grants_exactly_the_model(path: Path) -> None:
    model, source = load(path)
    text = generate(model, source)[CAMKES_NAME]
    # every dataport declared in a component has an explicit access right, never RWX
    declared = Counter()
    for comp, body in re.findall(r"component (\w+) \{(.*?)\n\}", text, re.S):
        for port in re.findall(r"dataport Buf\(\d+\) (\w+);", body):
            declared[(comp, port)] += 1
    instances = dict(re.findall(r"component (\w+) (\w+);", text))  # type -> instance
    access = dict(re.findall(r'(\w+\.\w+)_access = "(\w+)";', text))
    for comp, port in declared:
        assert f"{instances[comp]}.{port}" in access, f"{comp}.{port} has no explicit access"
    assert set(access.values()) <= {"R", "RW"}
    # shared data connections read back as exactly the model's channels, sender RW, receiver R
    flows = Counter()
    for src, sport, dst, dport in re.findall(r"connection seL4SharedData \w+\(from (\w+)\.(\w+), to (\w+)\.(\w+)\);",
                                             text):
        assert access[f"{src}.{sport}"] == "RW" and access[f"{dst}.{dport}"] == "R"
        flows[(src, dst)] += 1
    assert flows == Counter((ident(c.src), ident(c.dst)) for c in model.channels)
    notes = Counter(re.findall(r"connection seL4Notification \w+\(from (\w+)\.\w+, to (\w+)\.\w+\);", text))
    assert notes == flows
    owned = [i for i, iface in model.interfaces.items() if iface.enabled and model.owner_of(i)]
    assert len(re.findall(r"connection seL4HardwareMMIO ", text)) == len(owned)
    assert len(re.findall(r"connection seL4HardwareInterrupt ", text)) == len(owned)
    assert "RWX" not in text


def test_reserved_words_are_not_used_as_names() -> None:
    assert ident("control") == "control_pd"
    assert ident("hospital-net") == "hospital_net"
