"""Code activation: the supervisor's side of running a staged version of a partition's code.

The update service asks (``Activate``) to run a version it staged. Every check is the supervisor's own
(``septum.runtime.code_update``): the requester is the update service, the target is an ordinary
partition (not a Septum service, not a safety or fail-safe partition, not ``restart: never``), the version
is newer than the one running (anti-rollback), the manifest is signed by the manufacturer key the
supervisor read at start, and the staged files match it. The code is copied into a runtime-owned folder;
then the phases (``septum.runtime.states.ActivationPhase``):

* STOPPING: the target is asked to stop (killed after the stop grace period);
* STARTING: it exited, and is started again with the new code first on its import path;
* PROBATION: it is ready, and must stay alive (heartbeats on time) for ``HEALTH_PERIODS`` heartbeat
  periods (``HEALTH_S_NO_HEARTBEAT`` without a heartbeat); then it is kept (``code_activated``).

If the new code is not ready in time or fails in STARTING or PROBATION, the partition returns to the code
it ran before (``code_rolled_back``); that return is part of the update, not a policy restart. One
activation at a time. Everything here runs on the supervisor thread; the code version a process runs is a
shared field and is written through ``ProcessTable.set_code``.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from septum.errors import InvariantBroken

from . import code_update
from . import protocol as proto
from .events import EventStream
from .process_table import Proc, ProcessTable
from .states import ActivationPhase, Outcome, ProcState

HEALTH_PERIODS = 3  # heartbeat periods new partition code must survive after ready to be kept
HEALTH_S_NO_HEARTBEAT = 1.0  # the same probation for a partition without heartbeat_ms


class ProcessControl(Protocol):
    """What an activation needs the executor to do to a process."""

    def spawn(self, p: Proc) -> None: ...
    def request_stop(self, p: Proc) -> None: ...
    def kill(self, p: Proc, reason: str | None = None) -> None: ...


@dataclass
class Activation:
    """One code activation in progress: the target runs ``version`` on probation."""

    request_id: str
    requester: Proc
    target: Proc
    version: str
    old_dir: Path | None
    old_version: str
    probation_s: float
    phase: ActivationPhase = ActivationPhase.STOPPING  # -> STARTING -> PROBATION
    kill_at: float = 0.0
    ready_at: float = 0.0


def probation_for(heartbeat_ms: int | None) -> float:
    return HEALTH_PERIODS * heartbeat_ms / 1000 if heartbeat_ms else HEALTH_S_NO_HEARTBEAT


class CodeActivations:
    def __init__(self, table: ProcessTable, events: EventStream, control: ProcessControl, *, code_root: Path,
                 stop_grace: float) -> None:
        self.table = table
        self.events = events
        self.control = control
        self.code_root = code_root
        self.stop_grace = stop_grace
        self.keys: list[Any] = []  # the manufacturer key(s) activations are checked with (load_keys)
        self.current: Activation | None = None

    def load_keys(self, candidates: tuple[Path, ...]) -> None:
        """The manufacturer key from the update service's provisioning folder (the plan says where), read
        once at start: the update partition's own copy is in a folder it can write, so it cannot vouch for
        code it staged."""
        from septum.crypto.keys import KeyFileError, load_public_key

        self.keys = []
        for path in candidates:
            if path.exists():
                try:
                    self.keys = [load_public_key(path)]
                    return
                except KeyFileError as exc:
                    self.events.emit("code_key_unusable", severity="warning", error=str(exc))

    # ------------------------------------------------------------------ a request
    def request(self, requester: Proc, msg: proto.Activate, *, stopping: bool, outcome: Outcome) -> None:
        """An ``Activate`` request: every check is the supervisor's own; a refusal is answered and audited."""
        target_name, version = msg.target[:64], msg.version[:32]
        t = self.table.get(msg.target)
        try:
            if requester.plan.service != "update":
                raise code_update.CodeUpdateError(
                    f"only the update service may activate partition code; {requester.plan.name} is not it")
            code_update.check_name(msg.target)
            if t is None:
                raise code_update.CodeUpdateError(f"{target_name} is not a partition of this device")
            new_key = code_update.version_key(msg.version)
            if t.plan.service is not None:
                raise code_update.CodeUpdateError(
                    f"{target_name} runs Septum's {t.plan.service} service, which is updated with Septum itself")
            if t.plan.criticality == "safety" or t.plan.restart_policy == "fail-safe":
                raise code_update.CodeUpdateError(
                    f"{target_name} is a safety partition: its code is not swapped while the device runs "
                    "(update the device software while it is stopped)")
            if t.plan.restart_policy == "never":
                raise code_update.CodeUpdateError(
                    f"{target_name} has restart policy 'never', so it is not restarted with new code")
            if self.current is not None:
                raise code_update.CodeUpdateError(
                    f"an activation of {self.current.target.plan.name} is in progress; retry later")
            if stopping or outcome != Outcome.RUNNING:
                raise code_update.CodeUpdateError(f"the device is not running ({outcome})")
            if t.state != ProcState.READY or t.stop_requested:
                raise code_update.CodeUpdateError(f"{target_name} is not running normally (state {t.state})")
            if t.code_version and new_key <= code_update.version_key(t.code_version):
                raise code_update.CodeUpdateError(
                    f"version {version} is not newer than the running code {t.code_version} (anti-rollback)")
            files = code_update.verify_request(msg.target, msg.version, msg.manifest, msg.signature, self.keys)
            data = code_update.read_staged(requester.data_dir, msg.target, msg.version, files)
            try:
                new_dir = code_update.write_code(self.code_root, msg.target, msg.version, data, t.gid)
            except OSError as exc:
                raise code_update.CodeUpdateError(f"could not write the code folder: {exc}") from None
        except code_update.CodeUpdateError as exc:
            self.events.emit("code_activation_refused", partition=requester.plan.name, severity="warning",
                             target=target_name, version=version, reason=str(exc))
            self._answer(requester, msg.request_id, target_name, version, "refused", str(exc),
                         t.code_version if t is not None else "")
            return
        if t is None:
            raise InvariantBroken("a code activation without a target passed its checks")
        probation = probation_for(t.plan.heartbeat_ms)
        self.current = Activation(msg.request_id, requester, t, msg.version, t.code_dir, t.code_version, probation,
                                  kill_at=time.monotonic() + self.stop_grace)
        self.events.emit("code_activating", partition=t.plan.name, severity="notice", version=msg.version,
                         previous=t.code_version or "model", requester=requester.plan.name,
                         files=len(data), probation_s=probation)
        self.table.set_code(t, new_dir, msg.version)
        t.respawn = True
        self.control.request_stop(t)

    # ------------------------------------------------------------------ the target's life
    def on_ready(self, p: Proc) -> None:
        act = self.current
        if act is not None and act.target is p and act.phase == ActivationPhase.STARTING:
            act.phase, act.ready_at = ActivationPhase.PROBATION, time.monotonic()

    def on_exit(self, p: Proc, *, expected: bool, why: str, device_running: bool) -> bool:
        """The process of ``p`` exited; True if the activation took care of what follows (no policy)."""
        act = self.current
        if act is None or act.target is not p:
            return False
        if not device_running:
            self._end(act, "refused", "the device stopped during the code activation", restore=True)
        elif expected and p.respawn:  # the old code stopped: start the new one
            p.respawn = False
            act.phase = ActivationPhase.STARTING
            self.control.spawn(p)
            return True
        elif not expected and act.phase in (ActivationPhase.STARTING, ActivationPhase.PROBATION):
            self._roll_back(act, why)
            return True
        return False

    def check(self, now: float) -> None:
        """Deadlines: the old code did not stop in time, or the new code has survived its probation."""
        act = self.current
        if act is None:
            return
        t = act.target
        if act.phase == ActivationPhase.STOPPING and now >= act.kill_at and t.alive:
            self.control.kill(t, "did not stop for a code update")
        elif (act.phase == ActivationPhase.PROBATION and now - act.ready_at >= act.probation_s
              and t.state == ProcState.READY and t.killed_for is None and t.alive):
            # ready in time and alive (heartbeats on time, or it would have been killed) for the probation
            code_update.remove_code(self.code_root, t.plan.name, keep={act.version})
            self.events.emit("code_activated", partition=t.plan.name, severity="notice", version=act.version,
                             previous=act.old_version or "model", requester=act.requester.plan.name)
            self._end(act, "activated", f"{t.plan.name} runs {act.version}")

    # ------------------------------------------------------------------ endings
    def _roll_back(self, act: Activation, why: str) -> None:
        t = act.target
        failed = act.version
        self.table.set_code(t, act.old_dir, act.old_version)
        code_update.remove_code(self.code_root, t.plan.name, keep={act.old_version})
        reason = f"{failed} failed its health check ({why}); returned to {act.old_version or 'the model code'}"
        self.events.emit("code_rolled_back", partition=t.plan.name, severity="error", version=failed,
                         running=act.old_version or "model", why=why)
        self._end(act, "rolled-back", reason)
        # the return to the previous code is part of the update, not a policy restart; if the old code
        # fails in turn, its restart policy applies as usual
        self.control.spawn(t)

    def _end(self, act: Activation, status: str, reason: str, *, restore: bool = False) -> None:
        if restore:
            self.table.set_code(act.target, act.old_dir, act.old_version)
        act.target.respawn = False
        self.current = None
        self._answer(act.requester, act.request_id, act.target.plan.name, act.version, status, reason,
                     act.target.code_version)

    def _answer(self, to: Proc, request_id: str, target: str, version: str, status: str, reason: str,
                running: str) -> None:
        reply = proto.ActivateResult(request_id=request_id[:64], target=target, version=version,
                                     status=status, reason=reason[:500], running=running)
        try:
            to.control.send(proto.encoder.encode(reply), socket.MSG_DONTWAIT)
        except OSError as exc:  # the requester is gone or not reading: the outcome stays in the events
            self.events.emit("code_answer_lost", partition=to.plan.name, severity="warning",
                             request_id=request_id[:64], error=str(exc))
