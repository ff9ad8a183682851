"""How Septum's analysis scales on models with the reference pump's mix of elements, and how it compares with
OWASP pytm 1.4.0 building and resolving the same topology.

    .venv/bin/python benchmarks/analysis_scale.py [--repeat 5] [--sizes 1000,10000,50000] [--pytm-sizes 1000,10000]

The models come from benchmarks/genmodel.py (subsystems of 20 partitions shaped like the pump: guards,
a monitor per controller, roles, actions, shared state, components). Every trial runs in a fresh process.
One round runs every size of Septum and, where pytm is measured, pytm on the same size right after it
(A B A B ...), so load on the shared machine hits both alike; ratios are judged per pair, on the median.

Like for like, both sides start from a description already at hand and end with findings:
- whole job: Septum ``load`` (read the YAML, build and cross-check the model) + ``check`` (every rule),
  against pytm building the same elements, dataflows and boundaries in Python + ``check()`` (its
  consistency checks) + ``resolve()`` (every threat against every element);
- stage only: Septum ``check`` against pytm ``resolve()``.
Imports are outside the timings on both sides; generating the topology too (Septum's side of it is the
YAML file, written before the trials).

The 50,000-partition model (about 26 MiB) is over the loader's 8 MiB file and 2,000,000-node limits; its
trials raise both limits for that child process only, and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

GOAL_10K_S = 1.5
GOAL_GROWTH_10K_1K = 11.0
GOAL_GROWTH_50K_10K = 5.5
GOAL_VS_PYTM = 20.0

SEPTUM_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from septum.analysis import check
from septum.model import load
import septum.model.loader as loader
if {raise_limits!r}:
    loader.MAX_MODEL_BYTES = 64 * 2**20
    loader.MAX_NODES = 20_000_000
t0 = time.perf_counter()
model, source = load({path!r})
t1 = time.perf_counter()
report = check(model, source)
t2 = time.perf_counter()
print(json.dumps({{"load": t1 - t0, "check": t2 - t1, "whole": t2 - t0, "findings": len(report.findings),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

PYTM_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {here!r})
from genmodel import topology
from pytm import TM, Actor, Boundary, Dataflow, Datastore, ExternalEntity, Process
topo = topology({n})
t0 = time.perf_counter()
TM.reset()
tm = TM("generated", description="generated benchmark device")
zones = {{}}
def zone(u, crit):
    key = (u, crit)
    if key not in zones:
        zones[key] = Boundary(f"s{{u}} {{crit}}")
    return zones[key]
nodes = {{}}
for p in topo.partitions:
    proc = Process(p.name)
    proc.inBoundary = zone(p.subsystem, p.criticality)
    nodes[p.name] = proc
kinds = {{}}
for i in topo.interfaces:
    # people and the hospital are actors; the display, motor and sensors are hardware
    nodes[i.name] = Actor(i.name) if i.kind in ("network", "keypad", "button") else ExternalEntity(i.name)
    kinds[i.name] = i.kind
for p in topo.partitions:
    for i in p.owns:
        if kinds[i] in ("display", "actuator"):
            Dataflow(nodes[p.name], nodes[i], f"{{p.name}} to {{i}}")
        else:
            Dataflow(nodes[i], nodes[p.name], f"{{i}} to {{p.name}}")
for c in topo.channels:
    Dataflow(nodes[c.src], nodes[c.dst], c.name)
for u in range(topo.subsystems):
    store = Datastore(f"s{{u}}_readings")
    store.inBoundary = zone(u, "safety")
    Dataflow(nodes[f"s{{u}}_mon"], store, f"s{{u}}_mon writes readings")
    for r in ("ctl", "ui"):
        Dataflow(store, nodes[f"s{{u}}_{{r}}"], f"s{{u}}_{{r}} reads readings")
t1 = time.perf_counter()
tm.check()
t2 = time.perf_counter()
tm.resolve()
t3 = time.perf_counter()
print(json.dumps({{"build": t1 - t0, "check": t2 - t1, "resolve": t3 - t2, "whole": t3 - t0,
                  "findings": len(tm.findings), "elements": len(TM._elements),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run_child(code: str) -> dict[str, Any] | str:
    """The child's figures, or why it failed (a failed trial is counted, never dropped silently)."""
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                             timeout=3600)
    except subprocess.TimeoutExpired:
        return "timed out after 3600 s"
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return f"exit {out.returncode}: {lines[-1] if lines else 'no output'}"
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"unreadable output: {out.stdout[-200:]!r}"


def spread(values: list[float], unit: str = " s", fmt: str = ".3f") -> str:
    if not values:
        return "no successful trial"
    return (f"median {statistics.median(values):{fmt}}{unit} (min {min(values):{fmt}}, max {max(values):{fmt}}, "
            f"n={len(values)})")


def pytm_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("pytm")
    except Exception:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--pytm-sizes", default="1000,10000")
    args = ap.parse_args()
    if args.repeat < 5:
        print(f"note: --repeat {args.repeat} is below the 5 trials the goals are judged on")
    sys.path.insert(0, str(HERE))
    from genmodel import element_count, model_yaml, topology

    sizes = [int(s) for s in args.sizes.split(",") if s]
    version = pytm_version()
    pytm_sizes = [int(s) for s in args.pytm_sizes.split(",") if s] if version else []
    if version is None:
        print("pytm is NOT installed: the comparison cannot run "
              "(.venv/bin/pip install 'pytm==1.4.0', the bench extra; `make bench` installs it)")
    elif version != "1.4.0":
        print(f"note: pytm {version} is installed; the goal is stated against pytm 1.4.0")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores shared)")

    tmp = Path(tempfile.mkdtemp(prefix="septum-bench-"))
    paths: dict[int, Path] = {}
    for n in sorted(set(sizes) | set(pytm_sizes)):
        topo = topology(n)
        paths[n] = tmp / f"model_{n}.yaml"
        paths[n].write_text(model_yaml(topo))
        c = topo.counts()
        print(f"model {n:>6}: {paths[n].stat().st_size / 2**20:5.1f} MiB, "
              + ", ".join(f"{v} {k}" for k, v in c.items()) + f"; {element_count(topo)} elements both tools model")

    septum: dict[int, list[dict[str, Any]]] = {n: [] for n in paths}
    pytm: dict[int, list[dict[str, Any]]] = {n: [] for n in pytm_sizes}
    failed: dict[str, list[str]] = {}
    pairs: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {n: [] for n in pytm_sizes}
    for r in range(args.repeat):
        for n in sorted(paths):
            s = run_child(SEPTUM_CHILD.format(root=str(ROOT), path=str(paths[n]), raise_limits=n > 20000))
            if isinstance(s, str):
                failed.setdefault(f"septum {n}", []).append(s)
            else:
                septum[n].append(s)
            if n in pytm:
                p = run_child(PYTM_CHILD.format(here=str(HERE), n=n))
                if isinstance(p, str):
                    failed.setdefault(f"pytm {n}", []).append(p)
                else:
                    pytm[n].append(p)
                    if not isinstance(s, str):
                        pairs[n].append((s, p))
        print(f"round {r + 1}/{args.repeat} done", flush=True)

    print("\nSeptum load + check (fresh process per trial)")
    for n in sorted(septum):
        rows = septum[n]
        note = " (limits raised for this size)" if n > 20000 else ""
        print(f"  {n:>6} partitions{note}")
        for key in ("load", "check", "whole"):
            print(f"    {key:<6} {spread([x[key] for x in rows])}")
        if rows:
            rss = statistics.median(x["rss_mb"] for x in rows)
            print(f"    findings {rows[0]['findings']}, peak RSS {rss:.0f} MiB")
    for n in pytm:
        rows = pytm[n]
        print(f"\npytm {version} on the same topology, {n} partitions"
              + (f" ({rows[0]['elements']} pytm elements, {rows[0]['findings']} findings)" if rows else ""))
        for key in ("build", "check", "resolve", "whole"):
            print(f"    {key:<7} {spread([x[key] for x in rows])}")
        whole = [p["whole"] / s["whole"] for s, p in pairs[n]]
        stage = [p["resolve"] / s["check"] for s, p in pairs[n]]
        print(f"    whole job, pytm / Septum per pair: {spread(whole, 'x', '.1f')}")
        print(f"    stage only (resolve / check) per pair: {spread(stage, 'x', '.1f')}")
    print("\nfailed trials: " + (", ".join(f"{k}: {len(v)} ({v[0]})" for k, v in failed.items()) or "none"))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    def verdict(ok: bool, *sides: str) -> str:
        return "met" if ok and not any(k in failed for k in sides) else "missed"

    def growth(big: int, small: int) -> list[float]:
        # per round: the two sizes ran in the same round, seconds apart
        return [b["whole"] / a["whole"] for a, b in zip(septum.get(small, []), septum.get(big, []), strict=False)]

    lines: list[str] = []
    if septum.get(10000):
        t = statistics.median(x["whole"] for x in septum[10000])
        lines.append(f"GOAL analysis_10k_load_check: {t:.2f} s vs <= {GOAL_10K_S} s — "
                     f"{verdict(t <= GOAL_10K_S, 'septum 10000')}")
    for big, small, goal in ((10000, 1000, GOAL_GROWTH_10K_1K), (50000, 10000, GOAL_GROWTH_50K_10K)):
        if big in septum and small in septum:
            g = growth(big, small)
            if g:
                m = statistics.median(g)
                lines.append(f"GOAL analysis_growth_{big // 1000}k_{small // 1000}k: {m:.1f}x vs <= {goal}x — "
                             f"{verdict(m <= goal, f'septum {big}', f'septum {small}')}")
            else:
                lines.append(f"GOAL analysis_growth_{big // 1000}k_{small // 1000}k: no successful round vs "
                             f"<= {goal}x — missed")
    for n in (1000, 10000):
        name = f"GOAL vs_pytm_whole_job_{n // 1000}k"
        if version is None:
            lines.append(f"{name}: not measured vs >= {GOAL_VS_PYTM:.0f}x — missed (pytm not installed)")
        elif n not in pytm:
            lines.append(f"{name}: not measured (--pytm-sizes) vs >= {GOAL_VS_PYTM:.0f}x — missed")
        elif not pairs[n]:
            lines.append(f"{name}: no successful pair vs >= {GOAL_VS_PYTM:.0f}x — missed")
        else:
            m = statistics.median(p["whole"] / s["whole"] for s, p in pairs[n])
            lines.append(f"{name}: {m:.1f}x vs >= {GOAL_VS_PYTM:.0f}x — "
                         f"{verdict(m >= GOAL_VS_PYTM, f'septum {n}', f'pytm {n}')}")
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
