"""The round trip catches any grant beyond the model's channels, and any missing one."""

from __future__ import annotations

from pathlib import Path

import pytest

from septum.gen.microkit import SDF_NAME, generate
from septum.gen.roundtrip import compare
from septum.gen.sdf_parse import parse
from septum.model import load

SMALL = Path(__file__).parent / "models" / "small.yaml"


def _sdf() -> tuple[object, str]:
    model, source = load(SMALL)
    return model, generate(model, source).files[SDF_NAME]


def _problems(model: object, text: str) -> list[str]:
    system, diags = parse(text, "mutated.system")
    assert system is not None and not [d for d in diags if d.severity == "error"]
    return compare(model, system)  # type: ignore[arg-type]


def test_unmodified_output_round_trips() -> None:
    model, text = _sdf()
    assert _problems(model, text) == []


@pytest.mark.parametrize(("old", "new", "expected"), [
    # the receiver gets write access: a reverse data flow
    ('<map mr="ch_orders" vaddr="0x20000000" perms="r" ', '<map mr="ch_orders" vaddr="0x20000000" perms="rw" ',
     "extra grant: 'control' can write region 'ch_orders' that 'net' can read"),
    # a third PD reads a channel region
    ('<map mr="ch_motor_cmd" vaddr="0x20000000" perms="r" cached="true" />',
     '<map mr="ch_motor_cmd" vaddr="0x20000000" perms="r" cached="true" />\n'
     '        <map mr="ch_orders" vaddr="0x20100000" perms="r" cached="true" />',
     "extra grant: 'net' can write region 'ch_orders' that 'driver' can read"),
    # the receiver may notify back
    ('<end pd="control" id="0" notify="false" />', '<end pd="control" id="0" notify="true" />',
     "let 'control' signal 'net'"),
    # a protected-procedure path appears
    ('<end pd="net" id="0" notify="true" />', '<end pd="net" id="0" notify="true" pp="true" />',
     "protected-procedure channel: 'net' may call 'control'"),
    # the sender loses its map: the channel is missing
    ('<map mr="ch_orders" vaddr="0x20000000" perms="rw" cached="true" />', "",
     "missing grant: model channel net -> control has no region 'ch_orders'"),
    # a device region is shared with a partition that does not own it
    ('<map mr="ch_orders" vaddr="0x20000000" perms="r" cached="true" />',
     '<map mr="ch_orders" vaddr="0x20000000" perms="r" cached="true" />\n'
     '        <map mr="dev_motor" vaddr="0x30000000" perms="rw" cached="false" />',
     "extra grant: 'control' maps device region 'dev_motor', which it does not own"),
])
def test_mutation_is_detected(old: str, new: str, expected: str) -> None:
    model, text = _sdf()
    assert old in text
    problems = _problems(model, text.replace(old, new, 1))
    assert any(expected in p for p in problems), problems


def test_missing_notification_channel_is_detected() -> None:
    model, text = _sdf()
    start = text.index("    <!-- channel orders:")
    end = text.index("</channel>", start) + len("</channel>\n")
    problems = _problems(model, text[:start] + text[end:])
    assert any("missing grant: 1 model channel(s) net -> control have no notification" in p for p in problems)
