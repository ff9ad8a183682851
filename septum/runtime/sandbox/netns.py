"""A private, empty network namespace for a partition that has no network.

Called in the forked child before exec (``spawn.preexec``) while it still has CAP_SYS_ADMIN. The new
namespace has only a down loopback device, so even a socket that slipped past seccomp reaches nothing.
A netns does not isolate path-based AF_UNIX sockets; the seccomp filter forbids creating sockets.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNET = 0x40000000


def unshare_net() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")


def needs_own_netns(partition_owns_network: bool, allow_net: bool) -> bool:
    """A partition keeps the host network only if it owns a network interface or has allow.net."""
    return not (partition_owns_network or allow_net)
