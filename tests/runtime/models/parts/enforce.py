"""Partition code that tries to break out of its sandbox and reports what happened (as one event)."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess

from septum.runtime.partition import Partition


def _try(fn) -> str:
    try:
        fn()
    except PermissionError as exc:
        if exc.errno is None:
            return "refused-by-audit-hook"
        return errno.errorcode[exc.errno]
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    except Exception as exc:
        return type(exc).__name__
    return "ok"


def _write(path: str) -> None:
    with open(path, "w") as f:
        f.write("escape")


def _raw_execve() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    argv = (ctypes.c_char_p * 2)(b"/bin/true", None)
    envp = (ctypes.c_char_p * 1)(None)
    if libc.execve(b"/bin/true", argv, envp) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def prober(p: Partition) -> None:
    out: dict[str, object] = {}
    out["uid"] = os.getuid()
    out["gid"] = os.getgid()
    out["af_inet"] = _try(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
    out["af_inet6"] = _try(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close())
    out["af_unix"] = _try(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
    out["af_netlink"] = _try(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close())
    out["write_data"] = _try(lambda: _write(str(p.data_dir / "ok.txt")))
    out["write_tmp"] = _try(lambda: _write(str(p.config["outside"])))
    out["write_code"] = _try(lambda: _write(os.path.join(os.path.dirname(__file__), "escape.txt")))
    out["read_shadow"] = _try(lambda: open("/etc/shadow").close())
    out["exec_hooked"] = _try(lambda: os.execv("/bin/true", ["true"]))
    out["exec"] = _try(_raw_execve)  # below the audit hook: only the kernel can stop this
    out["subprocess"] = _try(lambda: subprocess.run(["/bin/true"], check=False))
    out["ptrace_kill_1"] = _try(lambda: os.kill(1, 0))
    with open("/proc/self/net/dev") as f:
        out["net_ifaces"] = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the directory fd used by listdir itself
    out["fds"] = fds
    granted_out = {p._outputs[c].fileno() for c in p.outputs} | {p._control.fileno()}
    sent_on = []
    for fd in range(3, 1024):
        if fd in granted_out:
            continue
        try:
            os.write(fd, b"\x91\x00")
            sent_on.append(fd)
        except OSError:
            pass
    out["sent_on_ungranted"] = sent_on
    out["backwards"] = _try(lambda: p._inputs["to_prober"].sock.send(b"\x91\x00"))
    out["control_fd"] = p._control.fileno()
    out["granted_fds"] = sorted(granted_out | {p._inputs[c].fileno() for c in p.inputs})
    out["inputs"] = list(p.inputs)
    out["outputs"] = list(p.outputs)
    p.event("probe", **out)


def idle(p: Partition) -> None:
    """Does nothing but keep its loop (and heartbeats) running."""


def echo_count(p: Partition) -> None:
    for ch in p.inputs:
        p.on(ch, lambda msg, ch=ch: p.event("received", channel=ch))
