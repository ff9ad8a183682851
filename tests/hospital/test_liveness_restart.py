"""A wedged listener under the real supervisor: the partition's own liveness probe finds it, the partition
ends with the reason, the supervisor restarts it under its policy, and the audit log (through the
supervisor's event feed) records the exit with that reason and the restart."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from septum.model import load
from septum.runtime.sandbox.probe import probe
from septum.runtime.supervisor import Supervisor, remove_state_dir
from septum.services import audit_log
from septum.services.provisioning import provision_device

MODEL = Path(__file__).parent / "models" / "liveness.yaml"


def _dir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o711)  # partitions (other uids) must traverse it
    return d


def test_a_wedged_listener_is_restarted_by_the_supervisor_with_an_audited_reason() -> None:
    if not probe().root:
        print("SKIP: partitions run under their own uids and need root")
        pytest.skip("needs root (partitions run under their own uids)")
    from septum_pump.rig import free_tcp_ports

    prov_dir, state = _dir("septum-live-prov-"), _dir("septum-live-")
    try:
        prov = provision_device(MODEL, prov_dir / "device")
        model, source = load(MODEL)
        port = free_tcp_ports(1)[0]
        sup = Supervisor(model, source, model_dir=MODEL.parent, state_dir=state, check=False,
                         provision=prov.folders, ports={"lan": port})
        sup.start()
        try:
            assert sup.wait_ready(30), "; ".join(sup.failures)
            ev = sup.events
            first = ev.wait_for(lambda e: e.kind == "serving" and e.fields.get("first_run") is True, 20, after=0)
            assert first is not None and first.fields["port"] == port  # this run's port reached the probe
            wedged = ev.wait_for(lambda e: e.kind == "listener_wedged", 20, after=first.seq)
            assert wedged is not None
            exited = ev.wait_for(lambda e: e.kind == "exited" and e.partition == "server", 20, after=wedged.seq)
            assert exited is not None, [(e.kind, e.partition, e.fields) for e in ev.history[-20:]]
            assert "liveness: lan (tls_connect 127.0.0.1:" in exited.fields["error"]
            assert "failed 3 probe(s) in a row" in exited.fields["error"]
            restart = ev.wait_for(lambda e: e.kind == "restart" and e.partition == "server", 10, after=exited.seq)
            assert restart is not None and "liveness" in restart.fields["why"]
            again = ev.wait_for(lambda e: e.kind == "serving" and e.fields.get("first_run") is False, 20,
                                after=restart.seq)
            assert again is not None
            # the restarted listener answers its probes: no further exit over many probe periods
            assert ev.wait_for(lambda e: e.kind == "exited" and e.partition == "server", 3, after=again.seq) is None
            failed = [e for e in ev.history if e.kind == "liveness_failed" and e.partition == "server"]
            assert len(failed) == 1  # reported once, when the first probe failed
        finally:
            sup.stop()
        entries, damage = audit_log.read_entries(state / "data" / "audit" / "audit.log")
        assert damage is None, damage
        recs = [e.body for e in entries if isinstance(e.body, audit_log.Record)]
        exits = [r for r in recs if r.event == "supervisor.exited" and r.detail.get("subject") == "server"]
        assert exits and "liveness: lan" in str(exits[0].detail.get("error")), [r.detail for r in exits]
        assert any(r.event == "supervisor.restart" and r.detail.get("subject") == "server" for r in recs)
        assert any(r.event == "liveness_failed" and r.partition == "server" for r in recs)
    finally:
        remove_state_dir(state)
        remove_state_dir(prov_dir)
