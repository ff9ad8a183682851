"""Durable audit records per second (group commit) next to SQLite (WAL, synchronous=FULL), same records,
same batch sizes, same run; plus the auth decision latency.

    .venv/bin/python benchmarks/audit_throughput.py [--records N] [--repeats R] [--dir DIR]

Prints medians and ratios; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.model import loads
from septum.services.audit_log import AuditWriter, Record
from septum.services.authorize import ActionRequest, Authorizer, Principal
from septum.services.credentials import CredentialStore, provision
from septum.services.signed_requests import NonceGuard

MODEL = """
septum: 1
device: {name: bench-pump}
interfaces:
  keypad: {kind: keypad, external: true}
  hospital_net: {kind: network, external: true}
partitions:
  ui: {owns: [keypad]}
  network: {owns: [hospital_net]}
  pump_control: {criticality: safety}
roles:
  clinician: {authenticates_with: [pin], via: [keypad]}
  hospital_server: {kind: machine, authenticates_with: [mutual-tls], via: [hospital_net]}
actions:
  program_infusion: {handled_by: pump_control, allowed: [clinician], safety: true}
  accept_remote_order: {handled_by: pump_control, allowed: [hospital_server], requires_confirmation_by: clinician}
"""


def make_records(n: int) -> list[Record]:
    return [
        Record(time=1_700_000_000.0 + i / 1000, partition="pump_control", event="pump.rate-changed",
               severity="notice", principal="nurse1", message=f"rate set to {i % 500} ml/h",
               detail={"order": f"ord-{i}", "rate_ml_h": float(i % 500), "seq": i})
        for i in range(n)
    ]


def bench_septum(directory: Path, records: list[Record], batch: int) -> float:
    path = directory / f"septum-{batch}-{time.monotonic_ns()}.log"
    w = AuditWriter(path, Ed25519PrivateKey.generate(), max_batch=batch)
    t0 = time.perf_counter()
    for start in range(0, len(records), batch):
        for rec in records[start : start + batch]:
            w.append(rec)
        w.commit()  # fsync: everything appended so far is now acknowledged
    elapsed = time.perf_counter() - t0
    w.close()
    return len(records) / elapsed


def bench_sqlite(directory: Path, records: list[Record], batch: int) -> float:
    path = directory / f"sqlite-{batch}-{time.monotonic_ns()}.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    # The comparison is only fair if SQLite really fsyncs every commit in WAL mode: check, do not assume.
    mode, sync = db.execute("PRAGMA journal_mode").fetchone()[0], db.execute("PRAGMA synchronous").fetchone()[0]
    if (mode, sync) != ("wal", 2):
        raise SystemExit(f"sqlite is not in WAL/FULL mode (journal_mode={mode}, synchronous={sync})")
    db.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY, time REAL, partition TEXT, event TEXT, "
               "severity TEXT, message TEXT, principal TEXT, detail TEXT)")
    enc = msgspec.json.Encoder().encode
    t0 = time.perf_counter()
    for start in range(0, len(records), batch):
        rows = [(r.time, r.partition, r.event, r.severity, r.message, r.principal, enc(r.detail))
                for r in records[start : start + batch]]
        db.execute("BEGIN")
        db.executemany("INSERT INTO audit (time, partition, event, severity, message, principal, detail) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")  # WAL + synchronous=FULL: the commit is fsynced
    elapsed = time.perf_counter() - t0
    db.close()
    return len(records) / elapsed


def median_of(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(fn() for _ in range(repeats))


def per_call_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="Directory on the file system to measure (default: a temp dir)")
    args = ap.parse_args()
    records = make_records(args.records)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        d = Path(tmp)
        print(f"durable audit records/s, {args.records} records, median of {args.repeats} (dir {d})")
        print(f"{'batch':>6} {'septum':>12} {'sqlite WAL/FULL':>16} {'ratio':>7}")
        for batch in (1, 100, 1000):
            recs = records[: min(len(records), 500)] if batch == 1 else records  # 1 fsync per record: slow
            ours = median_of(lambda b=batch, r=recs: bench_septum(d, r, b), args.repeats)
            theirs = median_of(lambda b=batch, r=recs: bench_sqlite(d, r, b), args.repeats)
            print(f"{batch:>6} {ours:>12,.0f} {theirs:>16,.0f} {ours / theirs:>6.2f}x")

        model = loads(MODEL)[0]
        authz = Authorizer(model)
        req = ActionRequest("program_infusion", "keypad", Principal("nurse1", "clinician", "pin"))
        deny = ActionRequest("accept_remote_order", "keypad", Principal("nurse1", "clinician", "pin"))
        print("\nauth decision latency (median per call)")
        print(f"  authorise (allow)          {per_call_us(lambda: authz.decide(req), 20000):8.2f} us")
        print(f"  authorise (deny)           {per_call_us(lambda: authz.decide(deny), 20000):8.2f} us")
        # the replay check auth applies to every signed order (in memory; auth also persists the seen set)
        # steady state at the model's 5 orders/s: one order every 0.2 s, so ~175 nonces are remembered
        guard = NonceGuard(None)
        ticks = iter(range(10**9))

        def one_order() -> object:
            i = next(ticks)
            return guard.check("hospital", f"nonce-{i:012d}", 100.0 + 0.2 * i, 100.0 + 0.2 * i)

        replay_us = per_call_us(one_order, 2000)
        print(f"  replay check (nonce)       {replay_us:8.2f} us")
        creds = d / "creds.json"
        provision(creds, device="bench-pump", principal="nurse1", role="clinician", factor="pin",
                  secret="480613", model=model)
        store = CredentialStore.load(creds, model)
        ms = per_call_us(lambda: store.authenticate("nurse1", "pin", "480613", 0.0), 5) / 1000
        print(f"  PIN check (argon2id t=3, 64 MiB, p=1)  {ms:8.1f} ms")


if __name__ == "__main__":
    main()
