"""Property-based: a YAML tag and/or a value put in place of any scalar of the reference pump model never
makes `septum check` raise a traceback; a value PyYAML cannot build for its tag, or a tag the model does not
allow, always gives exit 2 with every message located (file:line:col)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from septum.cli import cli

PUMP_TEXT = (Path(__file__).parents[2] / "examples" / "infusion_pump" / "model.yaml").read_text()
LOCATED = re.compile(r"^\S+:\d+:\d+: error: .+")


def _plain_scalar_spans(text: str) -> list[tuple[int, int]]:
    """Where each plain (unquoted, not block) scalar value of a mapping is: from PyYAML's own node marks, so
    text inside a block scalar (a description that contains 'key: value') is never taken for a value."""
    spans: list[tuple[int, int]] = []
    todo = [yaml.compose(text, Loader=yaml.SafeLoader)]
    while todo:
        node = todo.pop()
        if isinstance(node, yaml.MappingNode):
            for _key, value in node.value:
                if isinstance(value, yaml.ScalarNode) and value.style is None and value.value:
                    spans.append((value.start_mark.index, value.end_mark.index))
                else:
                    todo.append(value)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
    return sorted(spans)


SPANS = _plain_scalar_spans(PUMP_TEXT)
# tags the model refuses whatever the value
REFUSED_TAGS = ("!!binary", "!!set", "!!omap", "!!pairs", "!x", "!!python/object:os.system")
TAGS = ["", "!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!str", "!!map", "!!seq", *REFUSED_TAGS]
SPECIAL = ["0x", "0b_", "0o9", "1_", "._", ".", "2026-13-45", "2026-02-30", "2026-01-01 25:00:00", "12:61",
           ".inf", "-.nan", "1e400", "yes", "~", "", "[1]", "{a: 1}", "aGk=", *("9" * n for n in (19, 20, 21, 100,
                                                                                             5000, 100_000))]
BODY = st.one_of(st.sampled_from(SPECIAL),
                 st.text(alphabet="0123456789abcdefxXoOeE+-._:~ ", min_size=1, max_size=12).map(str.strip))


def _pyyaml_refuses(text: str) -> bool:
    """Independent oracle: PyYAML's pure-Python SafeLoader cannot build this document."""
    try:
        yaml.load(text, Loader=yaml.SafeLoader)
    except Exception:  # any failure at all: not a valid document
        return True
    return False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=st.sampled_from(SPANS), tag=st.sampled_from(TAGS), body=BODY, keep=st.booleans())
def test_tag_value_mutations(span: tuple[int, int], tag: str, body: str,
                             keep: bool) -> None:
    start, end = span
    value = (tag + " " if tag else "") + (PUMP_TEXT[start:end] if keep else body)
    text = PUMP_TEXT[:start] + value + PUMP_TEXT[end:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        path.write_text(text)
        result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback for {value!r}: {result.exception!r}")
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert lines and all(LOCATED.match(line) for line in lines), result.stderr
    else:
        assert result.exit_code in (0, 1), result.output
    if tag in REFUSED_TAGS or _pyyaml_refuses(text):
        assert result.exit_code == 2, f"{value!r} at {start} was accepted"
