"""``python -m hospital_client`` (or ``hospital-client``, once installed): a hospital server in a terminal.

  python -m hospital_client pki OUT                      generate a demo hospital CA, pump and hospital
                                                         credentials (OUT/hospital, OUT/network)
  python -m hospital_client order --format fhir|hl7 --dir OUT/hospital --https-port P --mllp-port Q
                                  [--rate 0.5 --unit mg/h --drug morphine-pca ...]
  python -m hospital_client listen --mode mllp|fhir --dir OUT/hospital --port R
"""

from __future__ import annotations

import argparse
import json
import queue
import secrets
import sys
from pathlib import Path

from .client import HospitalClient, msa
from .listener import EventListener


def _pki(args: argparse.Namespace) -> int:
    try:  # the pump-side provisioning lives with the pump (package septum-pump, which depends on this one)
        from septum_pump.hospital.pki import HospitalPki, provision_network
    except ImportError as exc:
        print(f"hospital_client pki: the reference pump is not installed ({exc}): "
              "pip install examples/infusion_pump", file=sys.stderr)
        return 2

    out = Path(args.out)
    pki = HospitalPki.generate()
    pki.write_hospital(out / "hospital")
    outbound = {"mode": args.events, "host": "127.0.0.1", "port": args.events_port} if args.events_port else None
    provision_network(out / "network", pki, https_port=args.https_port, mllp_port=args.mllp_port, outbound=outbound)
    print(f"hospital side: {out / 'hospital'}\nnetwork partition provisioning: {out / 'network'}")
    return 0


def _order(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    c = HospitalClient(args.host, https_port=args.https_port, mllp_port=args.mllp_port, ca=d / "hospital-ca.pem",
                       cert=d / "client.pem", key=d / "client.key")
    source = "fhir" if args.format == "fhir" else "hl7v2"
    order = c.order(source, order_id=args.order_id or f"ORD-{secrets.token_hex(4)}", patient_id=args.patient,
                    drug=args.drug, concentration=args.concentration, concentration_unit=args.concentration_unit,
                    dose_rate=args.rate, dose_unit=args.unit, vtbi_ml=args.vtbi, weight_kg=args.weight,
                    care_area=args.care_area)
    try:
        if args.format == "fhir":
            status, body = c.send_fhir(order)
            print(status, json.dumps(body))
            return 0 if status in (201, 202) else 1
        reply = c.send_hl7(order)
        print(reply.replace("\r", "\n"))
        return 0 if msa(reply)[0] in ("AA", "CA") else 1
    finally:
        c.close()


def _listen(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    listener = EventListener(args.mode, d / "hospital-ca.pem", d / "listener.pem", d / "listener.key", port=args.port)
    print(f"listening for pump events ({args.mode}) on 127.0.0.1:{listener.port}", flush=True)
    try:
        while True:
            try:
                ev = listener.wait(timeout=1.0)
            except queue.Empty:
                continue
            print(ev.get("raw", "").replace("\r", "\n") if ev["format"] == "hl7" else json.dumps(ev["resource"]),
                  flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        listener.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hospital_client", description="Septum demo hospital server")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pki", help="generate demo TLS material (never commit it)")
    p.add_argument("out")
    p.add_argument("--https-port", type=int, default=0)
    p.add_argument("--mllp-port", type=int, default=0)
    p.add_argument("--events", choices=["mllp", "fhir"], default="mllp")
    p.add_argument("--events-port", type=int, default=0, help="where the pump sends events (0: none)")
    o = sub.add_parser("order", help="send one signed infusion order")
    o.add_argument("--format", choices=["fhir", "hl7"], default="fhir")
    o.add_argument("--dir", required=True, help="the hospital folder written by 'pki'")
    o.add_argument("--host", default="127.0.0.1")
    o.add_argument("--https-port", type=int, default=8443)
    o.add_argument("--mllp-port", type=int, default=2575)
    o.add_argument("--order-id")
    o.add_argument("--patient", default="MRN-0001")
    o.add_argument("--drug", default="morphine-pca")
    o.add_argument("--concentration", type=float, default=1.0)
    o.add_argument("--concentration-unit", default="mg/mL")
    o.add_argument("--rate", type=float, default=0.5)
    o.add_argument("--unit", default="mg/h")
    o.add_argument("--vtbi", type=float, default=100.0)
    o.add_argument("--weight", type=float, default=0.0)
    o.add_argument("--care-area", default="adult-med-surg")
    ls = sub.add_parser("listen", help="receive the pump's events")
    ls.add_argument("--mode", choices=["mllp", "fhir"], default="mllp")
    ls.add_argument("--dir", required=True)
    ls.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    return {"pki": _pki, "order": _order, "listen": _listen}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
