"""Load generator for the crash test: append records as fast as possible, print what is acknowledged.

Usage: python audit_writer_proc.py LOG PRIVATE_KEY SEED

Prints ``R <next_seq> <torn_bytes>`` once recovery is done, then ``A <first> <last>`` after each group
commit (every seq in that range is durable). The parent kills this process with SIGKILL at random.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from septum.crypto.keys import load_private_key
from septum.services.audit_log import AuditWriter, Record


def main() -> None:
    log, key, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    writer = AuditWriter(log, load_private_key(key), checkpoint_every=2000, checkpoint_interval=0.05)
    out = sys.stdout
    out.write(f"R {writer.recovery.next_seq} {writer.recovery.torn_bytes}\n")
    out.flush()
    pid = os.getpid()
    while True:
        first = writer.next_seq
        for _ in range(rng.randint(1, 400)):
            seq = writer.next_seq
            # Large, varied records so that a kill often lands in the middle of a big write().
            writer.append(Record(time=time.time(), partition="load", event="load.test", severity="info",
                                 message="x" * rng.randint(0, 3000), detail={"seq": seq, "pid": pid}))
        durable = writer.commit()
        out.write(f"A {first} {durable}\n")
        out.flush()


if __name__ == "__main__":
    main()
