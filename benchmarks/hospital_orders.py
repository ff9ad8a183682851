"""Hospital link throughput and rejection latency, printed (never asserted).

Run: ``.venv/bin/python benchmarks/hospital_orders.py [--orders N] [--rig]``

Network layer (default): the network partition's hospital link runs in this process on loopback with
real mutual TLS 1.3, real parsing, our validation and the ECDSA signature pre-check; a stand-in for auth
answers every forwarded order at once (from another thread, as the partition's loop would). Measured:
orders accepted per second over HTTPS (FHIR, one keep-alive connection) and MLLP (HL7 v2, one
connection), client-side signing included, and the latency of a rejection (an order with an unknown
unit) from send to the error answer.

``--rig``: the same against the whole pump under the runtime (network -> auth -> confirmation queue),
when the pump rig provisions the network partition's TLS material (``PumpRig.hospital_dir``). Note the
model bounds ``orders_in`` at 5 orders/s: end to end, that bound is the ceiling by design.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "examples" / "infusion_pump"), str(ROOT / "examples" / "hospital_client")]

from hospital_client.client import HospitalClient, msa  # noqa: E402
from septum_pump.hospital.link import HospitalLink  # noqa: E402
from septum_pump.hospital.pki import HospitalPki, provision_network  # noqa: E402
from septum_pump.hospital.validate import order_type_from_model  # noqa: E402

MODEL = ROOT / "examples" / "infusion_pump" / "model.yaml"
ORDER: dict[str, Any] = dict(patient_id="MRN-42", drug="morphine-pca", concentration=1.0, concentration_unit="mg/mL",
                             dose_rate=0.5, dose_unit="mg/h", vtbi_ml=100.0, care_area="adult-med-surg")


def _ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"p50 {statistics.median(xs) * 1e3:.2f} ms, p95 {xs[int(len(xs) * 0.95) - 1] * 1e3:.2f} ms, "
            f"max {xs[-1] * 1e3:.2f} ms")


def measure(client: HospitalClient, n: int) -> None:
    for fmt in ("fhir", "hl7v2"):
        send = client.send_fhir if fmt == "fhir" else client.send_hl7
        send(client.order(fmt, order_id=f"warm-{fmt}", **ORDER))  # handshake outside the timing
        t0 = time.perf_counter()
        ok = 0
        for i in range(n):
            out = send(client.order(fmt, order_id=f"B-{fmt}-{i}", **ORDER))
            ok += (out[0] == 201) if fmt == "fhir" else (msa(out)[0] == "AA")  # type: ignore[index,arg-type]
        dt = time.perf_counter() - t0
        print(f"{fmt:6} accepted {ok}/{n} orders: {ok / dt:8.1f} orders/s "
              f"({dt / n * 1e3:.2f} ms each, signing included)")
        lat = []
        for i in range(n):
            bad = client.order(fmt, order_id=f"R-{fmt}-{i}", **{**ORDER, "dose_unit": "furlong/h"})
            t = time.perf_counter()
            out = send(bad)
            lat.append(time.perf_counter() - t)
            assert (out[0] == 422) if fmt == "fhir" else (msa(out)[0] == "AE")  # type: ignore[index,arg-type]
        print(f"{fmt:6} rejection latency (unknown unit, {n} orders): {_ms(lat)}")


def network_layer(n: int) -> None:
    pki = HospitalPki.generate()
    work = Path(tempfile.mkdtemp(prefix="septum-bench-hospital-"))
    hospital = pki.write_hospital(work / "hospital")
    data_dir = provision_network(work / "network", pki)
    holder: dict[str, HospitalLink] = {}

    def forward(order: Any) -> bool:
        threading.Thread(target=holder["link"].on_reply, args=(order.order_id, True, "pre-filled")).start()
        return True

    link = HospitalLink(data_dir, {"audit_per_s": 10**6}, order_type_from_model(str(MODEL)), forward,
                        lambda *a: None).start()
    holder["link"] = link
    client = HospitalClient("127.0.0.1", https_port=link.https.port, mllp_port=link.mllp.port,
                            ca=hospital / "hospital-ca.pem", cert=hospital / "client.pem", key=hospital / "client.key")
    print(f"network layer, loopback mutual TLS 1.3, {n} orders per figure")
    try:
        measure(client, n)
    finally:
        client.close()
        link.close()


def with_rig(n: int) -> int:
    try:
        from septum_pump.rig import PumpRig
    except ImportError as exc:
        print(f"--rig: the pump rig is not importable ({exc})")
        return 1
    with PumpRig(services="real") as rig:
        hospital = getattr(rig, "hospital_dir", None)
        ev = rig.wait_event(lambda e: e.kind == "listening" and e.partition == "network", timeout=10)
        if hospital is None or ev is None:
            print("--rig: the rig does not provision the network partition's TLS material yet "
                  "(needs septum_pump.hospital.pki.provision_network and PumpRig.hospital_dir)")
            return 1
        client = HospitalClient("127.0.0.1", https_port=ev.fields["https"], mllp_port=ev.fields["mllp"],
                                ca=hospital / "hospital-ca.pem", cert=hospital / "client.pem",
                                key=hospital / "client.key")
        print(f"whole pump (network -> auth -> confirmation queue), {n} orders per figure")
        measure(client, n)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=300)
    ap.add_argument("--rig", action="store_true")
    args = ap.parse_args()
    if args.rig:
        return with_rig(args.orders)
    network_layer(args.orders)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
