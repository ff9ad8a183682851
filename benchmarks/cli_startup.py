"""`septum check` on the pump as a whole process, against `python -c pass` (the interpreter's own start-up).

    .venv/bin/python benchmarks/cli_startup.py [--runs 20]

The two sides alternate (A B A B ...) so that load on the shared machine hits both alike; the goal is
judged on the median of the per-pair ratios. A run counts as failed when its exit code is not the one
expected (0 for check on the pump, 0 for the baseline); failed runs are counted and kept out of the figures.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
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
    if ratios:
        ratio = statistics.median(ratios)
        verdict = "met" if ratio <= GOAL and failed_check == 0 else "missed"
        print(f"GOAL septum_check_vs_python: {ratio:.2f}x vs <= {GOAL}x — {verdict}")
    else:
        print(f"GOAL septum_check_vs_python: no successful pair vs <= {GOAL}x — missed")


if __name__ == "__main__":
    main()
