"""Slow-loris against the real pump (every partition under the real runtime, the network partition with its
model limits: 64 file descriptors, 32 tasks): 100 and then 1,000 connections that send 3 bytes of a TLS
record and dribble, on both hospital listeners, while an infusion runs. Afterwards a valid signed order is
accepted within a bounded time, the infusion never noticed, and no partition exited or was restarted
(the liveness probes did not mistake a saturated listener for a dead one)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from septum.runtime.sandbox.probe import probe

from .loris import Loris, until_accepted

PUMP = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump"
if str(PUMP) not in sys.path:
    sys.path.insert(0, str(PUMP))

from septum_pump.rig import PumpRig  # noqa: E402

ATTACK_S = 8.0  # how long the attacker holds and dribbles (longer than the 5 s handshake deadline)


@pytest.fixture(scope="module")
def rig() -> Iterator[PumpRig]:
    if not probe().root:
        print("SKIP: the pump runs partitions under their own uids and needs root")
        pytest.skip("needs root (partitions run under their own uids)")
    with PumpRig(time_scale=60.0, services="real") as r:
        r.run_infusion("normal-saline", rate=100, vtbi=1000, purpose="slow-loris test")
        yield r


def _client(rig: PumpRig):  # type: ignore[no-untyped-def]
    from hospital_client.client import HospitalClient

    d = rig.hospital_dir
    assert d is not None
    return HospitalClient("127.0.0.1", https_port=rig.ports["hospital_https"], mllp_port=rig.ports["hospital_mllp"],
                          ca=d / "hospital-ca.pem", cert=d / "client.pem", key=d / "client.key",
                          server_name="127.0.0.1", timeout=10.0)


def _therapy_events(rig: PumpRig, after: int) -> list[tuple[str, str | None, dict]]:
    return [(e.kind, e.partition, e.fields) for e in rig.events()
            if e.seq > after and e.partition in ("pump_control", "safety_monitor", None)][-30:]


@pytest.mark.parametrize("per_port", [50, 500])  # 100 and 1,000 connections
def test_slowloris_on_the_real_pump_leaves_orders_and_therapy_working(rig: PumpRig, per_port: int) -> None:
    # the model's probes run inside the real network partition (its sandbox lets them connect)
    for iface in ("hospital_https", "hospital_mllp"):
        assert rig.wait_event(lambda e, i=iface: e.kind == "liveness_ok" and e.partition == "network"
                              and i in str(e.fields.get("detail")), timeout=10, after=0) is not None, iface
    start_seq = rig.seq()
    alarms_before = list(rig.alarms())
    delivered_before = rig.delivered_ml()
    assert rig.motor_running()
    loris = Loris([("127.0.0.1", rig.ports["hospital_https"]), ("127.0.0.1", rig.ports["hospital_mllp"])], per_port)
    c = _client(rig)
    try:
        loris.open()
        assert loris.connected == 2 * per_port  # the attack happened
        end = time.monotonic() + ATTACK_S
        motor_samples = []
        while time.monotonic() < end:
            loris.dribble()
            motor_samples.append(rig.motor_running())
            time.sleep(0.3)
        assert all(motor_samples), _therapy_events(rig, start_seq)  # therapy throughout the attack
        # the pump cut every attacking connection: refused over its limit at once, or at the handshake deadline
        assert rig.wait_until(lambda: loris.poll_closed() == len(loris.socks), timeout=15), loris.open_count()
        ids = iter(range(10_000))
        asked = time.monotonic()
        (status, body), attempts = until_accepted(
            lambda: c.send_fhir(c.order("fhir", order_id=f"ORD-SL{per_port}-{next(ids)}", patient_id="MRN-42",
                                        drug="normal-saline", concentration=1.0, concentration_unit="mL/mL",
                                        dose_rate=50.0, dose_unit="mL/h", vtbi_ml=100.0, care_area="adult-med-surg")),
            lambda answer: answer[0] == 201, timeout=30)
        assert status == 201, body
        print(f"slow-loris {2 * per_port}: order accepted {time.monotonic() - asked:.2f} s after the attack, "
              f"{attempts} attempt(s)")
    finally:
        loris.close()
        c.close()
    # therapy unaffected: still running, more delivered, no new alarm, nobody exited or restarted
    assert rig.motor_running()
    assert rig.delivered_ml() > delivered_before
    assert rig.alarms() == alarms_before
    trouble = [(e.kind, e.partition, e.fields) for e in rig.events()
               if e.seq > start_seq and e.kind in ("exited", "restart", "heartbeat_missed", "safe_state",
                                                   "partition_error")]
    assert trouble == []
    # the network partition itself saw the attack: refusals and deadlines, at bounded volume
    seen = {e.kind for e in rig.events(partition="network") if e.seq > start_seq}
    assert {"connection_refused", "connection_timeout"} <= seen, seen
