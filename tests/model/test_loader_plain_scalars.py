"""Plain scalars read the short way (names, small decimal integers) have the value and type YAML 1.1 gives
them, like everything else the loader reads (issue 16): compared with PyYAML's safe loader on values put
into a partition's config (which takes booleans, numbers and strings); and the loader's internal tag for a
plain scalar cannot be smuggled in by spelling it in the document."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from septum.model import ModelError, loads
from septum.model.loader import _PLAIN

HEAD = "septum: 1\ndevice: {name: d, profile: debug}\npartitions:\n  a:\n    criticality: low\n    config:\n"


def _config(value_text: str) -> tuple[object, object]:
    """(the loader's value, PyYAML's value) for ``value_text`` as a config value; a value config does not
    take (null, a date) must be refused, located."""
    want = yaml.safe_load(f"v: {value_text}")["v"]
    try:
        model, _ = loads(HEAD + f"      v: {value_text}\n", "m.yaml")
    except ModelError as exc:
        assert want is None or isinstance(want, dt.date), exc
        assert all(str(i.location).startswith("m.yaml:7:") for i in exc.issues)
        return want, want
    return model.partitions["a"].config["v"], want


@pytest.mark.parametrize("text", [
    "0", "7", "123", "0123", "00", "09", "1_000", "123456789012345678", "٣", "x1", "_x", "Yes", "no", "NULL",
    "~", "1e3", "1.5", "+5", "-5", "0x1F", "0o17", "0b101", "10/s", "1:30", ".inf", "-.inf", ".nan", "tls1.3",
    "2026-01-01", "2026-01-01 10:00:00", "true", "On", "ñame", "Ⅻ",
])
def test_plain_scalar_values_match_pyyaml(text: str) -> None:
    got, want = _config(text)
    if isinstance(want, float) and want != want:  # nan
        assert isinstance(got, float) and got != got
        return
    assert got == want and type(got) is type(want)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789_-+.:eExob", min_size=1, max_size=22))
def test_number_like_plain_scalars_match_pyyaml(text: str) -> None:
    try:
        want = yaml.safe_load(f"v: {text}")
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, LookupError, OverflowError):
        want = None
    if want is None or not isinstance(want, dict) or set(want) != {"v"}:
        # PyYAML cannot read it as one plain value (or builds no valid value): the loader refuses it, located
        with pytest.raises(ModelError) as exc:
            loads(HEAD + f"      v: {text}\n", "m.yaml")
        assert all(str(i.location).startswith("m.yaml:") for i in exc.value.issues)
        return
    value = want["v"]
    if (isinstance(value, int) and not -(2**63) <= value <= 2**64 - 1) or isinstance(value, dt.date) \
            or value is None or (isinstance(value, float) and value != value) or len(text) > 40:
        return  # out of the model's integer range, null, dates and nan: covered by the tag tests
    got, _ = _config(text)
    assert got == value and type(got) is type(value)


def test_the_internal_plain_tag_spelled_in_the_document_is_refused() -> None:
    with pytest.raises(ModelError) as exc:
        loads(HEAD + f"      v: !<{_PLAIN}> 12\n", "m.yaml")
    (issue,) = exc.value.issues
    assert str(issue.location) == "m.yaml:7:10"
    assert "is not supported" in issue.message
