"""Microkit generation: valid, exact, deterministic; limits give clear mapping errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from septum.gen.layout import MappingError, plan_system
from septum.gen.microkit import REPORT_NAME, SDF_NAME, generate
from septum.gen.roundtrip import compare
from septum.gen.sdf_validate import errors, validate_text
from septum.model import load, loads

from .conftest import ROOT, example_models

COMMITTED = ROOT / "examples" / "infusion_pump" / "sel4"


@pytest.mark.parametrize("path", example_models(), ids=lambda p: p.parent.name + "/" + p.stem)
def test_every_example_generates_a_valid_exact_sdf(path: Path) -> None:
    model, source = load(path)
    files = generate(model, source).files
    system, diags = validate_text(files[SDF_NAME], SDF_NAME)
    assert system is not None and errors(diags) == []
    assert [d for d in diags if d.rule == "unused_mr"] == []
    assert compare(model, system) == []
    assert len(system.pds) == len(model.partitions)
    assert len(system.channels) == len(model.channels)


def test_generation_is_deterministic() -> None:
    model, source = load(example_models()[0])
    assert generate(model, source).files == generate(model, source).files


HAND_WRITTEN = {"core", "pds"}


def test_committed_pump_output_matches_regeneration(pump) -> None:  # type: ignore[no-untyped-def]
    model, source = pump
    files = generate(model, source, model_file="model.yaml").files
    # core/ (the safety core in C) and pds/ (the PD sources) beside the output are written by hand (docs/sel4.md)
    committed = {str(p.relative_to(COMMITTED)): p.read_text() for p in COMMITTED.rglob("*")
                 if p.is_file() and p.relative_to(COMMITTED).parts[0] not in HAND_WRITTEN}
    assert sorted(committed) == sorted(files), "files added or missing: regenerate examples/infusion_pump/sel4"
    for rel, text in files.items():
        assert committed[rel] == text, f"{rel} changed: run septum gen microkit and review the diff"


def _small():  # type: ignore[no-untyped-def]
    return load(Path(__file__).parent / "models" / "small.yaml")


def test_sender_maps_rw_receiver_r_and_only_sender_notifies() -> None:
    model, source = _small()
    sdf = generate(model, source).files[SDF_NAME]
    system, _ = validate_text(sdf, "x")
    assert system is not None
    for ch in model.channels:
        maps = {pd.name: m.perms for pd in system.pds for m in pd.maps if m.mr == f"ch_{ch.name}"}
        assert maps == {ch.src: "rw", ch.dst: "r"}
    for ch in system.channels:
        assert [e.notify for e in ch.ends] == [True, False]
        assert not any(e.pp for e in ch.ends)
    # channel ids are plain decimals
    assert re.findall(r'<end pd="\w+" id="([^"]+)"', sdf) and all(
        i.isdigit() for i in re.findall(r'<end pd="\w+" id="([^"]+)"', sdf))


def test_large_message_gets_region_rounded_up_to_pages() -> None:
    model, source = _small()
    plan = plan_system(model, source)
    status = next(r for r in plan.regions if r.name == "ch_status")
    # Blob: 20000 bytes + 4 length + 8 slot header -> 20016-byte slots, 2 of them, plus the 64-byte ring header
    assert status.size == 0xA000 and status.size % 0x1000 == 0
    assert status.size >= 64 + 2 * 20016


def test_disabled_interface_gets_no_device_access() -> None:
    model, source = _small()
    sdf = generate(model, source).files[SDF_NAME]
    assert "debug_uart" not in sdf
    assert 'name="dev_uplink"' in sdf and 'name="dev_motor"' in sdf


def test_header_agrees_with_sdf() -> None:
    model, source = _small()
    files = generate(model, source).files
    system, _ = validate_text(files[SDF_NAME], "x")
    assert system is not None
    header = files["include/net.h"]
    defines = dict(re.findall(r"#define (\w+) (\S+)", header))
    net = system.pd("net")
    assert net is not None
    by_mr = {m.mr: m for m in net.maps}
    assert int(defines["SEPTUM_CH_ORDERS_VADDR"].rstrip("ul"), 16) == by_mr["ch_orders"].vaddr
    assert int(defines["SEPTUM_CH_STATUS_VADDR"].rstrip("ul"), 16) == by_mr["ch_status"].vaddr
    ids = {e.id for ch in system.channels for e in ch.ends if e.pd == "net"}
    assert {int(defines["SEPTUM_CH_ORDERS_ID"].rstrip("u")), int(defines["SEPTUM_CH_STATUS_ID"].rstrip("u"))} == ids
    assert defines["SEPTUM_CH_ORDERS_WRITABLE"] == "1" and defines["SEPTUM_CH_STATUS_WRITABLE"] == "0"
    assert int(defines["SEPTUM_DEV_UPLINK_IRQ_ID"].rstrip("u")) == net.irqs[0].id


def test_report_names_every_channel_and_partition() -> None:
    model, source = _small()
    report = generate(model, source).files[REPORT_NAME]
    for name in list(model.partitions) + [c.name for c in model.channels] + ["uplink", "motor"]:
        assert f"| {name} |" in report


def test_no_domain_schedule_without_periods() -> None:
    model, source = load(Path(__file__).parent / "models" / "unperiodic.yaml")
    sdf = generate(model, source).files[SDF_NAME]
    assert "<domains>" not in sdf and "domain=" not in sdf


def _model_text(partitions: int, channels: list[tuple[str, str]], extra: str = "") -> str:
    parts = "\n".join(f"  p{i}: {{resources: {{priority: {i % 200}}}}}" for i in range(partitions))
    chans = "\n".join(f"  - {{name: c{i}, from: {a}, to: {b}, message: Ping}}" for i, (a, b) in enumerate(channels))
    return (f"septum: 1\ndevice: {{name: gen-limits}}\npartitions:\n{parts}\nmessages:\n  Ping:\n"
            f"    seq: {{type: int}}\n{extra}channels:\n{chans or '  []'}\n")


def test_too_many_partitions_is_a_mapping_error() -> None:
    model, source = loads(_model_text(64, []), "limits.yaml")
    with pytest.raises(MappingError) as exc:
        plan_system(model, source)
    assert "64 partitions" in str(exc.value) and "at most 63" in str(exc.value)
    assert "limits.yaml:" in str(exc.value)


def test_too_many_channels_for_one_partition_is_a_mapping_error() -> None:
    model, source = loads(_model_text(2, [("p0", "p1")] * 0 + [("p0", "p1") for _ in range(63)]), "many.yaml")
    with pytest.raises(MappingError) as exc:
        plan_system(model, source)
    assert "partition 'p0' needs 63 channel and interrupt ids" in str(exc.value)


def test_exactly_62_ids_fit() -> None:
    model, source = loads(_model_text(2, [("p0", "p1") for _ in range(62)]), "fit.yaml")
    files = generate(model, source).files
    _s, diags = validate_text(files[SDF_NAME], "x")
    assert errors(diags) == []


def test_unbounded_field_cannot_be_sized() -> None:
    # The loader already rejects unbounded fields; the layout still refuses rather than guess a size.
    from septum.gen.layout import _field_size
    from septum.model.schema import MessageField

    with pytest.raises(ValueError, match="field 'note' of message 'Ping' is a str without max_len"):
        _field_size("Ping", "note", MessageField(type="str"))
    assert _field_size("Ping", "ids", MessageField(type="list", items="int", max_items=3)) == 4 + 3 * 8


def test_budget_greater_than_period_is_a_mapping_error() -> None:
    text = _model_text(2, [("p0", "p1")]).replace("p1: {resources: {priority: 1}}",
                                                  "p1: {resources: {priority: 1, budget_ms: 20, period_ms: 10}}")
    model, source = loads(text, "budget.yaml")
    with pytest.raises(MappingError) as exc:
        plan_system(model, source)
    assert "budget_ms 20 greater than period_ms 10" in str(exc.value)
