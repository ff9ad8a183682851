"""``septum run --explain``: per partition, what is enforced, by which mechanism, and what this host
could not enforce. It renders a ``RunPlan`` (``septum.runtime.plan.build_plan``), the very object the
supervisor executes: ``explain_plan(sup.plan)`` shows what a running supervisor launched."""

from __future__ import annotations

from pathlib import Path

from septum.model.schema import Model

from .plan import PartitionPlan, RunOptions, RunPlan, build_plan
from .sandbox import seccomp
from .sandbox.probe import HostSupport, probe


def policy_of(plan: PartitionPlan) -> seccomp.Policy:
    """The system-call policy boot installs for this plan (the same inputs: network and allow.syscalls)."""
    return seccomp.Policy.of(network=plan.network, allow_groups=plan.syscall_groups)


def _lines(plan: PartitionPlan, host: HostSupport) -> list[tuple[str, str, bool]]:
    """(what, mechanism, enforced-on-this-host) rows."""
    r = plan.resources
    rows: list[tuple[str, str, bool]] = []
    ins = ", ".join(f"{c.name}<-{c.src} ({c.message})" for c in plan.inputs) or "none"
    outs = ", ".join(f"{c.name}->{c.dst} ({c.message})" for c in plan.outputs) or "none"
    rows.append((f"channels in: {ins}; out: {outs}; no other handles",
                 "SEQPACKET socketpairs passed as the only fds (close_fds)", True))
    rows.append(("receive side: strict typed decoding, size, rate and queue bounds; drops counted",
                 "septum.runtime.channel", True))
    rows.append(("one-way channels", "shutdown(SHUT_WR) of the receiving end", True))
    if plan.network:
        rows.append(("network: host network (owns a network interface or allow.net)", "none", True))
        ports = ", ".join(map(str, plan.bind_ports)) or "none"
        rows.append((f"listen only on TCP port(s) {ports}", f"Landlock ABI {host.landlock_abi} (needs 4)",
                     host.landlock_abi >= 4))
        rows.append(("sockets: only AF_INET/AF_INET6", "seccomp", host.seccomp))
    else:
        rows.append(("network: none (only a down loopback)", "network namespace", host.netns))
        rows.append(("no socket() of any family", "seccomp", host.seccomp))
        rows.append(("no TCP bind/connect", f"Landlock ABI {host.landlock_abi} (needs 4)",
                     host.landlock_abi >= 4))
    pol = policy_of(plan)
    per_group = ", ".join(f"{g.name} {len(g.calls)}" for g in pol.groups)
    rows.append((f"system calls: allow-list of {len(pol.calls) + 1} calls in groups {per_group} "
                 "(+ personality query only); everything else EPERM, clone3 and unknown numbers ENOSYS",
                 "seccomp-BPF (foreign arch killed, x32 refused)", host.seccomp))
    clone = "threads only (CLONE_THREAD)" if not pol.processes else "threads and fork (allow.syscalls: processes)"
    rows.append((f"clone: {clone}, never a namespace or trace flag; refused: {', '.join(seccomp.NOTABLE_REFUSED)}",
                 "seccomp-BPF argument checks", host.seccomp))
    rows.append((f"files: read-write only {', '.join(plan.read_write)}",
                 f"Landlock ABI {host.landlock_abi}", host.landlock_abi >= 1))
    rows.append((f"files: read-only code and system ({len(plan.read_only)} paths)",
                 f"Landlock ABI {host.landlock_abi}", host.landlock_abi >= 1))
    rows.append(("signals and abstract sockets scoped to the partition", "Landlock ABI 6",
                 host.landlock_abi >= 6))
    rows.append(("own uid/gid, no capabilities, no supplementary groups", "setresuid/setresgid",
                 host.uid_drop))
    rows.append((f"address space <= {r.memory_mb} MiB + headroom, {r.max_open_files} open files, "
                 f"{r.max_pids} processes, no core files", "rlimits", True))
    rows.append((f"memory <= {r.memory_mb} MiB, no swap (OOM kill, reported as memory_limit)",
                 f"cgroup v{host.cgroup.version} memory", host.cgroup_controller("memory")))
    rows.append((f"tasks (processes + threads) <= {r.max_pids} (fork/thread creation refused)",
                 f"cgroup v{host.cgroup.version} pids", host.cgroup_controller("pids")))
    rows.append((f"cpu <= {r.cpu_percent}% of one CPU (throttled)", f"cgroup v{host.cgroup.version} cpu quota",
                 host.cgroup_controller("cpu")))
    disk_how = "own loop-mounted ext4 image (nosuid,nodev,noexec)" if host.disk_quota else \
        f"own loop-mounted ext4 image: {host.disk_unavailable}"
    rows.append((f"data folder <= {r.disk_mb} MiB (ENOSPC beyond)", disk_how, host.disk_quota))
    rows.append(("dies with the supervisor", "PR_SET_PDEATHSIG(SIGKILL)", True))
    hb = f"heartbeat every {plan.heartbeat_ms} ms, missed after 2 periods" if plan.heartbeat_ms else \
        "no heartbeat declared: only process exit is supervised"
    rows.append((f"restart policy {plan.restart_policy}; {hb}", "supervisor", True))
    rows.append(("process creation refused and reported", "audit hook (defence in depth only)", True))
    return rows


def _wiring(plan: RunPlan, name: str) -> list[tuple[str, str, bool]]:
    """Rows for what the plan hands a partition besides its channels: device links, feed, provisioning."""
    rows: list[tuple[str, str, bool]] = []
    devs = [f"{d.interface} ({d.kind})" for d in plan.devices if d.owner == name]
    if devs:
        rows.append((f"device links: {', '.join(devs)}; no other partition is handed them",
                     "SEQPACKET socketpair per owned interface", True))
    if plan.audit_partition == name:
        rows.append(("receives the supervisor's event feed (acknowledged, resent after a restart)",
                     "SEQPACKET socketpair, not a model channel", True))
    if name in plan.provisioning:
        rows.append((f"provisioned from {plan.provisioning[name]} (copied into its data folder, its uid only)",
                     "supervisor at start", True))
    return rows


def explain_plan(plan: RunPlan, host: HostSupport | None = None) -> tuple[str, int]:
    """Text for ``--explain`` of this plan and the number of rows this host cannot enforce."""
    host = host or probe()
    out: list[str] = []
    unenforced = 0
    out.append(f"device {plan.device} (profile {plan.profile}) on this host: "
               f"root={host.root} seccomp={host.seccomp} landlock_abi={host.landlock_abi} "
               f"netns={host.netns} cgroup=v{host.cgroup.version} {sorted(host.cgroup.bases)} "
               f"disk_quota={host.disk_quota}")
    if plan.ports:
        out.append("ports of this run: " + ", ".join(f"{i}={p}" for i, p in sorted(plan.ports.items())))
    for name, part in plan.partitions.items():
        out.append("")
        out.append(f"partition {name}  [{part.criticality}]  runs {part.entry}")
        for what, how, ok in _lines(part, host) + _wiring(plan, name):
            mark = "enforced    " if ok else "NOT ENFORCED"
            unenforced += not ok
            out.append(f"  {mark}  {what}  -- {how}")
    missing = host.missing()
    out.append("")
    if missing:
        out.append("THIS HOST CANNOT ENFORCE: " + "; ".join(missing))
    else:
        out.append("this host enforces every mechanism Septum uses")
    return "\n".join(out), unenforced


def explain(model: Model, model_dir: Path, state_dir: Path) -> tuple[str, int]:
    """``explain_plan`` of the plan ``septum run`` would build for this model and state directory."""
    return explain_plan(build_plan(model, RunOptions(model_dir=model_dir, data_root=state_dir / "data")))
