"""`septum check` on the pump as a whole process, against `python -c pass` (the interpreter's own start-up).

    .venv/bin/python benchmarks/cli_startup.py [--runs 20]

The two sides alternate (A B A B ...) so that load on the shared machine hits both alike; the goal is
judged on the median of the per-pair ratios. A run counts as failed when its exit code is not the one
expected (0 for check on the pump, 0 for the baseline); failed runs are counted and shown, they are kept out
of the timing figures, and any failed run makes the goal missed. After the timings, one run under
``-X importtime`` shows where the process's time goes (imports by top-level package, then the work).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PUMP = ROOT / "examples" / "infusion_pump" / "model.yaml"
GOAL = 2.5
CHECK_EXIT = 0


def timed(argv: list[str]) -> tuple[float, int]:
    t = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, check=False)
    return time.perf_counter() - t, proc.returncode


def spread(name: str, values: list[float], unit: str, scale: float) -> str:
    if not values:
        return f"{name}: no successful runs"
    return (f"{name}: median {statistics.median(values) * scale:.2f}{unit}, min {min(values) * scale:.2f}{unit}, "
            f"max {max(values) * scale:.2f}{unit} over {len(values)} runs")


def import_profile(check_cmd: list[str]) -> str:
    """One run of ``septum check`` under ``-X importtime``: self time of the imports by top-level package.
    Import timing has its own overhead; the shares, not the absolute figures, are the point."""
    code = ("import sys; from septum.cli import main; "
            f"sys.argv = ['septum', *{check_cmd[1:]!r}]; main()")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    total = time.perf_counter() - t
    by_pkg: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|(\s*)(\S+)", line)
        if m:
            top = m.group(3).split(".")[0]
            by_pkg[top] = by_pkg.get(top, 0) + int(m.group(1))
    imports = sum(by_pkg.values()) / 1e6
    top = sorted(by_pkg.items(), key=lambda kv: -kv[1])[:10]
    return (f"one run under -X importtime: {total * 1000:.0f} ms in all, imports {imports * 1000:.0f} ms "
            f"(exit {proc.returncode}); by package: " + ", ".join(f"{k} {v / 1000:.0f} ms" for k, v in top))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if args.runs < 5:
        print(f"note: --runs {args.runs} is below the 5 pairs the goal is judged on")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores shared)")
    # The installed console script, as a user runs it (septum.cli has no __main__ for -m).
    check_cmd = [str(Path(sys.executable).with_name("septum")), "check", str(PUMP)]
    base_cmd = [sys.executable, "-c", "pass"]
    # One warm-up of each so that the first pair does not pay for cold page cache and .pyc writes.
    timed(check_cmd)
    timed(base_cmd)
    checks: list[float] = []
    bases: list[float] = []
    ratios: list[float] = []
    failed_check = failed_base = 0
    for _ in range(args.runs):
        tc, rc_c = timed(check_cmd)
        tb, rc_b = timed(base_cmd)
        if rc_c != CHECK_EXIT:
            failed_check += 1
        else:
            checks.append(tc)
        if rc_b != 0:
            failed_base += 1
        else:
            bases.append(tb)
        if rc_c == CHECK_EXIT and rc_b == 0:
            ratios.append(tc / tb)
    print(f"command: {' '.join(check_cmd)}  (expected exit {CHECK_EXIT})")
    print(spread("septum check", checks, " ms", 1000))
    print(spread("python -c pass", bases, " ms", 1000))
    print(spread("ratio per pair", ratios, "x", 1))
    print(f"failed runs: septum check {failed_check}/{args.runs}, python -c pass {failed_base}/{args.runs}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(import_profile(check_cmd))
    if ratios:
        ratio = statistics.median(ratios)
        verdict = "met" if ratio <= GOAL and failed_check == 0 and failed_base == 0 else "missed"
        print(f"GOAL septum_check_vs_python: {ratio:.2f}x vs <= {GOAL}x — {verdict}")
    else:
        print(f"GOAL septum_check_vs_python: no successful pair vs <= {GOAL}x — missed")


if __name__ == "__main__":
    main()
