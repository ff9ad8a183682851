"""The seccomp-BPF system-call filter: a per-partition allow-list, built and installed with plain ctypes.

A partition may make only the system calls of its groups (``GROUPS``, each with the reason it exists);
every other call is refused without reaching the kernel. Which groups a partition gets comes from the
model (``groups_for``): the baseline every partition needs to run CPython, its threads and its channels,
``network`` when it owns a network interface or has ``allow.net``, and what ``allow.syscalls`` names.
The table was derived by tracing the real partitions of the reference pump, the services and the test
partitions (``strace -f``), then trimmed to what is needed; docs/runtime.md has the table.

Answers: a refused call gets EPERM, a number this table does not know (newer than it) and ``clone3``
get ENOSYS, which is what makes glibc fall back (``clone3`` -> ``clone``, whose flags BPF can read:
``clone3`` passes them in memory a filter cannot see). A foreign architecture (i386 entry points, whose
numbers differ) kills the process; x32 numbers (x86_64 arch value, bit 30 set) are refused.

Installed by ``septum.runtime.boot`` after exec (the filter has no execve) and before any thread exists;
TSYNC is requested anyway. Why hand-written and not libseccomp: see docs/runtime.md ("The seccomp filter").
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from septum.errors import SeptumError

from .syscalls_x86_64 import MAX_KNOWN, NAMES, NUMBERS

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
PR_SET_NO_NEW_PRIVS = 38
NR_SECCOMP = 317

# BPF opcodes used here
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGT_K = 0x25
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

# struct seccomp_data offsets
_OFF_NR = 0
_OFF_ARCH = 4


def _off_arg_lo(i: int) -> int:
    return 16 + 8 * i  # little-endian low 32 bits of args[i]


AF_INET, AF_INET6 = 2, 10
CLONE_VM, CLONE_THREAD = 0x100, 0x10000
# every namespace flag clone() takes (CLONE_NEWTIME shares its bit with the exit signal there and is
# refused by the kernel in clone(); unshare and clone3, the other ways to ask for it, are refused here)
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x20000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x10000000, 0x20000000, 0x40000000
CLONE_PTRACE, CLONE_UNTRACED = 0x2000, 0x00800000
CLONE_REFUSED = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
                 | CLONE_NEWNET | CLONE_PTRACE | CLONE_UNTRACED)
PER_LINUX, PER_QUERY = 0, 0xFFFFFFFF
TIOCSTI, TIOCLINUX = 0x5412, 0x541C  # inject input into / drive a terminal


@dataclass(frozen=True)
class Group:
    name: str
    reason: str
    calls: tuple[str, ...]


# Every partition gets these. Reasons are what the traced partitions used the calls for.
BASE_GROUPS: tuple[Group, ...] = (
    Group("process", "CPython and glibc at run time: memory, own ids and limits, exit, randomness; "
          "seccomp itself (a filter can only be narrowed further)",
          ("brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mincore", "msync", "exit", "exit_group",
           "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
           "getgroups", "getpgrp", "getpgid", "getsid", "uname", "arch_prctl", "set_tid_address", "prlimit64",
           "getrlimit", "getrusage", "sysinfo", "getrandom", "prctl", "seccomp", "sched_getaffinity",
           "sched_yield", "sched_getparam", "sched_getscheduler", "getcpu", "umask", "restart_syscall",
           "futex", "set_robust_list", "get_robust_list", "rseq", "capget", "times")),
    Group("threads", "Python threads (the event loop's waker, argon2's lanes, the hospital link's servers): "
          "clone only with CLONE_THREAD and no namespace or trace flag; clone3 is answered ENOSYS so glibc "
          "falls back to clone",
          ("clone", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue", "membarrier")),
    Group("files", "imports, the data folder (the audit log's pwritev + fdatasync, atomic replace by rename), "
          "/proc/self; which paths is Landlock's business, not this filter's",
          ("read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2",
           "pwritev2", "open", "openat", "openat2", "close", "close_range", "lseek", "fstat", "stat", "lstat",
           "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat", "faccessat2", "readlink",
           "readlinkat", "getdents64", "getcwd", "chdir", "fchdir", "dup", "dup2", "dup3", "fcntl", "ioctl",
           "pipe", "pipe2", "flock", "fsync", "fdatasync", "sync_file_range", "ftruncate", "truncate",
           "fallocate", "fadvise64", "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir",
           "mkdirat", "rmdir", "fchmod", "chmod", "fchmodat", "fchmodat2", "utimensat", "copy_file_range",
           "sendfile", "link", "linkat", "symlink", "symlinkat")),
    Group("time", "the runtime clock, timers and sleeps (setting the clock is the realtime-clock group)",
          ("clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
           "timerfd_create", "timerfd_settime", "timerfd_gettime", "getitimer", "setitimer", "alarm")),
    Group("signals", "Python's signal handling and the waker's SIGRTMIN+3 to its own main thread; which "
          "processes a partition can signal is bounded by its uid and Landlock's signal scope",
          ("rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
           "rt_sigsuspend", "sigaltstack", "kill", "tgkill", "tkill", "pause")),
    Group("wait", "waiting on the channel, control and device fds (poll, epoll for asyncio and selectors)",
          ("poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
           "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2")),
    Group("channels", "messages on the socket fds it was handed (channels, control, devices); "
          "socketpair makes only a connected pair no one else can reach",
          ("recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg", "shutdown", "getsockopt",
           "setsockopt", "getsockname", "getpeername", "socketpair")),
)

# Granted by the model. ``network``: owning a network interface or ``allow.net``; the rest by name in
# ``allow.syscalls``.
MODEL_GROUPS: dict[str, Group] = {
    "network": Group("network", "TCP/TLS for a partition that owns a network interface or has allow.net; "
                     "socket() only for AF_INET/AF_INET6",
                     ("socket", "connect", "bind", "listen", "accept", "accept4")),
    "processes": Group("processes", "allow.syscalls: processes -- fork (clone without CLONE_THREAD, still no "
                       "namespace flags) and waiting for its children; exec stays refused",
                       ("fork", "vfork", "wait4", "waitid", "setpgid", "setsid")),
    "realtime-clock": Group("realtime-clock", "allow.syscalls: realtime-clock -- set the wall clock",
                            ("settimeofday", "clock_settime", "clock_adjtime", "adjtimex")),
}
GROUPS = {g: MODEL_GROUPS[g] for g in ("processes", "realtime-clock")}  # the names allow.syscalls takes

# Answered ENOSYS (the better signal: callers fall back) rather than EPERM.
ENOSYS_CALLS = ("clone3",)

# The kernel runs these without consulting seccomp at all (Linux 6.11+/6.17+): they only act inside a
# uprobe trampoline the kernel itself maps; called from anywhere else they raise SIGILL / return ENXIO.
KERNEL_UNFILTERED = ("uretprobe", "uprobe")

# Called out in --explain and docs: refused although a naive list might keep them.
NOTABLE_REFUSED = ("execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "memfd_create",
                   "unshare", "setns", "mount", "bpf", "io_uring_setup", "userfaultfd", "perf_event_open",
                   "personality (only query/PER_LINUX)", "clone3 (ENOSYS)", "SysV/POSIX IPC", "setuid")


class SeccompError(SeptumError, RuntimeError):
    pass


def supported_arch() -> bool:
    return platform.machine() == "x86_64"


def unknown_groups(groups: Iterable[str]) -> list[str]:
    return [g for g in groups if g not in GROUPS]


def groups_for(*, network: bool, allow_groups: Iterable[str] = ()) -> tuple[Group, ...]:
    """The groups a partition gets, from what the model declares it does."""
    extra = [MODEL_GROUPS["network"]] if network else []
    extra += [GROUPS[g] for g in dict.fromkeys(allow_groups)]
    return BASE_GROUPS + tuple(extra)


@dataclass(frozen=True)
class Policy:
    """What one partition's filter allows; ``program()`` compiles it, ``verdict()`` says the same in Python
    (for --explain and the tests, which compare it with what the kernel answers)."""

    groups: tuple[Group, ...]

    @classmethod
    def of(cls, *, network: bool, allow_groups: Iterable[str] = ()) -> Policy:
        return cls(groups_for(network=network, allow_groups=allow_groups))

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)

    @property
    def calls(self) -> frozenset[str]:
        return frozenset(c for g in self.groups for c in g.calls)

    @property
    def network(self) -> bool:
        return "network" in self.group_names

    @property
    def processes(self) -> bool:
        return "processes" in self.group_names

    def numbers(self) -> list[int]:
        return sorted([*(NUMBERS[c] for c in self.calls), NUMBERS["personality"]])

    def verdict(self, nr: int, args: Sequence[int] = (0, 0, 0, 0, 0, 0)) -> int:
        """0 = allowed, else the errno the filter answers."""
        lo = [a & 0xFFFFFFFF for a in args] + [0] * (6 - len(args))
        if nr >= X32_SYSCALL_BIT:
            return errno.EPERM
        name = NAMES.get(nr)
        if name in ENOSYS_CALLS or nr > MAX_KNOWN:
            return errno.ENOSYS
        if name == "personality":
            return 0 if lo[0] in (PER_LINUX, PER_QUERY) else errno.EPERM
        if name not in self.calls:
            return errno.EPERM
        if name == "clone":
            if lo[0] & CLONE_REFUSED:
                return errno.EPERM
            return 0 if self.processes or lo[0] & CLONE_THREAD else errno.EPERM
        if name == "socket":
            return 0 if lo[0] in (AF_INET, AF_INET6) else errno.EPERM
        if name == "ioctl":
            return errno.EPERM if lo[1] in (TIOCSTI, TIOCLINUX) else 0
        return 0

    def program(self) -> bytes:
        """The BPF program (raw ``struct sock_filter`` array)."""
        return _compile(self)


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def _ret(action: int) -> bytes:
    return _ins(_RET_K, 0, 0, action)


ALLOW = SECCOMP_RET_ALLOW
EPERM = SECCOMP_RET_ERRNO | errno.EPERM
ENOSYS = SECCOMP_RET_ERRNO | errno.ENOSYS


def _arg0_one_of(a: int, b: int) -> list[bytes]:
    """Allow the call when the low 32 bits of its first argument are ``a`` or ``b``; EPERM otherwise."""
    return [_ins(_LD_W_ABS, 0, 0, _off_arg_lo(0)),
            _ins(_JEQ_K, 2, 0, a),
            _ins(_JEQ_K, 1, 0, b),
            _ret(EPERM), _ret(ALLOW)]


def _arg_block(policy: Policy, name: str) -> list[bytes]:
    """Instructions after ``nr == name`` has matched; every path ends in a return."""
    if name == "personality":
        return _arg0_one_of(PER_QUERY, PER_LINUX)
    if name == "clone":
        out = [_ins(_LD_W_ABS, 0, 0, _off_arg_lo(0)),
               _ins(_JSET_K, 0, 1, CLONE_REFUSED), _ret(EPERM)]
        if not policy.processes:
            out += [_ins(_JSET_K, 1, 0, CLONE_THREAD), _ret(EPERM)]
        return [*out, _ret(ALLOW)]
    if name == "socket":
        return _arg0_one_of(AF_INET, AF_INET6)
    if name == "ioctl":
        return [_ins(_LD_W_ABS, 0, 0, _off_arg_lo(1)),
                _ins(_JEQ_K, 1, 0, TIOCSTI),
                _ins(_JEQ_K, 0, 1, TIOCLINUX),
                _ret(EPERM), _ret(ALLOW)]
    raise SeccompError(f"no argument check for {name}")


def _compile(policy: Policy) -> bytes:
    prog: list[bytes] = [
        _ins(_LD_W_ABS, 0, 0, _OFF_ARCH),
        _ins(_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _ret(SECCOMP_RET_KILL_PROCESS),
        _ins(_LD_W_ABS, 0, 0, _OFF_NR),
        _ins(_JGE_K, 0, 1, X32_SYSCALL_BIT),
        _ret(EPERM),
    ]
    checked = ["personality"] + [c for c in ("clone", "socket", "ioctl") if c in policy.calls]
    for name in checked:
        block = _arg_block(policy, name)
        prog.append(_ins(_JEQ_K, 0, len(block), NUMBERS[name]))
        prog += block
    # plain allowed numbers: the kernel caches an argument-free ALLOW per number (5.11+), so the
    # linear list costs nothing on the hot path
    for nr in sorted(NUMBERS[c] for c in policy.calls if c not in checked):
        prog += [_ins(_JEQ_K, 0, 1, nr), _ret(ALLOW)]
    for name in ENOSYS_CALLS:
        prog += [_ins(_JEQ_K, 0, 1, NUMBERS[name]), _ret(ENOSYS)]
    prog += [_ins(_JGT_K, 0, 1, MAX_KNOWN), _ret(ENOSYS), _ret(EPERM)]
    if len(prog) > 4096:
        raise SeccompError("seccomp filter longer than the kernel's 4096 instructions")
    return b"".join(prog)


def build_filter(*, network: bool, allow_groups: Iterable[str] = ()) -> bytes:
    """The BPF program for a partition (as ``Policy.of(...).program()``)."""
    return Policy.of(network=network, allow_groups=allow_groups).program()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes, *, flags: int = SECCOMP_FILTER_FLAG_TSYNC) -> int:
    """Install a filter on the calling process (all threads with TSYNC). Sets no_new_privs first.

    Returns the syscall's result (a listener fd with ``SECCOMP_FILTER_FLAG_NEW_LISTENER``, else 0)."""
    if not supported_arch():
        raise SeccompError(f"the seccomp filter is written for x86_64, not {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SeccompError(f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    rc = libc.syscall(
        ctypes.c_long(NR_SECCOMP), ctypes.c_long(SECCOMP_SET_MODE_FILTER), ctypes.c_long(flags),
        ctypes.byref(fprog),
    )
    if rc < 0:
        raise SeccompError(f"seccomp(SET_MODE_FILTER): {os.strerror(ctypes.get_errno())}")
    return int(rc)


def mode_of_self() -> int:
    """0 = no seccomp, 2 = filter mode (as in /proc/self/status ``Seccomp:``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return 0
