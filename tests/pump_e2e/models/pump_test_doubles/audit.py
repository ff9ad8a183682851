"""TEST DOUBLE of the audit service: appends every AuditEvent to audit.jsonl (no hash chain)."""

from __future__ import annotations

import json
from typing import Any

from septum.runtime.partition import Partition


def main(p: Partition) -> None:
    log = open(p.data_dir / "audit.jsonl", "a", buffering=1)

    def make(channel: str) -> Any:
        source = channel.removeprefix("audit_")

        def write(msg: Any) -> None:
            log.write(json.dumps({"partition": source, "event": msg.event, "severity": msg.severity,
                                  "detail": msg.detail, "at_ms": msg.at_ms}) + "\n")

        return write

    for ch in p.inputs:
        p.on(ch, make(ch))
