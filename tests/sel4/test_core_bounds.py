"""Where the C core must bound what Python keeps unbounded, it errs on the safe side.

The ledger's ring (``SM_LEDGER_CAP`` segments) is built here with a capacity of 8 and fed more segments than
that: every trailing dose window must then count at least what the Python ledger counts (never less: a
lower count would let a PCA window open early), and exactly as much while the ring is not full.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from septum_pump.therapy.ledger import DeliveryLedger

from . import core_harness as h

PROGRAM = r"""
#include <stdio.h>
#include "therapy_core.h"
static sm_ledger l;
int main(void) {
    int drug; double start, end, rate, cpm, t0, t1; char op;
    sm_ledger_init(&l);
    while (scanf(" %c", &op) == 1) {
        if (op == 'r' && scanf("%d %lf %lf %lf %lf", &drug, &start, &end, &rate, &cpm) == 5)
            printf("%d\n", sm_ledger_record(&l, drug, start, end, rate, cpm, 0));
        else if (op == 'q' && scanf("%d %lf %lf", &drug, &t0, &t1) == 3)
            printf("%.17g\n", sm_ledger_amount_between(&l, drug, t0, t1));
        else return 2;
        fflush(stdout);
    }
    return 0;
}
"""


def _build(tmp: Path, cap: int) -> Path:
    src = tmp / "ledger_probe.c"
    src.write_text(PROGRAM)
    exe = tmp / f"ledger_probe_{cap}"
    subprocess.run(["gcc", *h.CFLAGS, "-O1", f"-DSM_LEDGER_CAP={cap}", "-I", str(h.CORE), str(src),
                    str(h.CORE / "therapy_core.c"), "-o", str(exe)], check=True, capture_output=True, text=True)
    return exe


def test_a_full_ledger_ring_never_undercounts_a_dose_window(tmp_path: Path) -> None:
    exe = _build(tmp_path, 8)
    rnd = random.Random(14)
    for trial in range(40):
        py = DeliveryLedger()
        script, queries = [], []
        t = 0.0
        for _ in range(rnd.randint(4, 40)):
            drug = rnd.choice((0, 0, 0, 1))
            dur = rnd.choice((5.0, 60.0, 300.0))
            rate, cpm = rnd.choice((0.5, 2.0, 10.0, 90.0)), rnd.choice((1.0, 0.2))
            script.append(f"r {drug} {t!r} {t + dur!r} {rate!r} {cpm!r}")
            py.record(str(drug), t, t + dur, rate, cpm)
            t += dur + rnd.choice((0.0, 0.0, 30.0))
            for window in (600.0, 3600.0, 4 * 3600.0):
                for d in (0, 1):
                    script.append(f"q {d} {t - window!r} {t!r}")
                    queries.append((py.amount_between(str(d), t - window, t), len(py.segments())))
        run = subprocess.run([str(exe)], input="\n".join(script) + "\n", capture_output=True, text=True, timeout=60,
                             check=True)
        answers = [float(x) for x, line in zip(run.stdout.split(), script, strict=True) if line.startswith("q")]
        folded = False
        for (expected, n_segments), got in zip(queries, answers, strict=True):
            folded = folded or n_segments > 8  # (a fold is for good: later pruning does not undo it)
            if not folded:
                assert got == expected, f"trial {trial}: {got} != {expected} with the ring not full"
            else:
                assert got >= expected * (1 - 1e-12), f"trial {trial}: the full ring counts {got} < {expected}"
