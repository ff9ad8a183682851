"""Test partition whose code is replaced by signed update bundles: it reports the version it runs."""

from __future__ import annotations

from septum.runtime.partition import Partition

VERSION = "model"  # an installed bundle ships this file with its own version here


def main(p: Partition) -> None:
    p.event("code_version", version=VERSION)
