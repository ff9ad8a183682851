"""The audit service restarted after a kill that landed between a commit and its feed-state update: the
supervisor events of that commit are in the log, the supervisor resends them (never acknowledged), and the
new process must skip them instead of logging them twice."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import msgspec
import pytest

from septum.crypto.keys import generate_keypair, load_public_key
from septum.model import Model
from septum.runtime.audit_feed import _encode_event
from septum.runtime.events import Event
from septum.services import audit_service
from septum.services.audit_log import Record, read_entries, verify
from septum.services.service_io import MODEL_CONFIG_KEY


class _Timer:
    def cancel(self) -> None:
        pass


def _partition(data_dir: Path, model: Model) -> Any:
    """Just what AuditService reads of its partition (no feed socket: acks are not under test here)."""
    clock = types.SimpleNamespace(wall_origin=1234.5, scale=1.0, wall=lambda: 1_700_000_000.0)
    return types.SimpleNamespace(
        name="audit", inputs={}, devices={}, data_dir=data_dir, clock=clock,
        config={MODEL_CONFIG_KEY: msgspec.to_builtins(model), "checkpoint_interval_s": 1e9},
        after=lambda delay, fn: _Timer(),
    )


def _event(seq: int) -> bytes:
    return _encode_event(Event(seq=seq, time=1_700_000_000.0 + seq, kind="restart", partition="ui",
                               fields={"n": seq}))


@pytest.mark.parametrize("state_lags", [True, False], ids=["killed-before-state-save", "clean"])
def test_events_of_a_commit_the_state_file_missed_are_not_logged_twice(
    tmp_path: Path, device_model: Model, state_lags: bool
) -> None:
    generate_keypair(tmp_path / audit_service.KEY_NAME, tmp_path / "audit.pub")
    p = _partition(tmp_path, device_model)
    first = audit_service.AuditService(p)
    for seq in range(1, 6):
        first.on_feed(_event(seq))
    first.commit()  # durable, and the state file says so
    for seq in range(6, 9):
        first.on_feed(_event(seq))
    if state_lags:
        first.writer.commit()  # durable in the log ... and then the process is killed before the state save
    else:
        first.commit()
    first.writer._close_fds()  # abandon without close(), as after kill -9
    first.writer._closed = True
    assert json.loads((tmp_path / audit_service.FEED_STATE).read_bytes())["durable"] == (5 if state_lags else 8)

    second = audit_service.AuditService(_partition(tmp_path, device_model))
    for seq in range(6, 11):  # the supervisor resends everything after the last acknowledgement (5)
        second.on_feed(_event(seq))
    second.close()
    entries, damage = read_entries(tmp_path / audit_service.LOG_NAME)
    assert damage is None
    seqs = [int(e.body.detail["sup_seq"]) for e in entries
            if isinstance(e.body, Record) and "sup_seq" in e.body.detail]
    assert seqs == list(range(1, 11))
    assert verify(tmp_path / audit_service.LOG_NAME, load_public_key(tmp_path / "audit.pub")).ok
