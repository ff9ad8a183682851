"""The audit service under the real runtime: records from every partition and the supervisor, a log that
verifies after the device stops, and no acknowledged record lost when the audit partition is killed."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from e2e_helpers import require_root, running, tmpdir

from septum.crypto.keys import load_public_key
from septum.runtime.supervisor import PartitionFailed, remove_state_dir
from septum.services import audit_log
from septum.services.provisioning import provision_device

COUNT = 300


@pytest.fixture
def provisioned() -> tuple[Path, object]:
    require_root()
    out = tmpdir("septum-prov-")
    prov = provision_device(Path(__file__).parent / "models" / "audit_basic.yaml", out / "device")
    yield out, prov
    remove_state_dir(out)


def records(log: Path) -> list[audit_log.Record]:
    entries, damage = audit_log.read_entries(log)
    assert damage is None, damage
    return [e.body for e in entries if isinstance(e.body, audit_log.Record)]


def test_log_holds_every_partition_and_the_supervisor_and_verifies(provisioned: tuple[Path, object]) -> None:
    _out, prov = provisioned
    state = tmpdir("septum-svc-")
    try:
        with running("audit_basic.yaml", provision=prov.folders, state=state) as sup:
            assert sup.events.wait_for(lambda e: e.kind == "producer_done", 30) is not None
        log = state / "data" / "audit" / "audit.log"
        result = audit_log.verify(log, load_public_key(prov.audit_public_key))
        assert result.ok, result.damage
        assert result.unsealed == 0  # sealed by the final checkpoint at stop
        recs = records(log)
        by = Counter((r.partition, r.event) for r in recs)
        assert by[("producer", "test.record")] == COUNT  # sender taken from the model's channel
        assert by[("producer", "test.p_audit")] == COUNT  # p.audit via the supervisor feed
        assert by[("supervisor", "supervisor.started")] >= 2
        assert by[("supervisor", "supervisor.stopping")] == 1
        exits = [r for r in recs if r.event == "supervisor.exited"]
        assert [r.detail["subject"] for r in exits] == ["producer"]  # audit stops last and logs the others
        assert sorted(int(r.message.split()[1]) for r in recs if r.event == "test.record") == list(range(COUNT))
    finally:
        remove_state_dir(state)


def test_killing_audit_mid_stream_loses_no_acknowledged_record(provisioned: tuple[Path, object]) -> None:
    _out, prov = provisioned
    state = tmpdir("septum-svc-")
    try:
        with running("audit_basic.yaml", provision=prov.folders, state=state) as sup:
            # wait until part of the stream is durable (acknowledged), then kill the audit process
            feed = sup._feed
            assert feed is not None
            # re-checked at every event the producer's stream causes: some of it is acknowledged as durable
            first = sup.events.wait_for(lambda e: e.kind == "test.p_audit" and e.fields.get("n", 0) >= 40
                                        and feed.acked > 0, 30)
            assert first is not None
            acked_before = feed.acked
            os.kill(sup.partition_pids()["audit"], signal.SIGKILL)
            restarted = sup.events.wait_for(lambda e: e.kind == "started" and e.partition == "audit"
                                            and e.fields.get("restarts") == 1, 10)
            assert restarted is not None
            assert sup.events.wait_for(lambda e: e.kind == "producer_done", 30) is not None
            assert sup.events.wait_for(lambda e: e.kind == "ready" and e.partition == "audit"
                                       and e.seq > restarted.seq, 10) is not None
        history = sup.events.history
        log = state / "data" / "audit" / "audit.log"
        assert audit_log.verify(log, load_public_key(prov.audit_public_key)).ok
        recs = records(log)
        logged = {int(r.detail["sup_seq"]) for r in recs if "sup_seq" in r.detail}
        forwarded = {e.seq for e in history if e.source == "supervisor" or e.fields.get("audit")}
        # every supervisor event and p.audit record up to the stop is in the log: the acknowledged ones
        # before the kill, and the unacknowledged ones resent to the new audit process
        stop_seq = next(e.seq for e in history if e.kind == "stopping")
        missing = sorted(s for s in forwarded if s <= stop_seq and s not in logged)
        assert missing == []
        assert acked_before > 0 and all(s in logged for s in forwarded if s <= acked_before)
        # no supervisor event is logged twice (the restarted service skips what it already logged)
        seqs = [int(r.detail["sup_seq"]) for r in recs if "sup_seq" in r.detail]
        assert len(seqs) == len(set(seqs))
        p_audit = sorted(int(r.detail["n"]) for r in recs if r.event == "test.p_audit")
        assert p_audit == list(range(COUNT))
        assert any(r.event == "supervisor.restart" and r.detail["subject"] == "audit" for r in recs)
    finally:
        remove_state_dir(state)


def test_audit_refuses_to_start_without_its_key() -> None:
    require_root()
    with pytest.raises(PartitionFailed, match="audit key not provisioned"):
        with running("audit_basic.yaml", ready_timeout=5):
            pass
