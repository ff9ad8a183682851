"""TEST DOUBLE of the update service: sends the provisioned signed drug library at start."""

from __future__ import annotations

import json

from septum.runtime.partition import Partition


def main(p: Partition) -> None:
    meta = json.loads((p.data_dir / "library.json").read_text())
    data = (p.data_dir / "library.yaml").read_bytes()
    sig = bytes.fromhex(meta["signature"])

    def publish() -> None:
        for ch in ("drug_library_pc", "drug_library_sm"):
            p.send(ch, version=meta["version"], data=data, signature=sig)

    p.after(0.0, publish)
