"""The seccomp-BPF system-call filter, built and installed with plain ctypes.

Installed by ``septum.runtime.boot`` after exec (the filter forbids execve, so it cannot be installed
before the interpreter starts) and before any thread exists; TSYNC is requested anyway. Denied calls
return EPERM rather than killing the process, so a partition sees an ordinary error it can handle and
the tests can observe it. A foreign architecture (i386/x32 entry points, whose syscall numbers differ)
kills the process: a denylist is only sound for the table it was written for.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Iterable

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
PR_SET_NO_NEW_PRIVS = 38
PR_GET_SECCOMP = 21
NR_SECCOMP = 317

# BPF opcodes used here
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06

# struct seccomp_data offsets
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG0_LO = 16  # little-endian low 32 bits of args[0]

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10

# x86_64 syscall numbers (from asm/unistd_64.h).
SYSCALLS: dict[str, int] = {
    "socket": 41, "execve": 59, "execveat": 322, "ptrace": 101,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308,
    "fsopen": 430, "fsmount": 432, "move_mount": 429, "open_tree": 428, "fspick": 433,
    "mount_setattr": 442, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
    "keyctl": 250, "add_key": 248, "request_key": 249, "reboot": 169, "swapon": 167, "swapoff": 168,
    "acct": 163, "syslog": 103, "iopl": 172, "ioperm": 173, "quotactl": 179,
    "open_by_handle_at": 304, "name_to_handle_at": 303,
    "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
}

# Denied for every partition. Why: exec would leave the sandboxed interpreter; ptrace/process_vm_*/
# pidfd_getfd reach into other processes; io_uring bypasses seccomp for the operations it performs;
# the rest administer the kernel, mounts, namespaces or keys.
BASELINE_DENY: tuple[str, ...] = (
    "execve", "execveat", "ptrace", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsmount", "move_mount",
    "open_tree", "fspick", "mount_setattr", "bpf", "perf_event_open", "userfaultfd", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "process_vm_readv",
    "process_vm_writev", "pidfd_getfd", "keyctl", "add_key", "request_key", "reboot", "swapon",
    "swapoff", "acct", "syslog", "iopl", "ioperm", "quotactl", "open_by_handle_at", "name_to_handle_at",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
)

# ``allow.syscalls`` groups: each re-allows some baseline-denied calls.
GROUPS: dict[str, tuple[str, ...]] = {
    "realtime-clock": ("settimeofday", "clock_settime", "clock_adjtime", "adjtimex"),
}


class SeccompError(RuntimeError):
    pass


def supported_arch() -> bool:
    return platform.machine() == "x86_64"


def unknown_groups(groups: Iterable[str]) -> list[str]:
    return [g for g in groups if g not in GROUPS]


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def build_filter(*, network: bool, allow_groups: Iterable[str] = ()) -> bytes:
    """The BPF program (raw ``struct sock_filter`` array) for a partition."""
    allowed_again = {name for g in allow_groups for name in GROUPS[g]}
    deny = [SYSCALLS[n] for n in BASELINE_DENY if n not in allowed_again]
    # Without network no socket() at all: channels arrive as ready-made fds, and even an AF_UNIX
    # socket could connect() to a host service by path (a netns does not isolate those).
    # With network: only AF_INET/AF_INET6.
    socket_ok = (AF_INET, AF_INET6) if network else ()

    prog: list[bytes] = []
    # Layout: [arch check][nr checks][socket domain check][ALLOW][ERRNO][KILL]
    n_socket = 2 + len(socket_ok)  # ld arg0, one jeq per allowed family, jump-to-errno fallthrough
    body_len = 2 + 1 + 1 + len(deny) + 1 + 1 + n_socket  # see below
    # indices of the three final return instructions
    allow_at = body_len
    errno_at = allow_at + 1
    kill_at = allow_at + 2

    def jump(frm: int, to: int) -> int:
        off = to - frm - 1
        if not 0 <= off <= 255:
            raise SeccompError("seccomp filter too long for BPF jump offsets")
        return off

    i = 0
    prog.append(_ins(_LD_W_ABS, 0, 0, _OFF_ARCH)); i += 1  # noqa: E702
    prog.append(_ins(_JEQ_K, 0, jump(i, kill_at), AUDIT_ARCH_X86_64)); i += 1  # noqa: E702
    prog.append(_ins(_LD_W_ABS, 0, 0, _OFF_NR)); i += 1  # noqa: E702
    # x32 entry points share the x86_64 arch value; their numbers have bit 30 set
    prog.append(_ins(_JGE_K, jump(i, errno_at), 0, X32_SYSCALL_BIT)); i += 1  # noqa: E702
    for nr in deny:
        prog.append(_ins(_JEQ_K, jump(i, errno_at), 0, nr)); i += 1  # noqa: E702
    socket_check = i + 2
    prog.append(_ins(_JEQ_K, jump(i, socket_check), 0, SYSCALLS["socket"])); i += 1  # noqa: E702
    prog.append(_ins(_RET_K, 0, 0, SECCOMP_RET_ALLOW)); i += 1  # noqa: E702  (not socket: allow)
    assert i == socket_check
    prog.append(_ins(_LD_W_ABS, 0, 0, _OFF_ARG0_LO)); i += 1  # noqa: E702
    for fam in socket_ok:
        prog.append(_ins(_JEQ_K, jump(i, allow_at), 0, fam)); i += 1  # noqa: E702
    prog.append(_ins(_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM)); i += 1  # noqa: E702
    assert i == allow_at, (i, allow_at)
    prog.append(_ins(_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    prog.append(_ins(_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM))
    prog.append(_ins(_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS))
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Install the filter on the calling process (all threads). Sets no_new_privs first."""
    if not supported_arch():
        raise SeccompError(f"the seccomp filter is written for x86_64, not {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SeccompError(f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    rc = libc.syscall(
        ctypes.c_long(NR_SECCOMP), ctypes.c_long(SECCOMP_SET_MODE_FILTER),
        ctypes.c_long(SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(fprog),
    )
    if rc != 0:
        raise SeccompError(f"seccomp(SET_MODE_FILTER): {os.strerror(ctypes.get_errno())}")


def mode_of_self() -> int:
    """0 = no seccomp, 2 = filter mode (as in /proc/self/status ``Seccomp:``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return 0
