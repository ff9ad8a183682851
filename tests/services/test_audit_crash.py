"""kill -9 the audit writer under heavy load, again and again: no acknowledged record may be lost and the
log must always verify (a torn final record is reported as exactly that, and repaired with a record)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from septum.crypto.keys import load_private_key, load_public_key
from septum.services.audit_log import AuditWriter, Checkpoint, Record, read_entries, verify

WRITER = Path(__file__).with_name("audit_writer_proc.py")
ITERATIONS = 55


def _run_and_kill(log: Path, key: Path, seed: int, acks_before_kill: int) -> list[tuple[int, int]]:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(log), str(key), str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    acked: list[tuple[int, int]] = []
    try:
        assert proc.stdout is not None
        if acks_before_kill >= 0:
            line = proc.stdout.readline()  # recovery finished: synchronise on it
            assert line.startswith("R "), (line, proc.stderr.read() if proc.stderr else "")
            while len(acked) < acks_before_kill:
                line = proc.stdout.readline()
                assert line.startswith("A "), line
                _, first, last = line.split()
                acked.append((int(first), int(last)))
        proc.send_signal(signal.SIGKILL)
        # Whatever else the writer printed before dying was acknowledged too (complete lines only).
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in rest.splitlines(keepends=True):
        if line.startswith("A ") and line.endswith("\n"):
            _, first, last = line.split()
            acked.append((int(first), int(last)))
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.e2e
def test_kill9_loop_loses_no_acknowledged_record(tmp_path: Path, key_files: tuple[Path, Path]) -> None:
    priv, pub = key_files
    public = load_public_key(pub)
    log = tmp_path / "audit.log"
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acked: list[tuple[int, int]] = []
    torn_seen: set[tuple[int, int]] = set()  # (seq, offset): a kill before recovery shows the same tail again
    for i in range(ITERATIONS):
        # -1: kill while the interpreter starts or recovery runs; otherwise after n acknowledged batches.
        acked += _run_and_kill(log, priv, rng.randrange(2**31), rng.choice([-1, 0, 1, 1, 2, 3, 5, 8, 13]))
        if not log.exists():
            continue
        result = verify(log, public)
        if not result.ok:
            assert result.damage is not None
            # the unfinished commit: torn, or (a short write that stopped at a frame boundary) unsealed
            assert result.damage.kind in ("torn-tail", "unsealed"), f"iteration {i}: {result.damage.describe()}"
            assert result.damage.seq == result.last_checkpoint_seq + 1  # from right after the last seal
            torn_seen.add((result.damage.seq, result.damage.offset))

    # A clean start recovers whatever the last kill left and closes with a final checkpoint.
    AuditWriter(log, load_private_key(priv)).close()
    result = verify(log, public)
    assert result.ok, result.damage and result.damage.describe()
    assert result.unsealed == 0
    entries, damage = read_entries(log)
    assert damage is None
    for first, last in acked:
        for seq in range(first, last + 1):
            body = entries[seq].body
            if isinstance(body, Checkpoint):
                continue
            assert isinstance(body, Record) and body.event == "load.test" and body.detail["seq"] == seq
    truncations = [e for e in entries if isinstance(e.body, Record) and e.body.event == "audit.torn-tail-truncated"]
    # Every torn tail that verify reported was later cut with a record saying so.
    assert len(truncations) >= len(torn_seen)
    assert sum(last - first + 1 for first, last in acked) > 0
    print(f"{ITERATIONS} kills, {len(entries)} entries, {len(torn_seen)} torn tails repaired")
