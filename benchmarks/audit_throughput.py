"""Durable audit records per second (group commit) next to SQLite (WAL, synchronous=FULL), same records,
same batch sizes, same run; plus the auth decision latency.

    .venv/bin/python benchmarks/audit_throughput.py [--records N] [--repeats R] [--dir DIR]

Every Septum commit is sealed (an Ed25519 signature over the chain) before it counts as durable, exactly as
the audit service writes it; each Septum trial's log is then verified (untimed) and a trial whose log does
not verify with nothing unsealed counts as failed. Trials alternate Septum/SQLite so that load from other
processes hits both alike. Prints medians, min-max spread and ratios; asserts nothing about time. The last
lines are ``GOAL audit-vs-sqlite-batch-N: <ratio>x vs >= 1x — met|missed``.
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
from septum.services.audit_log import AuditWriter, Record, verify
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


class TrialFailed(Exception):
    pass


def bench_septum(directory: Path, records: list[Record], batch: int) -> float:
    path = directory / f"septum-{batch}-{time.monotonic_ns()}.log"
    key = Ed25519PrivateKey.generate()
    w = AuditWriter(path, key, max_batch=batch)
    t0 = time.perf_counter()
    for start in range(0, len(records), batch):
        for rec in records[start : start + batch]:
            w.append(rec)
        w.commit()  # sealed and fsynced: everything appended so far is now acknowledged
    elapsed = time.perf_counter() - t0
    sealed_live = verify(path, key.public_key())  # before close: every commit must already be sealed
    w.close()
    expected_seals = -(-len(records) // batch) + 1  # one per commit, plus the log-created commit's
    if not sealed_live.ok or sealed_live.unsealed or sealed_live.records != len(records) + 1 \
            or sealed_live.checkpoints < expected_seals:
        raise TrialFailed(f"batch {batch}: log does not verify as fully sealed: {sealed_live}")
    path.unlink()
    path.with_name(path.name + ".head").unlink()
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


def interleaved(ours, theirs, repeats: int) -> tuple[list[float], list[float], int]:  # type: ignore[no-untyped-def]
    """Alternate the two, ``repeats`` times each; a trial that raises or fails its check is counted, not timed."""
    a: list[float] = []
    b: list[float] = []
    failed = 0
    for _ in range(repeats):
        for fn, out in ((ours, a), (theirs, b)):
            try:
                out.append(fn())
            except (TrialFailed, OSError, sqlite3.Error) as exc:
                failed += 1
                print(f"  trial failed: {exc}")
    return a, b, failed


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
        print(f"durable audit records/s, {args.records} records, median [min-max] of {args.repeats} (dir {d})")
        print(f"{'batch':>6} {'septum (sealed every commit)':>32} {'sqlite WAL/FULL':>28} {'ratio':>7}")
        goals: list[tuple[int, float | None]] = []
        failed_total = 0
        for batch in (1, 100, 1000):
            recs = records[: min(len(records), 2000)] if batch == 1 else records  # 1 fsync per record: slow
            ours, theirs, failed = interleaved(lambda b=batch, r=recs: bench_septum(d, r, b),
                                               lambda b=batch, r=recs: bench_sqlite(d, r, b), args.repeats)
            failed_total += failed
            if not ours or not theirs:
                print(f"{batch:>6} no successful trial ({failed} failed)")
                goals.append((batch, None))
                continue
            mo, mt = statistics.median(ours), statistics.median(theirs)
            spread_o = f"{mo:,.0f} [{min(ours):,.0f}-{max(ours):,.0f}]"
            spread_t = f"{mt:,.0f} [{min(theirs):,.0f}-{max(theirs):,.0f}]"
            print(f"{batch:>6} {spread_o:>32} {spread_t:>28} {mo / mt:>6.2f}x  ({len(recs)} records, "
                  f"{failed} failed trial(s))")
            goals.append((batch, mo / mt))

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
        print(f"\nfailed trials: {failed_total}")
        for batch, ratio in goals:
            shown = "no successful trial" if ratio is None else f"{ratio:.2f}x SQLite"
            verdict = "met" if ratio is not None and ratio >= 1.0 and not failed_total else "missed"
            print(f"GOAL audit-vs-sqlite-batch-{batch}: {shown} vs >= 1x SQLite (WAL, synchronous=FULL) — {verdict}")


if __name__ == "__main__":
    main()
