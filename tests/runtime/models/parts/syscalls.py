"""A partition that asks its own seccomp filter about every system-call number and writes the answers.

How the filter's answer is told apart from the kernel's: a probing thread stacks a second filter on
itself only (no TSYNC) that sends any call whose sixth argument is ``COOKIE`` to a user-space listener
(SECCOMP_RET_USER_NOTIF). The kernel applies the strongest action of all filters: when the partition's
filter refuses (ERRNO), the caller gets that errno; when it allows, the call goes to the listener, which
answers ``MAGIC`` without the kernel ever running it. So each call's verdict is observed exactly, and no
allowed call (exit, kill, reboot...) takes effect. A few real calls follow, made the ordinary way.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import struct
import threading
from pathlib import Path

from septum.runtime.partition import Partition
from septum.runtime.sandbox import seccomp

COOKIE = 0x5E97_0B5E_C0FF_EE11
MAGIC = 0x5EC
NOTIF_SIZE, RESP_SIZE = 80, 24
IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif)
IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp)
X32_PROBES = (0x40000000, 0x40000000 + 1, 0x40000000 + 59, 0x40000000 + 512)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _observer_program() -> bytes:
    ins = seccomp._ins
    lo, hi = COOKIE & 0xFFFFFFFF, COOKIE >> 32
    return b"".join([
        ins(seccomp._LD_W_ABS, 0, 0, 16 + 8 * 5),  # args[5], low word
        ins(seccomp._JEQ_K, 0, 3, lo),
        ins(seccomp._LD_W_ABS, 0, 0, 16 + 8 * 5 + 4),
        ins(seccomp._JEQ_K, 0, 1, hi),
        ins(seccomp._RET_K, 0, 0, seccomp.SECCOMP_RET_USER_NOTIF),
        ins(seccomp._RET_K, 0, 0, seccomp.SECCOMP_RET_ALLOW),
    ])


def _call(nr: int, args: list[int]) -> tuple[int, int]:
    a = [ctypes.c_ulong(x & 0xFFFFFFFFFFFFFFFF) for x in (args + [0] * 5)[:5]]
    ctypes.set_errno(0)
    rc = _libc.syscall(ctypes.c_long(nr), *a, ctypes.c_ulong(COOKIE))
    return rc, ctypes.get_errno()


def _observe(cases: list[tuple[int, list[int]]]) -> list[str]:
    """'allow' or an errno name per case, as the partition's own filter decides."""
    fd_box: list[int] = []
    ready, stop = threading.Event(), threading.Event()
    seen: list[int] = []

    def listen() -> None:
        ready.wait()
        fd = fd_box[0]
        while not stop.is_set():
            if not select.select([fd], [], [], 0.05)[0]:
                continue
            notif = ctypes.create_string_buffer(NOTIF_SIZE)
            if _libc.ioctl(fd, ctypes.c_ulong(IOCTL_NOTIF_RECV), notif) != 0:
                continue
            nid, _pid, _flags, nr = struct.unpack_from("QIIi", notif.raw)
            seen.append(nr)
            resp = ctypes.create_string_buffer(struct.pack("QqiI", nid, MAGIC, 0, 0), RESP_SIZE)
            _libc.ioctl(fd, ctypes.c_ulong(IOCTL_NOTIF_SEND), resp)

    out: list[str] = []

    def probe() -> None:
        try:
            fd_box.append(seccomp.install(_observer_program(), flags=seccomp.SECCOMP_FILTER_FLAG_NEW_LISTENER))
        finally:
            ready.set()
        for nr, args in cases:
            rc, err = _call(nr, args)
            out.append("allow" if rc == MAGIC else errno.errorcode.get(err, f"errno {err} rc {rc}"))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    prober = threading.Thread(target=probe)  # the observer filter dies with this thread
    prober.start()
    prober.join()
    stop.set()
    listener.join()
    if fd_box:
        os.close(fd_box[0])
    return out


def _real(nr_name: str, *args: int) -> str:
    """An ordinary call (no cookie): what a program really gets."""
    nr = seccomp.NUMBERS[nr_name]
    a = [ctypes.c_ulong(x & 0xFFFFFFFFFFFFFFFF) for x in args]
    ctypes.set_errno(0)
    rc = _libc.syscall(ctypes.c_long(nr), *a)
    return f"rc={rc}" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")


def _try(fn: object) -> str:
    try:
        fn()  # type: ignore[operator]
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    except Exception as exc:
        return type(exc).__name__
    return "ok"


THREAD_FLAGS = 0x3D0F00  # what glibc's pthread_create passes: CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|...
SIGCHLD = 17
N = seccomp.NUMBERS
# calls whose verdict depends on an argument: (nr, args...)
VARIANTS: list[list[int]] = [
    [N["clone"], THREAD_FLAGS], [N["clone"], SIGCHLD], [N["clone"], seccomp.CLONE_VM | seccomp.CLONE_THREAD],
    *[[N["clone"], THREAD_FLAGS | flag] for flag in (
        seccomp.CLONE_NEWUSER, seccomp.CLONE_NEWNS, seccomp.CLONE_NEWNET, seccomp.CLONE_NEWPID,
        seccomp.CLONE_NEWIPC, seccomp.CLONE_NEWUTS, seccomp.CLONE_NEWCGROUP, seccomp.CLONE_PTRACE)],
    [N["clone"], SIGCHLD | seccomp.CLONE_NEWUSER], [N["clone"], SIGCHLD | seccomp.CLONE_NEWNET],
    [N["clone"], 0xFFFFFFFF_00000000 | THREAD_FLAGS],
    [N["personality"], 0], [N["personality"], 0xFFFFFFFF], [N["personality"], 0x0400000],
    [N["personality"], 0x0040000], [N["personality"], 0x0008], [N["personality"], 0xFFFFFFFF_00000000],
    [N["socket"], 1], [N["socket"], 2], [N["socket"], 10], [N["socket"], 16], [N["socket"], 17],
    [N["socket"], 0x1_00000002],
    [N["ioctl"], 0, 0x5401], [N["ioctl"], 0, seccomp.TIOCSTI], [N["ioctl"], 0, seccomp.TIOCLINUX],
]


def cases(variants: list[list[int]]) -> list[tuple[int, list[int]]]:
    top = 600
    skip = {seccomp.NUMBERS[n] for n in seccomp.KERNEL_UNFILTERED}  # never filtered; 335 would SIGILL us
    return [(nr, []) for nr in range(top + 1) if nr not in skip] + [(nr, []) for nr in X32_PROBES] + \
        [(v[0], v[1:]) for v in variants]


def prober(p: Partition) -> None:
    todo = cases(VARIANTS)
    verdicts = _observe(todo)
    ran = threading.Thread(target=lambda: None)
    ran.start()
    ran.join()

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    real = {
        "thread": "ok",  # a thread ran above (the observer needed two)
        "fork": _try(fork),
        "clone3": _real("clone3", 0, 0),  # the kernel itself would say EFAULT/EINVAL
        "memfd_create": _real("memfd_create", 0, 0),
        "unshare_newuser": _real("unshare", seccomp.CLONE_NEWUSER),
        "ptrace_traceme": _real("ptrace", 0, 0, 0, 0),
        "personality_query": _real("personality", 0xFFFFFFFF),
        "personality_read_implies_exec": _real("personality", 0x0400000),
        "personality_after": _real("personality", 0xFFFFFFFF),
        "execve": _real("execve", 0, 0, 0),
    }
    out = {"cases": [[nr, args, v] for (nr, args), v in zip(todo, verdicts, strict=True)], "real": real}
    (Path(p.data_dir) / "syscalls.json").write_text(json.dumps(out))
    p.event("probed", cases=len(todo))
