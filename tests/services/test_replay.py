"""A replayed remote command is rejected; expiry and the restart gap are enforced; memory is bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from septum.services.replay import ReplayGuard

T0 = 1_700_000_000.0


def _guard(**kw: float) -> ReplayGuard:
    return ReplayGuard(started_at=T0, **kw)  # type: ignore[arg-type]


def test_replay_is_rejected() -> None:
    g = _guard()
    assert g.check("his", 1, T0, T0 + 10, T0 + 1).ok
    v = g.check("his", 1, T0, T0 + 10, T0 + 2)
    assert not v.ok and "replayed" in v.reason
    assert g.check("other", 1, T0, T0 + 10, T0 + 2).ok  # sequences are per sender


def test_reordering_within_the_window_is_fine_once() -> None:
    g = _guard(window=8)
    for seq in (5, 3, 4, 9):
        assert g.check("his", seq, T0, T0 + 10, T0).ok
    assert not g.check("his", 3, T0, T0 + 10, T0).ok
    v = g.check("his", 1, T0, T0 + 10, T0)
    assert not v.ok and "too old" in v.reason


def test_expiry_and_clock_rules() -> None:
    g = _guard(max_lifetime_s=30, clock_skew_s=5)
    assert "expired" in g.check("his", 1, T0, T0 + 10, T0 + 16).reason
    assert "future" in g.check("his", 2, T0 + 100, T0 + 110, T0).reason
    assert "lifetime" in g.check("his", 3, T0, T0 + 3600, T0).reason
    assert "not after" in g.check("his", 4, T0, T0, T0).reason
    assert "before this device" in g.check("his", 5, T0 - 20, T0 + 5, T0).reason
    assert "malformed" in g.check("his", -1, T0, T0 + 1, T0).reason


def test_sender_table_is_bounded_and_fails_closed() -> None:
    g = _guard(max_senders=3)
    for i in range(3):
        assert g.check(f"s{i}", 1, T0, T0 + 5, T0).ok
    v = g.check("s3", 1, T0, T0 + 5, T0)
    assert not v.ok and "too many senders" in v.reason
    assert not g.check("s0", 1, T0, T0 + 5, T0).ok  # existing senders are still protected


@given(st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=300))
def test_no_sequence_is_ever_accepted_twice(seqs: list[int]) -> None:
    g = _guard(window=16)
    accepted: set[int] = set()
    for s in seqs:
        if g.check("his", s, T0, T0 + 10, T0).ok:
            assert s not in accepted
            accepted.add(s)
