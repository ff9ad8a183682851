"""A failed motor or sensor link is a hazard, never a success: latched fault, alarm, audit record.

The simulator's end of a link is shut down while the pump is infusing, as a cable coming off would: the
safety monitor's next motor write fails (EPIPE), or its sensor link reaches end-of-file.
"""

from __future__ import annotations

import socket

import pytest
from septum_pump.rig import PumpRig

CASES = {"motor": ("motor-fault", "write"), "sensors": ("sensor-link-fault", "read")}


@pytest.mark.parametrize("device", list(CASES))
def test_a_failed_device_link_latches_alarms_and_is_audited(running_rig: PumpRig, device: str) -> None:
    rig = running_rig
    alarm, operation = CASES[device]
    before = rig.seq()
    rig.sim.links[device].shutdown(socket.SHUT_RDWR)
    failed = rig.wait_event(lambda e: e.kind == "device_failed" and e.partition == "safety_monitor"
                            and e.fields.get("device") == device, timeout=10, after=before)
    assert failed is not None, [(e.kind, e.fields) for e in rig.events(partition="safety_monitor")][-10:]
    assert failed.fields.get("operation") == operation and failed.fields.get("error"), failed.fields
    assert rig.wait_until(lambda: alarm in rig.alarms(), timeout=5), rig.alarms()
    assert rig.wait_until(lambda: not rig.motor_running(), timeout=5)
    assert rig.wait_event(lambda e: e.kind == "latched_fault" and e.partition == "safety_monitor", timeout=5,
                          after=before) is not None
    assert rig.wait_until(lambda: any(r["event"] == "device_failed" and device in str(r)
                                      for r in rig.audit_records()), timeout=10), "device_failed not audited"
