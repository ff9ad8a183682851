"""Time from Supervisor.start() (analysis gate included) to "all seven partitions ready".

    .venv/bin/python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from septum.model import loads
from septum.runtime.supervisor import Supervisor, remove_state_dir

NAMES = ["ui", "network", "auth", "pump", "monitor", "logger", "alarm"]


def model_text() -> str:
    parts = "\n".join(f"  {n}: {{runs: 'bench_parts:idle', heartbeat_ms: 500}}" for n in NAMES)
    return f"septum: 1\ndevice: {{name: startup-bench}}\npartitions:\n{parts}\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="septum-bench-"))
    work.chmod(0o755)
    (work / "bench_parts.py").write_text("def idle(p):\n    pass\n")
    model, source = loads(model_text(), file=str(work / "model.yaml"))
    times = []
    for _ in range(args.runs):
        state = Path(tempfile.mkdtemp(prefix="septum-bench-state-"))
        t = time.perf_counter()
        try:
            sup = Supervisor(model, source, model_dir=work, state_dir=state)
            sup.start()
            ok = sup.wait_ready(10)
            times.append(time.perf_counter() - t)
            if not ok:
                print("not ready within 10 s")
        finally:
            sup.stop()
            remove_state_dir(state)
    remove_state_dir(work)
    print(f"seven partitions ready after start(): median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms over {len(times)} runs")


if __name__ == "__main__":
    main()
