"""Reads what was provisioned into its data dir and reports it as an event."""

from septum.runtime.partition import Partition


def main(p: Partition) -> None:
    text = (p.data_dir / "keys" / "device.txt").read_text()
    p.event("provisioned", content=text)
