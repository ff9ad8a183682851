"""TEST DOUBLE of the network partition: no hospital link; it only consumes what the pump reports."""

from __future__ import annotations

from septum.runtime.partition import Partition


def main(p: Partition) -> None:
    for ch in p.inputs:
        p.on(ch, lambda msg: None)
