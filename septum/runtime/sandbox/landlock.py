"""Landlock filesystem rules (and, from ABI 6, signal and abstract-socket scoping), with plain ctypes.

Applied by ``septum.runtime.boot`` before any thread exists (a Landlock domain is per thread and is
inherited by threads and children created afterwards). The partition may then read and execute only
the code and system directories, and write only its data directory and the files the model allows.
Landlock does not cover fds that are already open (the channel ends, stdout), stat/chmod, or
``connect()`` to path-based AF_UNIX sockets; the seccomp filter forbids creating such sockets.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from dataclasses import dataclass

from septum.errors import SeptumError

NR_CREATE_RULESET = 444
NR_ADD_RULE = 445
NR_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
RULE_NET_PORT = 2

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

# rights that may be granted on a regular file (directory rights on a file rule are EINVAL)
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV


class LandlockError(SeptumError, RuntimeError):
    pass


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    rc = _libc().syscall(ctypes.c_long(NR_CREATE_RULESET), None, ctypes.c_size_t(0),
                         ctypes.c_uint32(CREATE_RULESET_VERSION))
    return rc if rc > 0 else 0


def handled_fs(abi: int) -> int:
    rights = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def read_rights(abi: int) -> int:
    return EXECUTE | READ_FILE | READ_DIR


def write_rights(abi: int) -> int:
    return handled_fs(abi)  # everything inside the data directory


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


@dataclass(frozen=True)
class Applied:
    abi: int
    scoped_signals: bool
    tcp_restricted: bool
    skipped: tuple[str, ...]  # paths that did not exist and so could not be granted


def restrict(
    read_only: Iterable[str],
    read_write: Iterable[str],
    *,
    network: bool,
    bind_ports: Iterable[int] = (),
) -> Applied:
    """Restrict the calling thread (and everything it later creates) to the given paths."""
    abi = abi_version()
    if abi < 1:
        raise LandlockError("Landlock is not available on this kernel")
    libc = _libc()
    # without CAP_SYS_ADMIN (we already run as the partition's uid) restrict_self needs no_new_privs
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise LandlockError(f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    attr = _RulesetAttr(handled_fs(abi), 0, 0)
    size = 8
    tcp_restricted = False
    if abi >= 4 and not network:
        # no TCP bind/connect at all (a second layer under the netns and the seccomp filter)
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
        tcp_restricted = True
    elif abi >= 4:
        # with network: listen only on the ports of the interfaces the partition owns (no backdoor
        # listener); outbound connections stay allowed
        attr.handled_access_net = NET_BIND_TCP
        size = 16
        tcp_restricted = True
    if abi >= 6:
        # a partition may not signal processes outside its own domain, nor reach abstract sockets
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    fd = libc.syscall(ctypes.c_long(NR_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size),
                      ctypes.c_uint32(0))
    if fd < 0:
        raise LandlockError(f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    skipped: list[str] = []
    try:
        for paths, rights in ((read_only, read_rights(abi)), (read_write, write_rights(abi))):
            for path in paths:
                try:
                    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except FileNotFoundError:
                    skipped.append(path)
                    continue
                try:
                    allowed = rights if os.path.isdir(path) else rights & _FILE_RIGHTS
                    rule = _PathBeneath(allowed, pfd)
                    if libc.syscall(ctypes.c_long(NR_ADD_RULE), ctypes.c_int(fd),
                                    ctypes.c_int(RULE_PATH_BENEATH), ctypes.byref(rule),
                                    ctypes.c_uint32(0)) != 0:
                        raise LandlockError(
                            f"landlock_add_rule({path}): {os.strerror(ctypes.get_errno())}")
                finally:
                    os.close(pfd)
        if network and abi >= 4:
            for port in bind_ports:
                net_rule = _NetPort(NET_BIND_TCP, port)
                if libc.syscall(ctypes.c_long(NR_ADD_RULE), ctypes.c_int(fd), ctypes.c_int(RULE_NET_PORT),
                                ctypes.byref(net_rule), ctypes.c_uint32(0)) != 0:
                    raise LandlockError(f"landlock_add_rule(bind tcp/{port}): {os.strerror(ctypes.get_errno())}")
        if libc.syscall(ctypes.c_long(NR_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            raise LandlockError(f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    return Applied(abi=abi, scoped_signals=abi >= 6, tcp_restricted=tcp_restricted,
                   skipped=tuple(skipped))
