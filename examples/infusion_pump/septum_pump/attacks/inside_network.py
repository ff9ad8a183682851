"""Attacker code that runs INSIDE the network partition's sandbox: the "compromised network partition".

The attack suite's device (``attacks.device.AttackRig``) runs this as the network partition's entry point. It
first runs the real network partition (``septum_pump.network.main``: the hospital link keeps working), then
waits for the rig to drop a request file in its data dir and runs the requested attack family with exactly
what a compromised network partition has: its uid, its namespaces, its seccomp filter and Landlock rules, the
channel ends the model grants it (``orders_in``, ``updates_in``, ``audit_network`` out; ``order_replies``,
``pump_events`` in) and whatever it saw on them. It reports every attempt in one ``attack_report`` event
(``results``: JSON list of ``[attempt, outcome, detail]``) where outcome is

* ``blocked``: the sandbox or the runtime refused it here (an exception or an error return);
* ``sent``: the bytes left on a granted channel; whether the receiver refused them is checked from outside
  (auth's answer, the runtime's ``channel_drops``, the update service's verdict);
* ``open``: it worked (the attack succeeded at this step: the scenario fails).

Nothing here is used by the pump itself; it is test equipment, shipped with the attack suite only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from septum.runtime import protocol as proto
from septum.runtime.partition import Partition

from .. import network

REQUEST_FILE = "attack-request.json"
Result = list[Any]  # [attempt, outcome, detail]
ORDER_FIELDS = dict(order_id="ATK-0", patient_id="MRN-1", drug="normal-saline", concentration=1.0,
                    concentration_unit="mL/mL", dose_unit="mL/h", dose_rate=999.0, vtbi_ml=5000.0, weight_kg=0.0,
                    care_area="icu", source="fhir", principal="hospital.example", nonce="n" * 32, sent_at_ms=0,
                    cert=b"", signature=b"\x30\x06\x02\x01\x01\x02\x01\x01")
# what a compromised network partition can put on updates_in: chunks no update server signed
UNSIGNED_CHUNK = dict(principal="updates.hospital.example", nonce="n" * 32, sent_at_ms=0, cert=b"", signature=b"")


def _err(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__} {errno.errorcode.get(exc.errno, exc.errno)}"
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def attempt(results: list[Result], name: str, fn: Callable[[], str]) -> None:
    """Run one attempt: an exception means the sandbox/runtime blocked it; a return means it worked."""
    try:
        detail = fn()
    except BaseException as exc:
        if isinstance(exc, SystemExit | KeyboardInterrupt):
            raise
        results.append([name, "blocked", _err(exc)])
        return
    results.append([name, "open", detail[:200]])


class Attacker:
    def __init__(self, p: Partition) -> None:
        self.p = p
        self.captured: list[msgspec.Struct] = []  # orders this partition forwarded to auth (it sees them all)
        self.replies: dict[str, tuple[bool, str]] = {}
        self.busy = False

    # ------------------------------------------------------------------ hooks around the real partition
    def install(self) -> None:
        p = self.p
        real_send = p.send

        def send(channel: str, msg: msgspec.Struct | None = None, /, **fields: Any) -> bool:
            if channel == "orders_in" and msg is not None:
                self.captured.append(msg)
                del self.captured[:-8]
            return real_send(channel, msg, **fields)

        p.send = send  # type: ignore[method-assign]
        network.main(p)
        real_reply = p._handlers["order_replies"]

        def on_reply(msg: Any) -> None:
            self.replies[msg.order_id] = (bool(msg.accepted), str(msg.reason))
            real_reply(msg)

        p._handlers["order_replies"] = on_reply
        # poll for the rig's request every 50 ms of real time (device-time timers scale)
        p.every(0.05 * p.clock.scale, self.poll)

    def poll(self) -> None:
        path = self.p.data_dir / REQUEST_FILE
        if self.busy or not path.exists():
            return
        try:
            req = json.loads(path.read_text())
            path.unlink()
        except (OSError, ValueError):
            return
        family = str(req.get("family"))
        fn = getattr(self, f"family_{family}", None)
        if fn is None:
            self.report(req, [["request", "blocked", f"unknown family {family}"]])
            return
        fn(req, dict(req.get("params") or {}))

    def report(self, req: dict[str, Any], results: list[Result], **extra: Any) -> None:
        self.busy = False
        self.p.event("attack_report", id=req.get("id"), family=req.get("family"),
                     results=json.dumps(results)[:60000], **extra)

    def later(self, delay_real_s: float, fn: Callable[[], None]) -> None:
        self.p.after(delay_real_s * self.p.clock.scale, fn)

    # ------------------------------------------------------------------ channels it was not granted
    def family_channels(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        p = self.p
        results: list[Result] = []
        motor = {"seq": 1, "rate_ml_h": 999.0, "bolus": True}
        for ch, fields in (("motor_cmd", motor), ("commands", {"action": "start_infusion", "dose_rate": 999.0}),
                           ("program", {"drug": "normal-saline", "dose_rate": 999.0}),
                           ("fault_reset", {"principal": "attacker", "reason": "x"}),
                           ("drug_library_sm", {"version": 99, "data": b"x", "signature": b"x"}),
                           ("authorised_updates", {"bundle_id": "x", "index": 0, "total": 1, "data": b"x"}),
                           ("auth_replies", {"request_id": 1, "ok": True})):
            attempt(results, f"send on ungranted channel {ch}", lambda ch=ch, f=fields: f"sent={p.send(ch, **f)}")
        # messages of the wrong type on the channels it does hold, through its own runtime library ...
        attempt(results, "MotorCommand fields on orders_in (runtime codec)",
                lambda: f"sent={p.send('orders_in', **motor)}")
        attempt(results, "TherapyProgram fields on updates_in (runtime codec)",
                lambda: f"sent={p.send('updates_in', program_id=1, drug='x', dose_rate=999.0)}")
        # ... and around it: raw bytes straight onto the socket, so only the receiver's decoding can stop them
        raw = msgspec.msgpack.encode(motor)
        for ch in ("orders_in", "updates_in"):
            end = p._outputs[ch]
            ok = end.send_raw(raw)
            results.append([f"raw MotorCommand bytes on {ch}", "sent" if ok else "blocked",
                            f"{len(raw)} bytes; the receiver must drop them"])
        # a well-formed order it invented (999 mL/h, no hospital signature): only auth can refuse it
        forged = p.message("orders_in", **(ORDER_FIELDS | {"order_id": "ATK-FORGED-1", "sent_at_ms":
                                                            int(time.time() * 1000)}))
        ok = p.send("orders_in", forged)
        results.append(["forged InfusionOrder (999 mL/h) on orders_in", "sent" if ok else "blocked",
                        "auth must refuse it (no valid hospital signature)"])
        # every socket it holds, by fd: nothing but its own channel ends, control channel and listeners
        fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
        socks = []
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                    socks.append(fd)
        results.append(["inventory of held sockets", "info", f"{len(socks)} sockets: {socks}"])
        self.busy = True
        self.later(float(params.get("wait_s", 3.0)), lambda: self.report(
            req, results, replies=json.dumps({k: v for k, v in self.replies.items() if k.startswith("ATK-")})))

    # ------------------------------------------------------------------ replay what it saw
    def family_replay(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        p = self.p
        results: list[Result] = []
        if not self.captured:
            self.report(req, [["replay", "blocked", "no order was captured to replay"]])
            return
        order = self.captured[-1]
        oid = str(order.order_id)  # type: ignore[attr-defined]
        self.replies.pop(oid, None)
        ok = p.send("orders_in", order)
        results.append([f"replay captured signed order {oid} verbatim", "sent" if ok else "blocked", oid])
        tampered = msgspec.structs.replace(order, order_id=oid + "-X", dose_rate=999.0)  # type: ignore[type-var]
        ok = p.send("orders_in", tampered)
        results.append([f"replay {oid} as {oid}-X at 999 mL/h (signature kept)", "sent" if ok else "blocked",
                        oid + "-X"])
        self.busy = True
        self.later(float(params.get("wait_s", 3.0)), lambda: self.report(
            req, results, replies=json.dumps({k: v for k, v in self.replies.items() if k.startswith(oid)})))

    # ------------------------------------------------------------------ floods
    def family_flood(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        p = self.p
        n = int(params.get("n", 2000))
        results: list[Result] = []
        counts: dict[str, int] = {}
        base = ORDER_FIELDS | {"sent_at_ms": int(time.time() * 1000)}
        for i in range(n):
            counts["orders_in"] = counts.get("orders_in", 0) + bool(
                p.send("orders_in", **(base | {"order_id": f"ATK-FLOOD-{i}", "nonce": f"{i:032d}"})))
        for i in range(n):
            counts["updates_in"] = counts.get("updates_in", 0) + bool(
                p.send("updates_in", bundle_id="ATK-FLOOD", index=i % 4096, total=4096, data=b"\0" * 512,
                       **UNSIGNED_CHUNK))
        for i in range(n):
            counts["audit_network"] = counts.get("audit_network", 0) + bool(
                p.send("audit_network", event="flood", severity="critical", detail=f"flood {i}", at_ms=0))
        for ch, sent in counts.items():
            results.append([f"flood {n} messages on {ch}", "sent", f"{sent} accepted by the socket, "
                            f"{n - sent} refused as full"])
        self.report(req, results)

    # ------------------------------------------------------------------ the sandbox
    def family_sandbox(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        results: list[Result] = []
        pids: dict[str, int] = {k: int(v) for k, v in dict(params.get("pids") or {}).items()}
        dirs: dict[str, str] = dict(params.get("data_dirs") or {})
        code_dir = str(params.get("code_dir", ""))
        libc = ctypes.CDLL(None, use_errno=True)

        def sys_call(name: str, *args: Any) -> Callable[[], str]:
            def run() -> str:
                fn = getattr(libc, name)
                rc = fn(*args)
                if rc == -1:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
                return f"{name} returned {rc}"
            return run

        def sock(family: int, kind: int) -> Callable[[], str]:
            def run() -> str:
                s = socket.socket(family, kind)
                s.close()
                return "socket created"
            return run

        attempt(results, "socket(AF_UNIX) to reach path-based sockets", sock(socket.AF_UNIX, socket.SOCK_STREAM))
        attempt(results, "socket(AF_PACKET, SOCK_RAW) to sniff", sock(socket.AF_PACKET, socket.SOCK_RAW))
        attempt(results, "socket(AF_NETLINK) to reconfigure", sock(socket.AF_NETLINK, socket.SOCK_RAW))
        for part in ("auth", "audit", "update", "safety_monitor"):
            d = dirs.get(part)
            if not d:
                continue
            attempt(results, f"list {part}'s data dir", lambda d=d: f"listed {os.listdir(d)[:5]}")
        for what, path in (("auth credentials", Path(dirs.get("auth", "/nonexistent")) / "credentials.json"),
                           ("audit signing key", Path(dirs.get("audit", "/nonexistent")) / "audit.key"),
                           ("the host password hashes", Path("/etc/shadow"))):
            attempt(results, f"read {what} ({path})", lambda path=path: f"read {len(path.read_bytes())} bytes")
        # the attacker plants files where they would persist or be executed (attack equipment, on purpose)
        for what, path in (("/tmp", Path("/tmp/septum-attack-planted")),  # noqa: S108
                           ("the code dir", Path(code_dir) / "planted.py"),
                           ("/etc", Path("/etc/septum-attack-planted")),
                           ("audit's data dir", Path(dirs.get("audit", "/nonexistent")) / "planted")):
            attempt(results, f"write outside its data dir: {what}",
                    lambda path=path: f"wrote {path.write_bytes(b'x')} byte")
        attempt(results, "exec /bin/sh (os.execv)", lambda: (os.execv("/bin/sh", ["/bin/sh", "-c", "true"]), "")[1])  # noqa: S606
        argv = (ctypes.c_char_p * 2)(b"/bin/true", None)
        attempt(results, "execve /bin/true via libc (around the audit hook)",
                sys_call("execve", b"/bin/true", argv, None))
        attempt(results, "fork+exec via _posixsubprocess (around the audit hook)", self._fork_exec)
        for part in ("safety_monitor", "pump_control"):
            pid = pids.get(part)
            if not pid:
                continue
            attempt(results, f"ptrace(ATTACH) {part} pid {pid}", sys_call("ptrace", 16, pid, None, None))
            attempt(results, f"read {part}'s memory (/proc/{pid}/mem)",
                    lambda pid=pid: f"opened {os.open(f'/proc/{pid}/mem', os.O_RDONLY)}")
            attempt(results, f"SIGSTOP {part} pid {pid}", lambda pid=pid: f"kill={os.kill(pid, 19)}")
        attempt(results, "setuid(0)", lambda: f"setuid={os.setuid(0)}")
        attempt(results, "unshare(CLONE_NEWUSER)", sys_call("unshare", 0x10000000))
        attempt(results, "io_uring_setup", sys_call("syscall", 425, 8, ctypes.create_string_buffer(120)))
        attempt(results, "bpf(BPF_PROG_LOAD)", sys_call("syscall", 321, 5, None, 0))
        attempt(results, "mount tmpfs", sys_call("mount", b"none", b"/mnt", b"tmpfs", 0, None))
        self.report(req, results)

    @staticmethod
    def _fork_exec() -> str:
        import _posixsubprocess  # type: ignore[import-not-found]

        r, w = os.pipe()
        try:
            pid = _posixsubprocess.fork_exec(
                [b"/bin/true"], [b"/bin/true"], True, (w,), None, None, -1, -1, -1, -1, -1, -1, r, w,
                True, False, 0, None, None, None, -1, None, False)
        except TypeError as exc:  # the private signature differs on this Python: not an escape either way
            raise PermissionError(f"fork_exec unusable here: {exc}") from None
        finally:
            os.close(w)
        data = os.read(r, 4096)
        os.close(r)
        os.waitpid(pid, 0)
        if data:
            raise PermissionError(f"the child's exec failed: {data[:80]!r}")
        return f"exec'd /bin/true as pid {pid}"

    # ------------------------------------------------------------------ a listener of its own
    def family_backdoor(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        results: list[Result] = []
        port = int(params.get("port", 0))

        held: list[socket.socket] = []

        def listen() -> str:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(1)
            bound = s.getsockname()[1]
            return f"listening on 127.0.0.1:{bound} (a telnet-style backdoor would be reachable)"

        attempt(results, f"open an undeclared TCP listener on 127.0.0.1:{port or 'any'}", listen)
        self.report(req, results)
        # a listener that worked stays open a while, so the rig can see it from outside (/proc/<pid>/net/tcp)
        hold = float(params.get("hold_s", 3.0))
        self.later(hold, lambda: [s.close() for s in held])

    # ------------------------------------------------------------------ crafted update bundles
    def family_updates(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        p = self.p
        results: list[Result] = []
        for name in list(params.get("files") or []):
            data = (p.data_dir / str(name)).read_bytes()
            step = 60000
            chunks = [data[i:i + step] for i in range(0, len(data), step)] or [b""]
            sent = sum(bool(p.send("updates_in", bundle_id=str(name)[:64], index=i, total=len(chunks), data=c,
                                   **UNSIGNED_CHUNK)) for i, c in enumerate(chunks))
            results.append([f"push bundle {name} ({len(data)} bytes) on updates_in", "sent",
                            f"{sent}/{len(chunks)} chunks"])
        self.report(req, results)

    # ------------------------------------------------------------------ the control channel (issue 11)
    def family_report_fields(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        """Reports whose fields collide with the supervisor's own event arguments."""
        results: list[Result] = []
        for name in ("partition", "source", "severity", "kind"):
            msg = proto.Report(kind="attack_probe", fields={name: "supervisor", "note": f"field {name}"})
            ok = self.p._control_send(msg, must=True)
            results.append([f"Report with a field named {name!r}", "sent" if ok else "blocked",
                            "the supervisor must refuse it and keep running"])
        self.report(req, results)

    def family_rt_signal(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        """Die of a real-time signal (after the report is out, so the rig knows it was tried)."""
        sig = signal.SIGRTMIN + int(params.get("offset", 5))
        self.report(req, [[f"kill itself with SIGRTMIN+{sig - signal.SIGRTMIN} ({sig})", "sent",
                           "the supervisor must apply the restart policy"]], signal=int(sig))
        self.later(float(params.get("delay_s", 0.3)), lambda: os.kill(os.getpid(), sig))

    def family_control_flood(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        """``Drops`` and ``Report`` messages on the control channel as fast as the socket takes them, for
        ``seconds``, from a thread (the partition's own loop keeps heartbeating, so only the supervisor's
        handling of the flood is under test)."""
        seconds = float(params.get("seconds", 5.0))
        ctl = self.p._control
        self.busy = True

        def run() -> None:
            sent = {"Drops": 0, "Report": 0}
            full = 0
            pad = "x" * int(params.get("pad", 400))  # valid messages (the protocol bounds text at 500)
            poller = select.poll()
            poller.register(ctl.fileno(), select.POLLOUT)
            deadline = time.monotonic() + seconds
            i = 0
            while time.monotonic() < deadline:
                i += 1
                kind = "Drops" if i % 2 else "Report"
                msg: Any = (proto.Drops(channel="order_replies", received=i, drops={"rate": i, "queue": i},
                                        last_error=pad) if kind == "Drops"
                            else proto.Report(kind="flood", fields={"i": i, "pad": pad}))
                try:
                    ctl.send(proto.encoder.encode(msg), socket.MSG_DONTWAIT)
                    sent[kind] += 1
                except BlockingIOError:
                    full += 1
                    poller.poll(5)
                except OSError:
                    break
            results = [[f"control flood for {seconds:g} s: {sent['Drops']} Drops + {sent['Report']} Reports",
                        "sent", f"{full} times the socket was full"]]
            # the supervisor may still be discarding this partition's messages (over its budget): let the
            # budget refill, and say it more than once (the rig takes the first copy that arrives)
            for _ in range(3):
                time.sleep(float(params.get("settle_s", 1.5)))
                self.report(req, results, sent=sum(sent.values()), full=full)

        threading.Thread(target=run, name="attack-control-flood", daemon=True).start()

    # ------------------------------------------------------------------ system calls the sandbox must refuse
    def family_namespaces(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        results: list[Result] = []
        nr = SYSCALLS.get(os.uname().machine)
        if nr is None:
            self.report(req, [["namespaces", "blocked", f"no syscall table for {os.uname().machine}"]])
            return

        def reap(pid: int) -> None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

        def clone(flags: int) -> Callable[[], str]:
            def run() -> str:
                pid = libc.syscall(nr["clone"], ctypes.c_ulong(flags | signal.SIGCHLD), None, None, None, None)
                if pid == 0:  # the child (it worked): leave at once, touching nothing
                    os._exit(0)
                if pid < 0:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
                reap(pid)
                return f"clone created child {pid} in new namespace(s)"
            return run

        def clone3(flags: int) -> Callable[[], str]:
            def run() -> str:
                args = (ctypes.c_uint64 * 11)(flags, 0, 0, 0, signal.SIGCHLD, 0, 0, 0, 0, 0, 0)
                pid = libc.syscall(nr["clone3"], args, ctypes.sizeof(args))
                if pid == 0:
                    os._exit(0)
                if pid < 0:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
                reap(pid)
                return f"clone3 created child {pid}"
            return run

        for label, flags in NAMESPACE_FLAGS:
            attempt(results, f"clone({label})", clone(flags))
        for label, flags in NAMESPACE_FLAGS:
            attempt(results, f"clone3({label})", clone3(flags))

        def personality() -> str:
            old = libc.syscall(nr["personality"], ctypes.c_ulong(0xFFFFFFFF))  # query
            rc = libc.syscall(nr["personality"], ctypes.c_ulong(READ_IMPLIES_EXEC))
            if rc < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            now = libc.syscall(nr["personality"], ctypes.c_ulong(0xFFFFFFFF))
            libc.syscall(nr["personality"], ctypes.c_ulong(old))
            if not now & READ_IMPLIES_EXEC:
                raise PermissionError("personality returned but READ_IMPLIES_EXEC is not set")
            return "READ_IMPLIES_EXEC set (mappings readable are executable)"

        def memfd() -> str:
            fd = libc.syscall(nr["memfd_create"], b"septum-attack", 0)
            if fd < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            os.close(fd)
            return f"memfd_create gave fd {fd} (anonymous executable memory)"

        attempt(results, "personality(READ_IMPLIES_EXEC)", personality)
        attempt(results, "memfd_create", memfd)
        self.report(req, results)

    # ------------------------------------------------------------------ disk
    def family_fill_disk(self, req: dict[str, Any], params: dict[str, Any]) -> None:
        """Write ``mib`` MiB into the data folder (in a thread: the loop keeps heartbeating); report how far
        it got and the error that stopped it, then delete the file."""
        mib = int(params.get("mib", 300))
        path = self.p.data_dir / "attack-fill.bin"
        self.busy = True

        def run() -> None:
            written = 0
            chunk = b"\xa5" * (1 << 20)
            outcome: Result
            try:
                with open(path, "wb") as f:
                    for _ in range(mib):
                        written += f.write(chunk)
                        f.flush()
                    os.fsync(f.fileno())
                outcome = [f"write {mib} MiB into its data folder", "open", f"wrote {written >> 20} MiB"]
            except OSError as exc:
                outcome = [f"write {mib} MiB into its data folder", "blocked",
                           f"{_err(exc)} after {written >> 20} MiB"]
            finally:
                with contextlib.suppress(OSError):
                    path.unlink()
            self.report(req, [outcome], written=written)

        threading.Thread(target=run, name="attack-fill-disk", daemon=True).start()


READ_IMPLIES_EXEC = 0x0400000
NAMESPACE_FLAGS = (("CLONE_NEWUSER", 0x10000000), ("CLONE_NEWUSER|CLONE_NEWNS", 0x10000000 | 0x00020000),
                   ("CLONE_NEWUSER|CLONE_NEWNET", 0x10000000 | 0x40000000),
                   ("CLONE_NEWUSER|CLONE_NEWPID", 0x10000000 | 0x20000000),
                   ("CLONE_NEWNS", 0x00020000), ("CLONE_NEWNET", 0x40000000), ("CLONE_NEWPID", 0x20000000))
SYSCALLS = {"x86_64": {"clone": 56, "clone3": 435, "personality": 135, "memfd_create": 319},
            "aarch64": {"clone": 220, "clone3": 435, "personality": 92, "memfd_create": 279}}


def main(p: Partition) -> None:
    Attacker(p).install()
