"""The supervisor: executes a run plan (``septum.runtime.plan``), supervises the device, stops it cleanly.

Usable as a library (tests, the pump rig, services)::

    with Supervisor(model, source, model_dir=path.parent) as sup:   # start() + stop()
        sup.wait_ready(timeout=5)
        sup.events.wait_for(lambda e: e.kind == "safe_state", timeout=10)

Plan, then execute: ``start()`` runs the analysis gate on the model, builds the ``RunPlan`` once
(``build_plan``; or runs the ``plan=`` it was given) and from then on works from that plan alone: the
channels, devices, audit feed, provisioning and ports it sets up, the boot configuration each partition
gets, are the plan's; it never goes back to the model or the planner. ``septum run --explain`` renders the
same plan. The parts of supervision are units of their own:

* ``septum.runtime.process_table``: the process records and the device's outcome, and the lock
  discipline for the fields other threads read;
* ``septum.runtime.restart_policy``: what follows an unexpected exit (pure decisions);
* ``septum.runtime.activation``: partition code updates (checks, phases, roll-back);
* this module: the executor: setup from the plan, spawning, the control channels, deadlines, shutdown.

All process creation and supervision happens on one supervisor thread. That is deliberate: the
parent-death signal of a partition fires when the *thread* that forked it exits, so the thread that
spawns must be the one that outlives the partitions. Public methods only post requests to it.

Untrusted partitions: every control message is checked and budgeted by ``septum.runtime.control_guard``
(closed protocol, per-partition rate and read budget, refusals reported at bounded volume); handling a
message can fail only the partition that sent it (it is killed and its restart policy applies). Safety
partitions' control channels are read first, and a heartbeat is judged missing only after the partition's
channel has been read, so another partition's flood cannot get a safety partition declared silent.

A failing supervisor fails safe: any exception on the supervisor thread stops the therapy path (every
partition but the audit service is killed: the motor lease then runs out), records ``supervisor_fault`` and
``safe_state``, gives the audit service a bounded time to make them durable, and sets ``outcome`` to
``safe_state`` with the fault in ``failures``.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from septum.errors import InvariantBroken, SeptumError
from septum.model.schema import Model

from . import protocol as proto
from . import restart_policy
from .activation import HEALTH_PERIODS, HEALTH_S_NO_HEARTBEAT, CodeActivations
from .audit_feed import AuditFeed
from .channel import create_pair
from .clock import Clock
from .control_guard import READ_BATCH, ControlGuard, Refused, describe_exit
from .devices import HardwareProvider, create_devices
from .events import EventStream
from .gate import describe, gate
from .plan import MANUFACTURER_PUB, PartitionPlan, RunOptions, RunPlan, SetupError, build_plan, unknown_provisioning
from .process_table import Proc, ProcessTable
from .restart_policy import Verdict
from .sandbox import disk, identity, limits, probe, spawn
from .states import Outcome, ProcState

__all__ = ["CHILD_ENV", "HEALTH_PERIODS", "HEALTH_S_NO_HEARTBEAT", "MANUFACTURER_PUB", "MODEL_CONFIG_KEY",
           "PartitionFailed", "Supervisor", "remove_state_dir"]

CHILD_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
MODEL_CONFIG_KEY = proto.MODEL_CONFIG_KEY  # service partitions' config: the model as plain data (see plan.py)
FAULT_AUDIT_S = 2.0  # after a supervisor fault: time the audit service gets to make the records durable
LEFTOVER_BUDGET = 100_000  # messages of a previous instance discarded before a restart (a full socket)


class PartitionFailed(SeptumError, RuntimeError):
    """The device could not become ready (a partition failed for good, or the device went safe)."""


class Supervisor:
    def __init__(
        self,
        model: Model,
        source: Any = None,
        *,
        model_dir: str | Path,
        state_dir: str | Path | None = None,
        time_scale: float = 1.0,
        allow_debug: bool = False,
        check: bool = True,
        ready_timeout: float = 10.0,
        stop_grace: float = 3.0,
        max_restarts: int = 5,
        restart_window_s: float = 60.0,
        provision: Mapping[str, str | Path] | None = None,
        ports: Mapping[str, int] | None = None,
        hardware: HardwareProvider | None = None,
        device_key: str | Path | None = None,
        plan: RunPlan | None = None,
    ) -> None:
        self.model = model  # judged by the analysis gate; what runs is the plan built from it (``self.plan``)
        # receives the hardware end of every owned device interface (septum.runtime.devices); None: unplugged
        self.hardware = hardware
        # partition -> folder whose contents are copied into that partition's data dir before it starts
        # (credentials, keys, certificates, signed data provisioned for this device), owned by its uid
        self.provision = {k: Path(v) for k, v in (provision or {}).items()}
        self.ports = dict(ports or {})  # interface -> TCP port for this run (default: the model's)
        unknown = unknown_provisioning(model, self.provision)
        if unknown:
            raise SetupError(unknown)
        self.source = source
        self.model_dir = Path(model_dir).resolve()
        self.run_id = uuid.uuid4().hex[:10]
        if state_dir is None:
            state_dir = tempfile.mkdtemp(prefix=f"septum-run-{self.run_id}-")
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o711)  # noqa: S103 - partitions traverse it to reach their own data dir only
        self.events = EventStream(self.state_dir / "events.jsonl")
        self.time_scale = time_scale
        self.clock = Clock.start(time_scale)
        self.allow_debug = allow_debug
        self.check = check
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.host = probe.probe()
        # a plan built by the caller (a bench that edits it) is run as given; None: built at start()
        self.plan: RunPlan | None = plan
        self.table = ProcessTable()  # processes, outcome, failures; the lock other threads read them with
        self._procs = self.table.procs
        self._channels: list[socket.socket] = []
        self._leases = identity.UidLeases()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._failed = threading.Event()
        self._stop_requested = False  # one-way flag: set by stop() (any thread), read by the supervisor thread
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread: threading.Thread | None = None
        self._write_errors_seen = 0
        self.fault: str | None = None  # set when the supervisor thread itself failed (see _fail_safe)
        self._feed: AuditFeed | None = None  # supervisor events -> the audit service (septum.runtime.audit_feed)
        self.code_root = self.state_dir / "code"  # per partition, installed code versions (root-owned)
        self.activations = CodeActivations(self.table, self.events, self, code_root=self.code_root,
                                           stop_grace=stop_grace)
        # the device key (a TPM-sealed key, simulated by a root-only file; septum.crypto.secrets_at_rest):
        # each partition's sealed files are opened here at its start and handed over in its boot config
        self.device_key = self._load_device_key(device_key)

    # ------------------------------------------------------------------ public API
    @property
    def outcome(self) -> Outcome:
        return self.table.outcome

    @property
    def failures(self) -> list[str]:
        """Why the device failed, in order (append-only; see septum.runtime.process_table)."""
        return self.table.failures

    def start(self) -> None:
        """Gate the model, plan the device once, set it up from the plan, then launch it on the supervisor
        thread.

        Raises RefusedToRun (blocking findings) or SetupError (the model cannot be launched)."""
        if self.check:
            overridden = gate(self.model, self.source, allow_debug=self.allow_debug)
            if overridden:
                self.events.emit("debug_override", severity="critical", findings=[describe(f) for f in overridden],
                                 note="debug-profile model with error-level findings run on explicit request")
        else:
            self.events.emit("analysis_skipped", severity="warning",
                             note="started without the analysis gate (library use with check=False)")
        data_root = self.state_dir / "data"
        if self.plan is None:
            self.plan = build_plan(self.model, RunOptions(model_dir=self.model_dir, data_root=data_root,
                                                          ports=self.ports, provision=self.provision))
        elif self.plan.data_root != data_root or self.plan.model_dir != self.model_dir:
            raise SetupError(f"the plan given was built for data root {self.plan.data_root} and model folder "
                             f"{self.plan.model_dir}, not {data_root} and {self.model_dir}")
        if self.host.uid_drop:
            _check_traversable(self.state_dir)
        missing = self.host.missing()
        if missing:
            self.events.emit("host_cannot_enforce", severity="warning", mechanisms=missing)
        try:
            self._setup(self.plan)
        except (OSError, identity.IdentityError) as exc:
            self._teardown()
            raise SetupError(f"could not set up the device: {exc}") from None
        self.table.set_outcome(Outcome.RUNNING)
        self._thread = threading.Thread(target=self._loop, name="septum-supervisor", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """True once every partition has reported ready; False on timeout.

        Raises PartitionFailed if the device failed (or went to its safe state) before that."""
        deadline = time.monotonic() + timeout
        while not self._ready.is_set():
            if self._failed.is_set():
                raise PartitionFailed(self.table.failures_text() or "the device failed before it was ready")
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._ready.wait(min(left, 0.05))
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the supervisor has finished (stopped, or every partition ended)."""
        return self._done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every partition (Stop, then SIGKILL after the grace period) and clean up."""
        self._stop_requested = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None:
            self._teardown()
            self._done.set()

    def partition_pids(self) -> dict[str, int]:
        return self.table.pids()

    def partition_state(self, name: str) -> ProcState:
        return self.table.state(name)

    def code_version(self, name: str) -> str:
        """The code version partition ``name`` runs ("" = the model's own code)."""
        return self.table.code_version(name)

    def data_dir(self, name: str) -> Path:
        return self.state_dir / "data" / name

    def log_path(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ setup (from the plan alone)
    def _setup(self, plan: RunPlan) -> None:
        data_root = plan.data_root
        (self.state_dir / "logs").mkdir(exist_ok=True)
        data_root.mkdir(exist_ok=True)
        os.chmod(data_root, 0o711)  # noqa: S103 - traverse only, no listing
        parts = plan.partitions
        uids: list[int | None] = [None] * len(parts)
        if self.host.uid_drop:
            uids = list(self._leases.lease(len(parts)))
        ends: dict[str, tuple[socket.socket, socket.socket]] = {}
        for ch in plan.channels:
            ends[ch.name] = create_pair()
            self._channels += ends[ch.name]
        self._device_fds: dict[str, list[proto.DeviceEnd]] = {}
        for dev in create_devices(plan.devices).values():
            self._channels.append(dev.partition_end)  # kept for restarts, closed at teardown
            self._device_fds.setdefault(dev.owner, []).append(
                proto.DeviceEnd(name=dev.interface, fd=dev.partition_end.fileno(), kind=dev.kind))
            if self.hardware is not None:
                self.hardware.attach(dev.interface, dev.hardware_end)
            else:
                dev.hardware_end.close()  # unplugged: the owner reads end-of-file
        self._feed = AuditFeed(plan.audit_partition) if plan.audit_partition is not None else None
        if self._feed is not None:  # the audit service gets the event stream on a device-like end of its own
            self._channels += [self._feed.sup_end, self._feed.child_end]  # closed at teardown
            self._device_fds.setdefault(self._feed.partition, []).append(self._feed.device_end())
            for ev in self.events.history:
                self._feed.offer(ev)
            self.events.subscribe(self._feed.offer)
        for (name, pplan), uid in zip(parts.items(), uids, strict=True):
            ddir = data_root / name
            ddir.mkdir(exist_ok=True)
            disk.attach(self.state_dir, name, ddir, pplan.resources.disk_mb)  # its own capped filesystem
            if name in plan.provisioning:
                _copy_provisioning(plan.provisioning[name], ddir, uid)
            if uid is not None:
                os.chown(ddir, uid, uid)
            os.chmod(ddir, 0o700)
            sup_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            fds = [ends[c.name][1].fileno() for c in pplan.inputs] + [ends[c.name][0].fileno()
                                                                     for c in pplan.outputs]
            fds += [d.fd for d in self._device_fds.get(name, [])]
            cg = None
            if self.host.cgroup.bases:
                cg = limits.PartitionCgroup.create(
                    self.host.cgroup, self.run_id, name, pplan.resources, partitions=len(parts),
                    cpu_weight=limits.cpu_weight_for(pplan.criticality, pplan.restart_policy))
            self.table.add(Proc(
                plan=pplan, uid=uid, gid=uid, control=sup_end, child_control=child_end, fds=fds,
                data_dir=ddir, log_path=self.state_dir / "logs" / f"{name}.log", cgroup=cg,
                guard=ControlGuard(name, frozenset(c.name for c in pplan.inputs)),
            ))
        self.activations.load_keys(plan.update_keys)
        self._end_fds = {ch.name: (ends[ch.name][0].fileno(), ends[ch.name][1].fileno()) for ch in plan.channels}

    def _load_device_key(self, path: str | Path | None) -> Any:
        if path is None:
            return None
        from septum.crypto.secrets_at_rest import SecretsError, load_device_key

        where = Path(path).resolve()
        for inside in [self.state_dir / "data", *self.provision.values()]:
            if where.is_relative_to(Path(inside).resolve()):
                raise SetupError(f"device key {where} is inside {inside}: keep it outside the partitions' folders")
        try:
            return load_device_key(where)
        except SecretsError as exc:
            raise SetupError(str(exc)) from None

    def _unsealed(self, p: Proc) -> dict[str, bytes]:
        if self.device_key is None:
            return {}
        from septum.crypto.secrets_at_rest import unseal_folder

        found, problems = unseal_folder(p.data_dir, self.device_key, p.plan.name)
        for problem in problems:  # the partition then starts without it and says what it lacks
            self.events.emit("secret_unusable", partition=p.plan.name, severity="error", error=problem)
        return found

    def _boot_config(self, p: Proc) -> proto.Boot:
        plan = p.plan
        if self.plan is None:
            raise InvariantBroken(f"{plan.name}: a boot configuration was asked for before the device was planned")
        model_dir = str(self.plan.model_dir)
        # installed code first on the path, so its modules shadow the model's; readable, never writable
        import_path = [model_dir] if p.code_dir is None else [str(p.code_dir), model_dir]
        read_only = list(plan.read_only) + ([] if p.code_dir is None else [str(p.code_dir)])
        messages = self.plan.messages

        def end(ch: Any, fd: int, peer: str) -> proto.ChannelEnd:
            return proto.ChannelEnd(name=ch.name, fd=fd, message=ch.message, peer=peer,
                                    rate_per_s=ch.rate_per_s, queue=ch.queue)

        return proto.Boot(
            partition=plan.name, entry=plan.entry, import_path=import_path,
            data_dir=str(p.data_dir), config=_with_secrets(plan.config, self._unsealed(p)),
            clock_origin=self.clock.origin,
            clock_scale=self.clock.scale, clock_wall=self.clock.wall_origin,
            heartbeat_ms=plan.heartbeat_ms,
            inputs=[end(c, self._end_fds[c.name][1], c.src) for c in plan.inputs],
            outputs=[end(c, self._end_fds[c.name][0], c.dst) for c in plan.outputs],
            messages={c.message: messages[c.message] for c in plan.inputs + plan.outputs},
            sandbox=proto.SandboxSpec(
                landlock=self.host.landlock_abi >= 1, seccomp=self.host.seccomp, network=plan.network,
                read_only=read_only, read_write=list(plan.read_write),
                syscall_groups=list(plan.syscall_groups), bind_ports=list(plan.bind_ports),
            ),
            control_fd=p.child_control.fileno(),
            devices=list(self._device_fds.get(plan.name, [])),
        )

    # ------------------------------------------------------------------ process control
    def spawn(self, p: Proc) -> None:
        self._drain_control(p, forward=False, budget=LEFTOVER_BUDGET)  # leftovers of a previous instance
        if p.guard is not None:
            p.guard.reset_drops()
        p.control.send(proto.encoder.encode(self._boot_config(p)))
        plan = spawn.SpawnPlan(
            cgroup_procs=tuple(p.cgroup.procs_files()) if p.cgroup else (),
            own_netns=self.host.netns and not p.plan.network,
            rlimits=p.plan.rlimits, uid=p.uid, gid=p.gid, parent_pid=os.getpid(),
            nice=spawn.nice_for(p.plan.criticality, p.plan.restart_policy),
        )
        if p.cgroup is not None:
            p.oom_seen = p.cgroup.oom_kills()
        cmd = [sys.executable, "-I", "-B", "-m", "septum.runtime.boot", str(p.child_control.fileno())]
        with open(p.log_path, "ab") as log:
            try:
                popen = subprocess.Popen(
                    cmd, pass_fds=[p.child_control.fileno(), *p.fds], close_fds=True,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=p.data_dir, env=CHILD_ENV,
                    start_new_session=True, preexec_fn=spawn.preexec(plan),
                )
            except (OSError, subprocess.SubprocessError) as exc:
                self._drain_control(p, forward=False, budget=LEFTOVER_BUDGET)
                self.table.set_state(p, ProcState.EXITED)
                self.events.emit("spawn_failed", partition=p.plan.name, severity="error", error=str(exc),
                                 log=str(p.log_path))
                self._apply_policy(p, f"could not start: {exc}")
                return
        pidfd = self.table.started(p, popen, time.monotonic())
        self._poller.register(pidfd, select.POLLIN)
        self._fd_pid[pidfd] = p
        self.events.emit("started", partition=p.plan.name, pid=popen.pid, uid=p.uid,
                         restarts=len(p.restarts))

    def kill(self, p: Proc, reason: str | None = None) -> None:
        if reason is not None and p.killed_for is None:
            p.killed_for = reason
        if p.popen is not None and p.popen.returncode is None:
            try:
                os.killpg(p.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if p.cgroup is not None:
            p.cgroup.kill_all()

    def request_stop(self, p: Proc) -> None:
        p.stop_requested = True
        p.restart_at = None
        if p.popen is not None and p.popen.returncode is None:
            try:
                p.control.send(proto.encoder.encode(proto.Stop("supervisor")), socket.MSG_DONTWAIT)
            except OSError:
                self.kill(p)

    def _drain_control(self, p: Proc, *, forward: bool = True, budget: int = READ_BATCH) -> bool:
        """Read at most ``budget`` of the partition's control messages; True if more may be waiting.

        Everything read is untrusted (septum.runtime.control_guard): over its rate budget a message is
        discarded unread, a refused one is reported (bounded), and an error while handling one fails only
        this partition."""
        g = p.guard
        if g is None:
            raise InvariantBroken(f"{p.plan.name}: a control message arrived before its guard was set up")
        buf = g.buffer
        for _ in range(budget):
            try:
                n = p.control.recv_into(buf, len(buf), socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                return False
            if not forward:
                continue
            if not g.admit():
                if g.throttled.note(time.monotonic(), "over budget"):
                    self.events.emit("control_throttled", partition=p.plan.name, severity="warning",
                                     count=1, total=g.throttled.total, rate_per_s=g.rate)
                continue
            try:
                msg = g.decode(memoryview(buf)[:n])
            except Refused as exc:
                if g.refused.note(time.monotonic(), str(exc)):
                    self.events.emit("control_refused", partition=p.plan.name, severity="warning",
                                     reason=str(exc), count=1, total=g.refused.total)
                continue
            try:
                self._on_control(p, msg)
            except Exception as exc:  # a message the supervisor could not handle fails its sender only
                self.events.emit("control_handling_failed", partition=p.plan.name, severity="error",
                                 message=type(msg).__name__, error=f"{type(exc).__name__}: {str(exc)[:300]}")
                self.kill(p, "its control message could not be handled")
                return False
        return True

    def _on_control(self, p: Proc, msg: Any) -> None:
        name = p.plan.name
        if isinstance(msg, proto.Beat):
            p.last_beat = time.monotonic()
        elif isinstance(msg, proto.Ready):
            p.last_beat = time.monotonic()
            if p.state == ProcState.STARTING:
                self.table.set_state(p, ProcState.READY)
                self.events.emit("ready", partition=name,
                                 startup_ms=round((time.monotonic() - p.started) * 1000, 1))
                self.activations.on_ready(p)
                self._check_all_ready()
        elif isinstance(msg, proto.Report):
            # kind, severity and field names were checked by the guard: none collides with the record's own
            self.events.emit(msg.kind, partition=name, source="partition", severity=msg.severity,
                             audit=msg.audit, **msg.fields)
        elif isinstance(msg, proto.Drops):
            if p.guard is None:
                raise InvariantBroken(f"{name}: drops reported before its guard was set up")
            fields = p.guard.note_drops(msg, time.monotonic())
            if fields is not None:
                self.events.emit("channel_drops", partition=name, severity="warning", **fields)
        elif isinstance(msg, proto.Fatal):
            p.last_fatal = msg.reason
            self.events.emit("partition_error", partition=name, severity="error", reason=msg.reason,
                             detail=msg.detail)
        elif isinstance(msg, proto.Activate):
            self.activations.request(p, msg, stopping=self._stop_requested, outcome=self.outcome)

    def _check_all_ready(self) -> None:
        if not self._ready.is_set() and all(q.state == ProcState.READY for q in self.table):
            self._ready.set()
            self.events.emit("device_ready", ms=round(self.clock.to_real(self.clock.now()) * 1000, 1))

    def _on_exit(self, p: Proc) -> None:
        """A partition process ended: reap it, say why, then let the code activation in progress or the
        restart policy decide what follows."""
        if p.popen is None or p.pidfd is None:
            raise InvariantBroken(f"{p.plan.name}: an exit was seen for a process that was never started")
        code = p.popen.wait()
        pidfd = p.pidfd
        self._poller.unregister(pidfd)
        del self._fd_pid[pidfd]
        self.table.exited(p)
        os.close(pidfd)
        self._drain_control(p)  # Fatal and last reports arrive before the exit is processed
        try:  # children the partition forked die with it
            os.killpg(p.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.cgroup is not None:
            p.cgroup.kill_all()
        oom = p.cgroup is not None and p.cgroup.oom_kills() > p.oom_seen
        how = describe_exit(code)  # any exit code, any signal number (real-time signals included)
        reason = restart_policy.exit_reason(code, oom=oom, killed_for=p.killed_for)
        expected = p.stop_requested
        self.table.set_state(p, ProcState.STOPPED if expected else ProcState.EXITED)
        self.events.emit("exited", partition=p.plan.name, severity="info" if expected else "error",
                         how=how, reason=reason, expected=expected, error=p.last_fatal)
        why = f"{reason} ({how}){': ' + p.last_fatal if p.last_fatal else ''}"
        running = not self._stop_requested and self.outcome == Outcome.RUNNING
        if self.activations.on_exit(p, expected=expected, why=why, device_running=running):
            return
        if not expected:
            self._apply_policy(p, why)

    def _apply_policy(self, p: Proc, why: str) -> None:
        name, policy = p.plan.name, p.plan.restart_policy
        if self._stop_requested:
            return
        now = time.monotonic()
        d = restart_policy.decide(policy, p.restarts, now,
                                  restart_policy.Limits(self.max_restarts, self.restart_window_s))
        p.restarts = list(d.restarts)
        if d.verdict == Verdict.RESTART:
            p.restart_at = now + d.delay_s
            self.events.emit("restart", partition=name, severity="warning", policy=policy, why=why,
                             attempt=d.attempt, delay_s=d.delay_s)
        elif d.verdict == Verdict.GIVE_UP:
            self.table.set_state(p, ProcState.FAILED)
            self._fail(f"{name}: {why}; gave up after {len(p.restarts)} restarts")
            self.events.emit("restart_limit", partition=name, severity="error", why=why,
                             restarts=len(p.restarts))
        elif d.verdict == Verdict.NOT_RESTARTED:
            self.table.set_state(p, ProcState.FAILED)
            self._fail(f"{name}: {why}")
            self.events.emit("not_restarted", partition=name, severity="error", policy=policy, why=why)
        else:  # fail-safe: never silently restarted; the device goes to its safe state
            self.table.set_state(p, ProcState.FAILED)
            self._fail(f"{name}: {why}; device in safe state")
            self.table.set_outcome(Outcome.SAFE_STATE)
            kept = [q.plan.name for q in self.table.audit()]
            self.events.emit("safe_state", partition=name, severity="critical", policy=policy, why=why,
                             kept_running=kept)
            for q in self.table:
                if q is not p and q.plan.service != "audit":
                    self.request_stop(q)

    def _fail(self, text: str) -> None:
        self.table.fail(text)
        if not self._ready.is_set():
            self._failed.set()

    # ------------------------------------------------------------------ the loop
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _loop(self) -> None:
        # the supervisor judges the safety partitions' heartbeats: it runs at their priority (if permitted)
        spawn.set_nice(spawn.SAFETY_NICE)
        self._poller = select.poll()
        self._fd_pid: dict[int, Proc] = {}
        fd_ctl = {p.control.fileno(): p for p in self.table}
        for fd in fd_ctl:
            self._poller.register(fd, select.POLLIN)
        self._poller.register(self._wake_r, select.POLLIN)
        if self._feed is not None:
            self._poller.register(self._feed.fileno(), select.POLLIN)
        # safety partitions' control channels are read first in every turn (see _priority)
        prio = {p.control.fileno(): _priority(p.plan) for p in self.table}
        try:
            order = sorted(self.table, key=lambda q: q.plan.service != "audit")
            for p in order:
                if not self._stop_requested:
                    self.spawn(p)
            while not self._stop_requested:
                ready = self._poller.poll(self._next_timeout())
                ready.sort(key=lambda r: prio.get(r[0], 0))
                for fd, _ in ready:
                    if fd == self._wake_r:
                        try:
                            os.read(self._wake_r, 512)
                        except BlockingIOError:
                            pass
                    elif fd in fd_ctl:
                        self._drain_control(fd_ctl[fd])
                    elif fd in self._fd_pid:
                        self._on_exit(self._fd_pid[fd])
                    elif self._feed is not None and fd == self._feed.fileno():
                        self._feed.on_readable()
                self._check_deadlines()
                self._check_feed()
                if not self.table.any_alive_or_due():
                    if self.outcome == Outcome.RUNNING:
                        self.table.set_outcome(Outcome.HALTED)
                    self.events.emit("halted", severity="error" if self.failures else "info",
                                     failures=self.failures)
                    break
            self._shutdown()
        except BaseException as exc:  # the trusted base itself failed: fail safe, say so, never hang
            self._fail_safe(exc)
        finally:
            try:
                self._teardown()
            finally:
                self._done.set()

    def _fail_safe(self, exc: BaseException) -> None:
        """The supervisor thread raised: put the device in its safe state and record why.

        Kept deliberately simple, since the supervisor's own state may be what is broken: kill every
        partition except the audit service at once (the motor stops when the monitor's lease runs out),
        record the fault, give the audit service FAULT_AUDIT_S to make the records durable, then stop."""
        import traceback

        where = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])[-1500:]
        self.fault = f"{type(exc).__name__}: {str(exc)[:300]}"
        self.table.set_outcome(Outcome.SAFE_STATE)
        self.table.fail(f"supervisor: {self.fault}; device in safe state")
        self._failed.set()
        audit = self.table.audit()
        for p in self.table:
            if p not in audit:
                p.stop_requested = True
                p.restart_at = None
                _best_effort(self.kill, p, "supervisor fault")
        kept = [p.plan.name for p in audit]
        _best_effort(self.events.emit, "supervisor_fault", severity="critical", error=self.fault, where=where)
        _best_effort(self.events.emit, "safe_state", severity="critical", policy="supervisor",
                     why=f"supervisor fault: {self.fault}", kept_running=kept)
        deadline = time.monotonic() + FAULT_AUDIT_S
        feed = self._feed
        while feed is not None and audit and time.monotonic() < deadline:
            try:
                feed.flush()
                if feed.unacked == 0:
                    break
                select.select([feed.fileno()], [], [], 0.05)
                feed.on_readable()
            except Exception:
                break
        for p in self.table:
            p.stop_requested = True
            _best_effort(self.kill, p, "supervisor fault")
        for p in self.table:
            if p.popen is not None:
                _best_effort(p.popen.wait, 2.0)

    def _next_timeout(self) -> int:
        return 50  # ms: deadline checks are cheap; partitions are the ones with hard timing

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for p in self.table:
            self._report_guard(p, now)
            if p.restart_at is not None and now >= p.restart_at:
                p.restart_at = None
                self.spawn(p)
                continue
            if p.popen is None or p.popen.returncode is not None or p.stop_requested or p.killed_for is not None:
                continue  # not running, or already being killed (its exit is on its way)
            if p.state == ProcState.STARTING and now - p.started > self.ready_timeout:
                self.events.emit("ready_timeout", partition=p.plan.name, severity="error",
                                 timeout_s=self.ready_timeout)
                self.kill(p, "not ready in time")
            elif p.state == ProcState.READY and p.plan.heartbeat_ms is not None:
                late = now - p.last_beat
                if late > 2 * p.plan.heartbeat_ms / 1000:
                    # judge what the partition sent, not how fast the supervisor read it: read its channel
                    # first (beats waiting there while the supervisor was busy elsewhere count)
                    self._drain_control(p, budget=4 * READ_BATCH)
                    late = time.monotonic() - p.last_beat
                if late > 2 * p.plan.heartbeat_ms / 1000 and p.popen.returncode is None:
                    self.events.emit("heartbeat_missed", partition=p.plan.name, severity="error",
                                     silent_ms=round(late * 1000), heartbeat_ms=p.plan.heartbeat_ms)
                    self.kill(p, "heartbeat missed")
        self.activations.check(now)

    def _report_guard(self, p: Proc, now: float) -> None:
        """Coalesced drop reports and the summaries of refused and throttled control messages."""
        g = p.guard
        if g is None:
            return
        for fields in g.due_drops(now):
            self.events.emit("channel_drops", partition=p.plan.name, severity="warning", **fields)
        n = g.throttled.summary_due(now)
        if n:
            self.events.emit("control_throttled", partition=p.plan.name, severity="warning", count=n,
                             total=g.throttled.total, rate_per_s=g.rate)
        n = g.refused.summary_due(now)
        if n:
            self.events.emit("control_refused", partition=p.plan.name, severity="warning", count=n,
                             total=g.refused.total, reason=g.refused.last_reason)

    def _check_feed(self) -> None:
        if self.events.write_errors > self._write_errors_seen:  # events.jsonl failed (full disk, bad value)
            n = self.events.write_errors - self._write_errors_seen
            self._write_errors_seen = self.events.write_errors
            self.events.emit("event_log_failed", severity="error", count=n, error=self.events.last_write_error,
                             note="not written to events.jsonl; delivered to subscribers and the audit feed")
        if self._feed is None:
            return
        self._feed.flush()
        dropped = self._feed.take_dropped()
        if dropped:
            self.events.emit("audit_feed_overflow", severity="error", dropped=dropped,
                             note="events not delivered to the audit service; they remain in events.jsonl")

    def _shutdown(self) -> None:
        self.events.emit("stopping", reason="stop requested" if self._stop_requested else self.outcome)
        # the audit service stops last, so that the other partitions' exits reach the audit log
        last = self.table.audit()
        for p in self.table:
            if p not in last:
                self.request_stop(p)
        deadline = time.monotonic() + self.stop_grace
        while last and any(q not in last for q in self._fd_pid.values()) and time.monotonic() < deadline:
            for fd, _ in self._poller.poll(50):
                if fd in self._fd_pid:
                    self._on_exit(self._fd_pid[fd])
                elif self._feed is not None and fd == self._feed.fileno():
                    self._feed.on_readable()
        # every event so far (the other partitions' exits included) must be durable before the audit
        # service is asked to stop: a feed left unsent when it stops would be lost to the log
        feed = self._feed
        deadline = time.monotonic() + self.stop_grace
        while (feed is not None and last and feed.unacked and time.monotonic() < deadline
               and any(q.popen is not None and q.popen.returncode is None for q in last)):
            feed.flush()
            for fd, _ in self._poller.poll(20):
                if fd == feed.fileno():
                    feed.on_readable()
                elif fd in self._fd_pid:
                    self._on_exit(self._fd_pid[fd])
        for p in last:
            self.request_stop(p)
        deadline = time.monotonic() + self.stop_grace
        while self._fd_pid and time.monotonic() < deadline:
            for fd, _ in self._poller.poll(50):
                if fd in self._fd_pid:
                    self._on_exit(self._fd_pid[fd])
        for p in list(self._fd_pid.values()):
            self.events.emit("kill", partition=p.plan.name, severity="warning",
                             why=f"did not stop within {self.stop_grace}s")
            self.kill(p)
            self._on_exit(p)
        if self.outcome == Outcome.RUNNING:
            self.table.set_outcome(Outcome.STOPPED)

    def _teardown(self) -> None:
        for p in self.table:
            if p.cgroup is not None:
                for _ in range(100):  # killed tasks leave the cgroup asynchronously
                    p.cgroup.kill_all()
                    if not p.cgroup.pids():
                        break
                    time.sleep(0.01)
                p.cgroup.remove()
            for s in (p.control, p.child_control):
                s.close()
        for s in self._channels:
            s.close()
        self._channels.clear()
        self._leases.release()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        for problem in disk.detach_all(self.state_dir):  # after every partition process is gone
            self.events.emit("disk_detach_failed", severity="error", error=problem)
        self.events.emit("stopped", outcome=self.outcome, failures=self.failures)
        self.events.close()


def _priority(plan: PartitionPlan) -> int:
    """Order in which ready control channels are read in one turn: safety partitions first, then
    fail-safe ones, then services, then the rest."""
    if plan.criticality == "safety":
        return -3
    if plan.restart_policy == "fail-safe":
        return -2
    return -1 if plan.service is not None else 0


def _best_effort(fn: Any, *args: Any, **kwargs: Any) -> None:
    """Call ``fn`` and ignore its failure: used only on the fail-safe path, where stopping matters most."""
    try:
        fn(*args, **kwargs)
    except Exception:  # noqa: S110 - nothing more can be done about it here
        pass


def _with_secrets(config: dict[str, Any], unsealed: dict[str, bytes]) -> dict[str, Any]:
    if not unsealed:
        return config
    from septum.crypto.secrets_at_rest import SECRETS_CONFIG_KEY

    return {**config, SECRETS_CONFIG_KEY: unsealed}


def _copy_provisioning(src: Path, dst: Path, uid: int | None) -> None:
    """Copy a provisioning folder into a data dir; the partition's uid owns the copies, nobody else reads them."""
    if not src.is_dir():
        raise OSError(f"provisioning folder {src} does not exist")
    shutil.copytree(src, dst, dirs_exist_ok=True, symlinks=False)
    for path in [dst, *dst.rglob("*")]:
        if path.is_symlink():
            continue
        if uid is not None:
            os.chown(path, uid, uid)
        os.chmod(path, 0o700 if path.is_dir() else 0o600)


def _check_traversable(path: Path) -> None:
    """Partitions run as other uids: every ancestor of the state dir must let them pass through."""
    for d in [path, *path.parents]:
        if not os.stat(d).st_mode & 0o001:
            raise SetupError(
                f"state directory {path} is not reachable by the partitions' uids ({d} is not "
                "world-searchable); choose another --state-dir"
            )


def remove_state_dir(path: Path) -> None:
    """Delete a run's state directory (tests and benchmarks; `septum run` keeps it as evidence)."""
    disk.release(Path(path))  # data images a run that never tore down left mounted
    shutil.rmtree(path, ignore_errors=True)
