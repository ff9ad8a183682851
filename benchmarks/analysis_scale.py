"""How `septum check` scales: load and check time and peak memory for 100 to 10,000 partitions, and a
side-by-side with OWASP pytm 1.4.0's ``resolve()`` on the same topology.

Run: ``.venv/bin/python benchmarks/analysis_scale.py [--repeat N] [--no-pytm]``
(pytm is a benchmark-only extra: ``.venv/bin/pip install 'septum[bench]'``).

Each measurement runs in a fresh subprocess so peak memory (ru_maxrss) belongs to that size alone.
Figures are medians over the repetitions; the goal (10,000 partitions loaded and checked in <= 2 s, and
10k/1k <= 12) is printed next to the figure, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

SEPTUM_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {here!r})
from septum.analysis import check
from septum.model import load
t0 = time.perf_counter()
model, source = load({path!r})
t1 = time.perf_counter()
report = check(model, source)
t2 = time.perf_counter()
print(json.dumps({{"load": t1 - t0, "check": t2 - t1, "findings": len(report.findings),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

PYTM_CHILD = """
import json, sys, time
sys.path.insert(0, {here!r})
from genmodel import topology
from pytm import TM, Actor, Boundary, Dataflow, Process
topo = topology({n})
TM.reset()
tm = TM("generated", description="generated benchmark device")
zones = {{k: Boundary(k) for k in ("entry", "guard", "safety", "plain")}}
nodes = {{}}
for name, kind, owns in topo.partitions:
    p = Process(name)
    p.inBoundary = zones[kind]
    nodes[name] = p
    if owns:
        a = Actor("if_" + name)
        nodes["if_" + name] = a
        Dataflow(a, p, "in_" + name)
for cname, src, dst in topo.channels:
    Dataflow(nodes[src], nodes[dst], cname)
t0 = time.perf_counter()
tm.resolve()
t1 = time.perf_counter()
print(json.dumps({{"resolve": t1 - t0, "findings": len(tm.findings)}}))
"""


def run_child(code: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "child failed")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--no-pytm", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from genmodel import element_count, model_yaml, topology

    tmp = Path(tempfile.mkdtemp(prefix="septum-bench-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    totals: dict[int, float] = {}
    print(f"septum check: median of {args.repeat} runs, each in a fresh process")
    print(f"{'partitions':>10} {'channels':>9} {'MiB yaml':>8} {'load s':>7} {'check s':>8} {'total s':>8} "
          f"{'peak MiB':>9} {'findings':>8}")
    for n in sizes:
        topo = topology(n)
        path = tmp / f"model_{n}.yaml"
        path.write_text(model_yaml(topo))
        rows = [run_child(SEPTUM_CHILD.format(here=str(HERE), path=str(path))) for _ in range(args.repeat)]
        load_s, check_s = median(rows, "load"), median(rows, "check")
        totals[n] = statistics.median(r["load"] + r["check"] for r in rows)
        print(f"{n:>10} {len(topo.channels):>9} {path.stat().st_size / 2**20:>8.1f} {load_s:>7.3f} {check_s:>8.3f} "
              f"{totals[n]:>8.3f} {median(rows, 'rss_mb'):>9.0f} {int(rows[0]['findings']):>8}")
    if 10000 in totals:
        print(f"goal: 10,000 partitions in <= 2 s: {totals[10000]:.2f} s "
              f"({'met' if totals[10000] <= 2 else 'NOT met'})")
    if 10000 in totals and 1000 in totals:
        ratio = totals[10000] / totals[1000]
        print(f"goal: growth 10k/1k <= 12: {ratio:.1f} ({'met' if ratio <= 12 else 'NOT met'})")

    if args.no_pytm:
        return
    try:
        import pytm  # noqa: F401
    except ImportError:
        print("pytm not installed (pip install 'septum[bench]'): side-by-side skipped")
        return
    print("\nside by side on the same topology (assets = partitions + entry interfaces + channels)")
    print(f"{'partitions':>10} {'assets':>7} {'septum check s':>15} {'pytm resolve s':>15} {'ratio':>7}")
    for n in (200, 600):  # ~1,000 and ~3,000 assets
        topo = topology(n)
        path = tmp / f"model_{n}.yaml"
        path.write_text(model_yaml(topo))
        reps = max(1, min(3, args.repeat))
        s_rows = [run_child(SEPTUM_CHILD.format(here=str(HERE), path=str(path))) for _ in range(reps)]
        p_rows = [run_child(PYTM_CHILD.format(here=str(HERE), n=n)) for _ in range(reps)]
        s_t = statistics.median(r["load"] + r["check"] for r in s_rows)
        p_t = median(p_rows, "resolve")
        print(f"{n:>10} {element_count(topo):>7} {s_t:>15.3f} {p_t:>15.3f} {p_t / s_t:>6.1f}x"
              f"   (pytm findings: {int(p_rows[0]['findings'])}, septum findings: {int(s_rows[0]['findings'])})")


if __name__ == "__main__":
    main()
