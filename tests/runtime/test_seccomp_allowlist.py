"""The seccomp allow-list, checked in real sandboxed partitions: every system-call number 0..600 (and
x32 numbers) is put to the partition's own filter, and exactly the calls the model grants are allowed;
the rest get the filter's errno. See parts/syscalls.py for how the filter's answer is observed without
running the call. The compiled BPF is also checked against the policy by a small BPF interpreter."""

from __future__ import annotations

import errno
import json
import struct
from pathlib import Path

import pytest
from runtime_helpers import MODELS, require, running

from septum.model import load
from septum.runtime.explain import explain, policy_of
from septum.runtime.plan import RunOptions, build_plan
from septum.runtime.sandbox import seccomp

N = seccomp.NUMBERS
# refused whatever the model says (independent of the group table)
MUST_REFUSE = ("execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "memfd_create",
               "memfd_secret", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "fsopen",
               "fsmount", "move_mount", "open_tree", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
               "io_uring_enter", "io_uring_register", "kexec_load", "init_module", "finit_module", "keyctl",
               "add_key", "pidfd_getfd", "pidfd_open", "kcmp", "setuid", "setresuid", "setgid", "shmget", "msgget",
               "semget", "mq_open", "mknod", "sched_setaffinity", "sched_setscheduler", "iopl", "ioperm",
               "reboot", "swapon", "syslog", "name_to_handle_at", "open_by_handle_at", "quotactl")
MUST_ALLOW = ("read", "write", "openat", "close", "mmap", "futex", "poll", "recvmsg", "sendmsg", "fdatasync",
              "rename", "clock_gettime", "rt_sigaction", "tgkill", "exit_group", "getrandom", "seccomp")


def _results(sup: object, name: str) -> dict:
    return json.loads((sup.data_dir(name) / "syscalls.json").read_text())  # type: ignore[attr-defined]


def _expected(policy: seccomp.Policy, nr: int, args: list[int]) -> str:
    v = policy.verdict(nr, [*args, 0, 0, 0, 0, 0, 0][:6])
    return "allow" if v == 0 else errno.errorcode[v]


def test_every_syscall_number_answers_as_the_model_grants(tmp_path: Path) -> None:
    require("root", "seccomp", "landlock")
    model, _src = load(MODELS / "syscalls.yaml")
    plans = build_plan(model, RunOptions(model_dir=MODELS, data_root=tmp_path / "data")).partitions
    with running("syscalls.yaml", tmp_path) as sup:
        for name in ("plain", "granted"):
            assert sup.events.wait_for(lambda e, n=name: e.kind == "probed" and e.partition == n, timeout=30), \
                f"{name} did not report"
        results = {name: _results(sup, name) for name in ("plain", "granted")}
    for name, res in results.items():
        policy = policy_of(plans[name])
        seen = {(nr, tuple(args)): got for nr, args, got in res["cases"]}
        numbers = {nr for nr, args in seen if not args and nr < seccomp.X32_SYSCALL_BIT}
        unfiltered = {N[c] for c in seccomp.KERNEL_UNFILTERED}
        assert unfiltered == {335, 336}
        assert numbers == set(range(601)) - unfiltered, f"{name}: not every number was probed"
        wrong = [(seccomp.NAMES.get(nr, nr), args, got, _expected(policy, nr, list(args)))
                 for (nr, args), got in seen.items() if got != _expected(policy, nr, list(args))]
        assert not wrong, f"{name}: (call, args, observed, expected): {wrong}"
        plain = {seccomp.NAMES.get(nr): got for (nr, args), got in seen.items() if not args}
        allowed = {nr for (nr, _args), got in seen.items() if got == "allow"}  # with some arguments
        assert allowed == set(policy.numbers()), name  # exactly the allow-list, counted from the model
        assert len(allowed) == len(policy.calls) + 1  # + personality (query / PER_LINUX only)
        for call in MUST_REFUSE:
            assert plain[call] == "EPERM", (name, call, plain[call])
        for call in MUST_ALLOW:
            assert plain[call] == "allow", (name, call, plain[call])
        assert plain["clone3"] == "ENOSYS"
        assert all(got == "EPERM" for (nr, _a), got in seen.items() if nr >= seccomp.X32_SYSCALL_BIT)
        assert all(got == "ENOSYS" for (nr, a), got in seen.items() if seccomp.MAX_KNOWN < nr < 1000 and not a)
        by_args = {(seccomp.NAMES[nr], args): got for (nr, args), got in seen.items() if args}
        thread = 0x3D0F00
        assert by_args[("clone", (thread,))] == "allow"
        for flag in (seccomp.CLONE_NEWUSER, seccomp.CLONE_NEWNS, seccomp.CLONE_NEWNET, seccomp.CLONE_NEWPID):
            assert by_args[("clone", (thread | flag,))] == "EPERM", (name, hex(flag))
        assert by_args[("clone", (17 | seccomp.CLONE_NEWUSER,))] == "EPERM"
        assert by_args[("personality", (0xFFFFFFFF,))] == "allow"
        assert by_args[("personality", (0x0400000,))] == "EPERM"  # READ_IMPLIES_EXEC
        assert by_args[("ioctl", (0, seccomp.TIOCSTI))] == "EPERM"
        real = res["real"]
        assert real["clone3"] == "ENOSYS" and real["memfd_create"] == "EPERM"
        assert real["unshare_newuser"] == "EPERM" and real["ptrace_traceme"] == "EPERM"
        assert real["execve"] == "EPERM"
        assert real["personality_query"] == "rc=0" and real["personality_read_implies_exec"] == "EPERM"
        assert real["personality_after"] == "rc=0"  # the refused change did not happen
    plain_cases = {(nr, tuple(a)): g for nr, a, g in results["plain"]["cases"]}
    granted_cases = {(nr, tuple(a)): g for nr, a, g in results["granted"]["cases"]}
    # what the model grants makes the difference: fork, sockets of the internet families, the clock
    assert results["plain"]["real"]["fork"] == "EPERM" and results["granted"]["real"]["fork"] == "ok"
    assert plain_cases[(N["clone"], (17,))] == "EPERM" and granted_cases[(N["clone"], (17,))] == "allow"
    assert plain_cases[(N["socket"], (2,))] == "EPERM" and granted_cases[(N["socket"], (2,))] == "allow"
    assert granted_cases[(N["socket"], (1,))] == "EPERM"  # never AF_UNIX: it could reach host services
    assert plain_cases[(N["clock_settime"], ())] == "EPERM" and granted_cases[(N["clock_settime"], ())] == "allow"


# ---------------------------------------------------------------- the compiled program, offline


def _run_bpf(prog: bytes, nr: int, args: list[int], arch: int = seccomp.AUDIT_ARCH_X86_64) -> int:
    """A classic-BPF interpreter for the instructions the compiler emits."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[a & 0xFFFFFFFFFFFFFFFF for a in (args + [0] * 6)[:6]])
    ins = [struct.unpack_from("HBBI", prog, i) for i in range(0, len(prog), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = ins[pc]
        if code == seccomp._LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == seccomp._RET_K:
            return k
        else:
            taken = {seccomp._JEQ_K: acc == k, seccomp._JGT_K: acc > k, seccomp._JGE_K: acc >= k,
                     seccomp._JSET_K: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)


@pytest.mark.parametrize("network,groups", [(False, ()), (True, ()), (True, ("processes", "realtime-clock"))])
def test_compiled_filter_matches_the_policy(network: bool, groups: tuple[str, ...]) -> None:
    policy = seccomp.Policy.of(network=network, allow_groups=groups)
    prog = policy.program()
    samples = [[0], [0xFFFFFFFF], [0x3D0F00], [17], [0x3D0F00 | seccomp.CLONE_NEWUSER], [2], [10], [1],
               [0x0400000], [0, seccomp.TIOCSTI], [0, 0x5401]]
    for nr in [*range(700), seccomp.X32_SYSCALL_BIT, seccomp.X32_SYSCALL_BIT + 1]:
        for args in samples:
            action = _run_bpf(prog, nr, args)
            want = policy.verdict(nr, args)
            got = 0 if action == seccomp.SECCOMP_RET_ALLOW else action & 0xFFFF
            assert action in (seccomp.SECCOMP_RET_ALLOW, seccomp.SECCOMP_RET_ERRNO | got)
            assert got == want, (seccomp.NAMES.get(nr, nr), args, got, want)
    assert _run_bpf(prog, 0, [], arch=0x40000003) == seccomp.SECCOMP_RET_KILL_PROCESS  # i386


def test_reference_pump_partitions_get_only_what_they_are_declared_to_do() -> None:
    pump = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump"
    model, _src = load(pump / "model.yaml")
    plans = build_plan(model, RunOptions(model_dir=pump, data_root=Path("/nonexistent/data"))).partitions
    for name, plan in plans.items():
        pol = policy_of(plan)
        assert pol.network == plan.network, name
        assert ("socket" in pol.calls) == plan.network, name
        assert not pol.processes, f"{name} may fork"
    assert policy_of(plans["network"]).network and not policy_of(plans["safety_monitor"]).network
    text, _ = explain(model, pump, Path("/nonexistent"))
    assert text.count("system calls: allow-list of") == len(plans)
    assert "groups process" in text and "network 6" in text
