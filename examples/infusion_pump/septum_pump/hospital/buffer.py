"""A bounded, ordered, on-disk queue of outbound events (survives a restart of the network partition).

One JSON file per event, named by a sequence number, written to a temporary name and renamed into place
(a crash mid-write leaves no half event). The sender takes the oldest first and removes it only after the
hospital acknowledged it, so events go out in order and none is lost while the hospital is unreachable.
When the bound is reached the oldest event is dropped and returned, so the caller can audit the loss:
never silent.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

SUFFIX = ".event.json"


class EventBuffer:
    def __init__(self, folder: Path, max_events: int = 1000) -> None:
        if max_events < 1:
            raise ValueError("the buffer must hold at least one event")
        self.folder = folder
        self.max_events = max_events
        self.corrupt = 0  # unreadable files found at start (removed; the caller audits the count)
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._seqs: list[int] = []
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            stem = path.name[: -len(SUFFIX)]
            if stem.isdigit():
                self._seqs.append(int(stem))
            else:
                path.unlink(missing_ok=True)
                self.corrupt += 1
        for tmp in folder.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        self._seqs.sort()
        self._next = (self._seqs[-1] + 1) if self._seqs else 1

    def _path(self, seq: int) -> Path:
        return self.folder / f"{seq:020d}{SUFFIX}"

    def __len__(self) -> int:
        with self._lock:
            return len(self._seqs)

    def append(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Store an event; returns the events dropped (oldest first) to stay within the bound."""
        data = json.dumps(record, separators=(",", ":")).encode()
        dropped: list[dict[str, Any]] = []
        with self._lock:
            seq = self._next
            self._next += 1
            tmp = self.folder / f"{seq:020d}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self._path(seq))
            self._seqs.append(seq)
            while len(self._seqs) > self.max_events:
                old = self._seqs.pop(0)
                dropped.append(self._read(old) or {"seq": old})
                self._path(old).unlink(missing_ok=True)
            self._ready.notify_all()
        return dropped

    def _read(self, seq: int) -> dict[str, Any] | None:
        try:
            value = json.loads(self._path(seq).read_bytes())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def peek(self, timeout: float | None = None) -> tuple[int, dict[str, Any]] | None:
        """The oldest event (waiting up to ``timeout`` for one), without removing it."""
        with self._lock:
            while True:
                if not self._seqs:
                    self._ready.wait(timeout)
                    if not self._seqs:
                        return None
                seq = self._seqs[0]
                record = self._read(seq)
                if record is not None:
                    return seq, record
                # unreadable (disk trouble): counted and skipped so one bad file cannot block the queue
                self.corrupt += 1
                self._seqs.pop(0)
                self._path(seq).unlink(missing_ok=True)

    def remove(self, seq: int) -> None:
        """Remove an event once the hospital acknowledged it."""
        with self._lock:
            if self._seqs and self._seqs[0] == seq:
                self._seqs.pop(0)
            elif seq in self._seqs:
                self._seqs.remove(seq)
            self._path(seq).unlink(missing_ok=True)

    def wake(self) -> None:
        with self._lock:
            self._ready.notify_all()
