"""The first code a partition process runs (``python -I -B -m septum.runtime.boot CONTROL_FD``).

1. read the ``Boot`` configuration the supervisor left on the control channel;
2. apply Landlock, then the seccomp filter (both before any thread exists; seccomp forbids execve,
   which is why it is applied here, after exec, and not in the supervisor's preexec_fn);
3. install an audit hook (PEP 578) that refuses and reports process creation: defence in depth and
   logging only, not a security boundary (the kernel mechanisms are);
4. build the channel ends and the ``Partition``, import the entry point and call it, then run the
   event loop until the supervisor stops the partition.

Exit codes are in ``septum.runtime.protocol``; before a non-zero exit boot sends ``Fatal`` with the
reason, so the supervisor can report it without anyone reading a traceback.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from . import protocol as proto

# process creation that would run another program (the seccomp filter denies exec anyway)
_REFUSED_EVENTS = frozenset({"subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system"})


def _fatal(control: socket.socket, code: int, reason: str, detail: str = "") -> None:
    try:
        control.send(proto.encoder.encode(proto.Fatal(reason=reason, detail=detail[-4000:])))
    except OSError:
        pass
    sys.stderr.write(f"septum partition: {reason}\n{detail}\n")
    sys.stderr.flush()
    os._exit(code)


def _apply_sandbox(cfg: proto.Boot) -> None:
    from .sandbox import landlock, seccomp

    sb = cfg.sandbox
    if sb.landlock:
        landlock.restrict(sb.read_only, sb.read_write, network=sb.network, bind_ports=sb.bind_ports)
    if sb.seccomp:
        seccomp.install(seccomp.build_filter(network=sb.network, allow_groups=sb.syscall_groups))


def _install_audit_hook(report: Any) -> None:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in _REFUSED_EVENTS:
            report(event)
            raise PermissionError(f"septum: {event} is not allowed in a partition")

    sys.addaudithook(hook)


def _resolve(entry: str) -> Any:
    module, _, func = entry.partition(":")
    mod = importlib.import_module(module)
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise ImportError(f"{module} has no callable {func!r}")
    return fn


def main(argv: list[str]) -> None:
    try:
        control_fd = int(argv[1])
        control = socket.socket(fileno=control_fd)
    except (IndexError, ValueError, OSError) as exc:
        sys.stderr.write(f"septum boot: started without a control channel ({exc})\n")
        os._exit(proto.EXIT_BOOT)
    try:
        cfg = proto.to_partition.decode(control.recv(proto.MAX_CONTROL_MESSAGE))
        if not isinstance(cfg, proto.Boot):
            raise ValueError("first control message is not Boot")
    except Exception as exc:
        _fatal(control, proto.EXIT_BOOT, f"bad boot configuration: {exc}")
        return
    try:
        _apply_sandbox(cfg)
    except Exception as exc:
        _fatal(control, proto.EXIT_BOOT, f"sandbox could not be applied: {exc}")
        return

    from .channel import ReceiveEnd, SendEnd
    from .clock import Clock
    from .codec import Codec
    from .partition import Partition

    clock = Clock(origin=cfg.clock_origin, scale=cfg.clock_scale, wall_origin=cfg.clock_wall)
    codecs: dict[str, Codec] = {}

    def codec(message: str) -> Codec:
        if message not in codecs:
            codecs[message] = Codec.build(message, cfg.messages[message])
        return codecs[message]

    try:
        inputs = {
            c.name: ReceiveEnd(c.name, socket.socket(fileno=c.fd), codec(c.message), queue=c.queue,
                               rate_per_s=c.rate_per_s, clock=clock)
            for c in cfg.inputs
        }
        outputs = {c.name: SendEnd(c.name, socket.socket(fileno=c.fd), codec(c.message), rate_per_s=c.rate_per_s)
                   for c in cfg.outputs}
        devices = {d.name: socket.socket(fileno=d.fd) for d in cfg.devices}
    except Exception as exc:
        _fatal(control, proto.EXIT_BOOT, f"channel setup failed: {exc}")
        return
    part = Partition(
        cfg.partition, inputs=inputs, outputs=outputs, control=control, clock=clock,
        data_dir=Path(cfg.data_dir), config=cfg.config, heartbeat_ms=cfg.heartbeat_ms, devices=devices,
    )
    _install_audit_hook(lambda ev: part.audit("refused_call", severity="warning", call=ev))

    sys.path[:0] = cfg.import_path
    try:
        entry = _resolve(cfg.entry)
    except Exception as exc:
        _fatal(control, proto.EXIT_IMPORT, f"cannot import entry point {cfg.entry}: {exc}",
               traceback.format_exc())
        return
    try:
        entry(part)
        part.run()
    except MemoryError:
        _fatal(control, proto.EXIT_MEMORY, "memory limit reached (MemoryError)")
    except Exception as exc:
        _fatal(control, proto.EXIT_ENTRY_ERROR, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(proto.EXIT_OK)


if __name__ == "__main__":
    main(sys.argv)
