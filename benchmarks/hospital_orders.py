"""Hospital link throughput and rejection latency, printed (never asserted).

Run: ``.venv/bin/python benchmarks/hospital_orders.py [--orders N] [--rig [--rig-orders M] [--rig-rejections R]]``

Network layer (default): the network partition's hospital link runs in this process on loopback with
real mutual TLS 1.3, real parsing, our validation and the ECDSA signature pre-check; a stand-in for auth
answers every forwarded order at once (from another thread, as the partition's loop would). Measured:
orders accepted per second over HTTPS (FHIR, one keep-alive connection) and MLLP (HL7 v2, one
connection), client-side signing included, and the latency of a rejection (an order with an unknown
unit) from send to the error answer. Baseline, interleaved repeat by repeat: a bare mutual-TLS 1.3 server
on loopback with the pump's certificate that answers every request at once without reading it (201 ``{}``
/ an ``AA`` acknowledgement), driven by the same client with the same signed orders: the transport's own
cost, so the ratio is what parsing, validation and the signature check add. ``--repeats`` (default 5) runs
per side, spread printed; an unexpected answer is a failed order, counted and printed (never an assert).
The issue sets no goal for these figures: their GOAL lines say "informational".

``--rig``: after the network-layer figures, the same questions through the whole pump under the runtime
(time scale 1, real services; ``PumpRig(services="real")`` provisions the hospital PKI): HTTPS/MLLP ->
network partition -> ``orders_in`` -> auth -> ``commands`` -> pump_control's confirmation queue. An order
counts as accepted end to end when pump_control's ``command`` event for ``accept_remote_order`` says
"order <id> waiting for confirmation" (the hospital's 201/AA only says auth answered). Measured: accepted
orders/s paced just under the model's bound (``orders_in`` is limited to 5/s, a burst of 5, by design)
and one at a time as fast as answered; a burst above the bound from several connections, with every
answer counted by kind and reason and auth's ``channel_drops`` for ``orders_in`` (an order is never lost
silently: it is accepted, or answered busy/pending/rejected, and a rate drop is counted on the device);
and the latency of a rejection (unknown unit; signature by a key that is not the client certificate's)
p50/p99, send to error answer, the order prepared and signed before the clock starts.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "examples" / "infusion_pump"), str(ROOT / "examples" / "hospital_client")]

from hospital_client.client import HospitalClient, msa  # noqa: E402
from septum_pump.hospital.link import HospitalLink  # noqa: E402
from septum_pump.hospital.pki import HospitalPki, provision_network  # noqa: E402
from septum_pump.hospital.validate import order_type_from_model  # noqa: E402

MODEL = ROOT / "examples" / "infusion_pump" / "model.yaml"
PACED_PER_S = 4.5  # end to end, just under the model's orders_in bound (5/s, burst 5)
ORDER: dict[str, Any] = dict(patient_id="MRN-42", drug="morphine-pca", concentration=1.0, concentration_unit="mg/mL",
                             dose_rate=0.5, dose_unit="mg/h", vtbi_ml=100.0, care_area="adult-med-surg")


MLLP_START, MLLP_END = b"\x0b", b"\x1c\x0d"
BARE_ACK = b"MSH|^~\\&|BARE|PUMP|HIS|HOSP|20260101000000||ACK^O33^ACK|1|P|2.6\rMSA|AA|1"


def _p(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (for latencies; >= 100 samples are used for p99)."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def _ms(xs: list[float]) -> str:
    if not xs:
        return "n=0"
    p99 = f"p99 {_p(xs, 0.99) * 1e3:.2f} ms, " if len(xs) >= 100 else ""
    return f"n={len(xs)} p50 {statistics.median(xs) * 1e3:.2f} ms, {p99}max {max(xs) * 1e3:.2f} ms"


def _spread(xs: list[float]) -> str:
    if not xs:
        return "no samples"
    return f"median {statistics.median(xs):8.1f} (min {min(xs):.1f}, max {max(xs):.1f}, n={len(xs)})"


class BareTls:
    """The transport alone: mutual TLS 1.3 on loopback with the pump's certificate; every HTTP request is
    answered 201 ``{}`` and every MLLP frame an AA acknowledgement, without parsing or checking anything."""

    def __init__(self, cert: Path, key: Path, ca: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ctx.load_cert_chain(str(cert), str(key))
        self.ctx.load_verify_locations(cafile=str(ca))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.socks: list[socket.socket] = []
        self.ports: list[int] = []
        for handler in (self._http, self._mllp):
            srv = socket.create_server(("127.0.0.1", 0))
            self.socks.append(srv)
            self.ports.append(srv.getsockname()[1])
            threading.Thread(target=self._accept, args=(srv, handler), daemon=True).start()

    def _accept(self, srv: socket.socket, handler: Any) -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, handler), daemon=True).start()

    def _serve(self, conn: socket.socket, handler: Any) -> None:
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                handler(tls)
        except (OSError, ssl.SSLError):
            pass

    @staticmethod
    def _http(tls: ssl.SSLSocket) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = tls.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            while len(buf) < length:
                chunk = tls.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[length:]
            tls.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    @staticmethod
    def _mllp(tls: ssl.SSLSocket) -> None:
        buf = b""
        while True:
            while MLLP_END not in buf:
                chunk = tls.recv(65536)
                if not chunk:
                    return
                buf += chunk
            _, _, buf = buf.partition(MLLP_END)
            tls.sendall(MLLP_START + BARE_ACK + MLLP_END)

    def close(self) -> None:
        for s in self.socks:
            s.close()


def _accepted(fmt: str, out: Any) -> bool:
    return (out[0] == 201) if fmt == "fhir" else (msa(out)[0] == "AA")


def throughput(client: HospitalClient, fmt: str, n: int, tag: str) -> tuple[float, int]:
    """(orders/s, orders not accepted) for ``n`` valid orders, one at a time on one connection."""
    send = client.send_fhir if fmt == "fhir" else client.send_hl7
    send(client.order(fmt, order_id=f"warm-{fmt}-{tag}", **ORDER))  # handshake outside the timing
    t0 = time.perf_counter()
    bad = 0
    for i in range(n):
        bad += not _accepted(fmt, send(client.order(fmt, order_id=f"B-{fmt}-{tag}-{i}", **ORDER)))
    return n / (time.perf_counter() - t0), bad


def rejections(client: HospitalClient, fmt: str, n: int, tag: str) -> tuple[list[float], int]:
    """Send -> error answer latencies for orders with an unknown unit, and answers that were not a refusal."""
    send = client.send_fhir if fmt == "fhir" else client.send_hl7
    lat = []
    wrong = 0
    for i in range(n):
        bad = client.order(fmt, order_id=f"R-{fmt}-{tag}-{i}", **{**ORDER, "dose_unit": "furlong/h"})
        t = time.perf_counter()
        out = send(bad)
        lat.append(time.perf_counter() - t)
        wrong += not ((out[0] == 422) if fmt == "fhir" else (msa(out)[0] == "AE"))
    return lat, wrong


def measure(client: HospitalClient, bare: HospitalClient, n: int, repeats: int) -> list[str]:
    """Prints the figures; returns the GOAL lines (printed last, after the --rig figures)."""
    rates: dict[tuple[str, str], list[float]] = {}
    failed: dict[tuple[str, str], int] = {}
    lat: dict[str, list[float]] = {"fhir": [], "hl7v2": []}
    wrong = {"fhir": 0, "hl7v2": 0}
    for r in range(repeats):
        sides = [("septum", client), ("bare TLS", bare)]
        if r % 2:
            sides.reverse()
        for fmt in ("fhir", "hl7v2"):
            for side, c in sides:
                rate, bad = throughput(c, fmt, n, f"{side[0]}{r}")
                rates.setdefault((fmt, side), []).append(rate)
                failed[(fmt, side)] = failed.get((fmt, side), 0) + bad
            got, w = rejections(client, fmt, n // 2 or 1, str(r))
            lat[fmt] += got
            wrong[fmt] += w
    for fmt in ("fhir", "hl7v2"):
        for side in ("septum", "bare TLS"):
            print(f"  {fmt:6} {side:<9} accepted orders/s {_spread(rates[(fmt, side)])}; "
                  f"not accepted: {failed[(fmt, side)]} of {n * repeats}")
        print(f"  {fmt:6} rejection latency (unknown unit): {_ms(lat[fmt])}; not refused: {wrong[fmt]}")
    goals = []
    for fmt in ("fhir", "hl7v2"):
        ratio = statistics.median(rates[(fmt, "septum")]) / statistics.median(rates[(fmt, "bare TLS")])
        bad = failed[(fmt, "septum")] + wrong[fmt]
        goals.append(f"GOAL hospital_orders_{fmt}_vs_bare_tls: {ratio:.2f}x of bare TLS orders/s "
                     f"(median of {repeats}), {bad} failed vs none set — informational")
    return goals


def network_layer(n: int, repeats: int) -> list[str]:
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
    bare_srv = BareTls(data_dir / "server.pem", data_dir / "server.key", hospital / "hospital-ca.pem")
    creds = dict(ca=hospital / "hospital-ca.pem", cert=hospital / "client.pem", key=hospital / "client.key")
    client = HospitalClient("127.0.0.1", https_port=link.https.port, mllp_port=link.mllp.port, **creds)
    bare = HospitalClient("127.0.0.1", https_port=bare_srv.ports[0], mllp_port=bare_srv.ports[1], **creds)
    print(f"network layer, loopback mutual TLS 1.3, {n} orders per figure, {repeats} repeats per side "
          f"(interleaved with the bare-TLS baseline), load average {os.getloadavg()[0]:.2f}")
    try:
        return measure(client, bare, n, repeats)
    finally:
        client.close()
        bare.close()
        link.close()
        bare_srv.close()


def _pcts(xs: list[float]) -> str:
    if not xs:
        return "n=0"
    return _ms(xs)


def _outcome(fmt: str, out: Any) -> str:
    """accepted | pending | busy | rejected(<code>) from the transport's answer."""
    if fmt == "fhir":
        status, body = out
        reason = ((body.get("issue") or [{}])[0].get("diagnostics", "") if isinstance(body, dict) else "")
        return {201: "accepted", 202: "pending", 503: "busy"}.get(status, f"rejected {status}") + f"|{reason}"
    code, text = msa(out)
    return {"AA": "accepted", "CA": "pending"}.get(code, f"{code}") + f"|{text}"


class QueueWatch:
    """When each order reached pump_control's confirmation queue: its ``command`` event for
    ``accept_remote_order`` with ok=True ("order <id> waiting for confirmation"), stamped on arrival."""

    def __init__(self, rig: Any) -> None:
        self.at: dict[str, float] = {}
        self.refused: dict[str, str] = {}
        self.drops: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.unsubscribe = rig.supervisor.events.subscribe(self.on_event)

    def on_event(self, e: Any) -> None:
        f = e.fields
        with self.cond:
            if e.kind == "command" and e.partition == "pump_control" and f.get("action") == "accept_remote_order":
                words = str(f.get("result", "")).split()
                oid = words[1] if len(words) > 1 and words[0] == "order" else "?"
                if f.get("ok"):
                    self.at.setdefault(oid, time.perf_counter())
                else:
                    self.refused[oid] = str(f.get("result", ""))
            elif e.kind == "channel_drops" and f.get("channel") == "orders_in":
                self.drops.append(dict(f))
            self.cond.notify_all()

    def wait(self, ids: list[str], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        with self.cond:
            while not all(i in self.at for i in ids):
                left = deadline - time.perf_counter()
                if left <= 0:
                    return
                self.cond.wait(left)


def rig_paced(rig: Any, client: HospitalClient, watch: QueueWatch, fmt: str, n: int, rate: float) -> float:
    """n orders, one at a time, at most ``rate`` per second: accepted/s end to end and send -> queue latency."""
    send = client.send_fhir if fmt == "fhir" else client.send_hl7
    outcomes: Counter[str] = Counter()
    sent: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(n):
        due = t0 + i / rate
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        oid = f"E-{fmt}-{rate:g}-{i}"
        o = client.order(fmt, order_id=oid, **ORDER)
        sent[oid] = time.perf_counter()
        outcomes[_outcome(fmt, send(o)).split("|")[0]] += 1
    watch.wait(list(sent), timeout=5)
    queued = sorted(watch.at[i] for i in sent if i in watch.at)
    span = queued[-1] - t0 if queued else 0.0
    per_s = (len(queued) - 1) / (queued[-1] - queued[0]) if len(queued) > 1 else 0.0
    lat = [watch.at[i] - sent[i] for i in sent if i in watch.at]
    offered = "one at a time, as fast as answered" if rate >= 1000 else f"paced at {rate:g}/s"
    print(f"  {fmt:6} {offered}: {len(queued)}/{n} reached the confirmation queue in {span:.2f} s = "
          f"{per_s:.2f} accepted orders/s end to end (first to last queued); answers {dict(outcomes)}")
    print(f"  {fmt:6}   send -> in pump_control's confirmation queue: {_pcts(lat)}")
    return per_s if len(queued) == n else 0.0  # an order that never reached the queue fails the figure


def rig_burst(rig: Any, watch: QueueWatch, hospital: Path, ports: tuple[int, int], conns: int, per: int) -> int:
    """Above the 5/s bound: ``conns`` connections send ``per`` orders each as fast as they are answered."""
    results: list[tuple[str, str]] = []
    lock = threading.Lock()
    drops_before = sum(int(d.get("new", 0)) for d in watch.drops)

    def worker(k: int) -> None:
        c = HospitalClient("127.0.0.1", https_port=ports[0], mllp_port=ports[1], ca=hospital / "hospital-ca.pem",
                           cert=hospital / "client.pem", key=hospital / "client.key")
        try:
            for i in range(per):
                oid = f"X-{k}-{i}"
                try:
                    out = _outcome("fhir", c.send_fhir(c.order("fhir", order_id=oid, **ORDER)))
                except OSError as exc:
                    out = f"transport error|{exc}"
                with lock:
                    results.append((oid, out))
        finally:
            c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    ids = [oid for oid, _ in results]
    watch.wait([oid for oid, out in results if out.startswith("accepted")], timeout=5)
    time.sleep(1.5)  # partitions report channel drops at most once a second
    queued = [oid for oid in ids if oid in watch.at]
    total = conns * per
    kinds: Counter[str] = Counter(out.split("|")[0] for _, out in results)
    reasons: Counter[str] = Counter(out for _, out in results if not out.startswith("accepted"))
    drops = sum(int(d.get("new", 0)) for d in watch.drops) - drops_before
    last = watch.drops[-1].get("drops") if watch.drops else {}
    print(f"  above the bound: {conns} FHIR connections x {per} orders, each connection sending its next order as "
          f"soon as the last is answered ({total} orders in {dt:.1f} s; a pending answer holds its connection 2 s)")
    print(f"    answers: {dict(kinds)}; {len(queued)} reached the confirmation queue "
          f"({len(queued) / dt:.2f}/s)")
    for r, k in reasons.most_common():
        kind, _, why = r.partition("|")
        print(f"    {k:4} x {kind}: {why[:110]}")
    acc_not_q = [oid for oid, out in results if out.startswith("accepted") and oid not in watch.at]
    pend_q = [oid for oid, out in results if out.startswith("pending") and oid in watch.at]
    print(f"    auth's receive end of orders_in dropped {drops} order(s) (channel_drops events; counters now "
          f"{last}); pending answers later queued: {len(pend_q)}; accepted but not queued: {len(acc_not_q)}; "
          f"unanswered: {total - len(results)}")
    return len(acc_not_q) + total - len(results)


def _bad_sender(client: HospitalClient, fmt: str, label: str, oid: str, other: Any, i: int) -> Any:
    """A callable that sends one order the pump must refuse (prepared, and signed, outside the timing)."""
    from hospital_client.orders import fhir_request, hl7_message, sign

    if label == "bad unit":
        o = client.order(fmt, order_id=oid, **{**ORDER, "dose_unit": "furlong/h"})
        if fmt == "fhir":
            body, headers = fhir_request(o, sign(o, client.key))
            return lambda: client.post_raw(body, headers)
        msg = hl7_message(o, sign(o, client.key), control_id=f"RU{i:08d}")
        return lambda: client.send_hl7_raw(msg)
    o = client.order(fmt, order_id=oid, **ORDER)  # signed by a key that is not the TLS client certificate's
    if fmt == "fhir":
        body, headers = fhir_request(o, sign(o, other))
        return lambda: client.post_raw(body, headers)
    msg = hl7_message(o, sign(o, other), control_id=f"RB{i:08d}")
    return lambda: client.send_hl7_raw(msg)


def rig_rejections(client: HospitalClient, n: int) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    for fmt in ("fhir", "hl7v2"):
        for label in ("bad unit", "bad signature"):
            lat: list[float] = []
            outs: Counter[str] = Counter()
            client.close()  # the pump closes idle connections: a fresh one, its handshake outside the timing
            _bad_sender(client, fmt, label, f"R-{fmt}-warm", other, 99999999)()
            for i in range(n):
                oid = f"R-{fmt}-{label[4:7]}-{i}"
                send = _bad_sender(client, fmt, label, oid, other, i)
                t = time.perf_counter()
                out = send()
                lat.append(time.perf_counter() - t)
                outs[_outcome(fmt, out).split("|")[0]] += 1
            print(f"  {fmt:6} rejection latency ({label}): {_pcts(lat)}; answers {dict(outs)}")


def with_rig(n: int, rejections: int, conns: int) -> int:
    try:
        from septum_pump.rig import PumpRig
    except ImportError as exc:
        print(f"--rig: the pump rig is not importable ({exc})")
        return 1
    with PumpRig(time_scale=1.0, services="real") as rig:
        hospital = rig.hospital_dir
        ev = rig.wait_event(lambda e: e.kind == "listening" and e.partition == "network", timeout=10, after=0)
        if hospital is None or ev is None:
            print("--rig: the network partition never reported its TLS listeners")
            return 1
        ports = (int(ev.fields["https"]), int(ev.fields["mllp"]))
        watch = QueueWatch(rig)
        client = HospitalClient("127.0.0.1", https_port=ports[0], mllp_port=ports[1],
                                ca=hospital / "hospital-ca.pem", cert=hospital / "client.pem",
                                key=hospital / "client.key")
        print("whole pump under the runtime, time scale 1 (HTTPS/MLLP -> network -> orders_in [model bound "
              "5/s, queue 16] -> auth -> commands -> pump_control's confirmation queue)")
        try:
            client.send_fhir(client.order("fhir", order_id="warm-fhir", **ORDER))  # handshakes outside the timing
            client.send_hl7(client.order("hl7v2", order_id="warm-hl7", **ORDER))
            time.sleep(1.2)  # let the 5/s bucket refill after the warm-up
            paced = {}
            for fmt in ("fhir", "hl7v2"):
                paced[fmt] = rig_paced(rig, client, watch, fmt, n, PACED_PER_S)
                time.sleep(1.2)
            rig_paced(rig, client, watch, "fhir", n, 1000.0)  # one at a time, as fast as answered
            time.sleep(2.5)
            lost = rig_burst(rig, watch, hospital, ports, conns, max(1, n // conns * 2))
            time.sleep(2.5)
            rig_rejections(client, rejections)
            if watch.refused:
                print(f"  pump_control refused {len(watch.refused)} order(s): {list(watch.refused.values())[:3]}")
            # paced just under the model's orders_in bound, every order should reach the queue at that pace
            for fmt, per_s in paced.items():
                verdict = "met" if per_s >= PACED_PER_S * 0.95 else "missed"
                print(f"GOAL hospital_orders_end_to_end_{fmt}: {per_s:.2f} accepted orders/s vs >= "
                      f"{PACED_PER_S * 0.95:.2f} (offered {PACED_PER_S:g}/s under the model's 5/s bound) — {verdict}")
            print(f"GOAL hospital_orders_none_lost: {lost} accepted-but-not-queued or unanswered vs 0 — "
                  f"{'met' if lost == 0 else 'missed'}")
        finally:
            watch.unsubscribe()
            client.close()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5, help="network-layer runs per side (interleaved)")
    ap.add_argument("--rig", action="store_true", help="also measure end to end through the whole pump")
    ap.add_argument("--rig-orders", type=int, default=30, help="orders per end-to-end rate figure")
    ap.add_argument("--rig-rejections", type=int, default=100, help="orders per end-to-end rejection figure")
    ap.add_argument("--rig-connections", type=int, default=4, help="connections in the above-the-bound burst")
    args = ap.parse_args()
    goals = network_layer(args.orders, args.repeats)
    rc = 0
    if args.rig:
        print()
        rc = with_rig(args.rig_orders, args.rig_rejections, args.rig_connections)
    print("\n".join(goals))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
