"""The pump on seL4 under QEMU: each scenario builds its image from the model, boots it and reads the serial line.

Images are built once per session (one per scenario variant; a variant recompiles only the PD it changes).
Every boot is ended by ``septum.sel4.qemu.Boot`` whatever the test does. The verdicts themselves
(``septum.sel4.scenarios``) are also run on synthetic serial lines below, to show each one fails without the
evidence it needs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from septum.sel4 import scenarios
from septum.sel4.build import BuiltImage, ModelRefused, build_image
from septum.sel4.qemu import Line, QemuError, find_qemu
from septum.sel4.scenarios import SCENARIOS, Outcome, ScenarioFailed
from septum.sel4.sdk import Sdk

REPO = Path(__file__).resolve().parents[2]
FLAWED = REPO / "examples" / "flawed" / "debug_console.yaml"

needs_qemu = pytest.mark.skipif(find_qemu() is None, reason="qemu-system-aarch64 not installed (qemu-system-arm)")


@pytest.fixture(scope="session")
def image(sdk: Sdk, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], BuiltImage]:
    """image(scenario id) -> its built image, built on first use and kept for the session."""
    root = tmp_path_factory.mktemp("sel4-images")
    built: dict[str, BuiltImage] = {}

    def get(sid: str) -> BuiltImage:
        if sid not in built:
            built[sid] = scenarios.build([sid], out_root=root, sdk=sdk)[sid]
        return built[sid]

    return get


def _run(image: Callable[[str], BuiltImage], sid: str) -> Outcome:
    out = scenarios.run(sid, image(sid).image)
    assert out.ok, f"{sid}: {out.failures}\nserial tail:\n{out.serial_tail}"
    return out


@needs_qemu
@pytest.mark.timeout(240)
def test_therapy_within_limits(image: Callable[[str], BuiltImage]) -> None:
    out = _run(image, "therapy")
    assert any("motor at 20.000 mL/h" in e for e in out.evidence)


@needs_qemu
@pytest.mark.timeout(240)
def test_command_above_hard_limit_refused_by_the_monitor(image: Callable[[str], BuiltImage]) -> None:
    out = _run(image, "overlimit")
    assert any(e.startswith("monitor: program ") for e in out.evidence)


@needs_qemu
@pytest.mark.timeout(240)
def test_occlusion_stops_the_motor_within_one_monitor_period(image: Callable[[str], BuiltImage]) -> None:
    _run(image, "occlusion")


@needs_qemu
@pytest.mark.timeout(240)
def test_silent_controller_stops_the_motor_and_latches(image: Callable[[str], BuiltImage]) -> None:
    _run(image, "silent-controller")


@needs_qemu
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sid", ["hostile-unmapped", "hostile-motor", "hostile-wrong-direction"])
def test_hostile_network_write_is_stopped_by_the_kernel_while_therapy_goes_on(
        image: Callable[[str], BuiltImage], sid: str) -> None:
    out = _run(image, sid)
    assert any("kernel stopped PD network" in e for e in out.evidence)
    assert any(e.startswith("therapy went on after the fault") for e in out.evidence)


@needs_qemu
@pytest.mark.timeout(300)
def test_hostile_verdict_fails_when_the_kernel_is_told_to_allow_the_write(sdk: Sdk, tmp_path: Path) -> None:
    """Defence off: the same hostile build on a system that maps order_replies read-write into network."""
    sc = SCENARIOS["hostile-wrong-direction"]

    def writable(sdf: str) -> str:
        out, n = re.subn(r'(<protection_domain name="network".*?<map mr="ch_order_replies" [^>]*perms=)"r"',
                         r'\1"rw"', sdf, count=1, flags=re.S)
        assert n == 1, "network's map of order_replies not found"
        return out

    built = build_image(scenarios.PUMP_MODEL, tmp_path / "weak", variant=sc.variant, sdk=sdk, weaken=writable)
    out = scenarios.run(sc.id, built.image)
    assert not out.ok
    assert "was not stopped: the hostile PD went on" in out.failures[0], out.failures


def test_image_sizes_are_reported_per_pd(image: Callable[[str], BuiltImage]) -> None:
    built = image("therapy")
    assert set(built.sizes) == {"network", "auth", "ui", "pump_control", "safety_monitor", "audit", "update", "hw"}
    assert all(s.load_bytes > 0 and s.elf_bytes > 0 for s in built.sizes.values())
    assert built.image_bytes == built.image.stat().st_size
    assert {"network", "auth", "ui", "audit", "update"} <= set(built.standins)
    assert "safety_monitor" not in built.standins and "pump_control" not in built.standins


# ------------------------------------------------------------------------------------- the analysis gate
def test_model_with_analysis_errors_is_refused_before_anything_is_built(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sdk() -> None:
        raise AssertionError("the SDK was asked for: the refusal must come first")

    monkeypatch.setattr("septum.sel4.sdk.ensure_sdk", no_sdk)
    out = tmp_path / "image"
    with pytest.raises(ModelRefused) as err:
        build_image(FLAWED, out)
    assert "blocking finding" in str(err.value) and err.value.findings
    assert any("ISO00" in f for f in err.value.findings)
    assert not out.exists()


def test_cli_refuses_a_model_with_analysis_errors(tmp_path: Path) -> None:
    out = tmp_path / "image"
    septum = Path(sys.executable).parent / "septum"
    proc = subprocess.run([str(septum), "sel4", "build", str(FLAWED), "-o", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "refusing to build" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------------------------- the verdicts can fail
class FakeBoot:
    """Serial lines given in advance, with Boot's reading interface (wait_for consumes, collect, lines)."""

    def __init__(self, texts: list[str]) -> None:
        self.pending = [Line(i * 0.01, t) for i, t in enumerate(texts)]
        self.lines: list[Line] = []

    def wait_for(self, matcher: Callable[[str], bool], timeout: float) -> Line:
        while self.pending:
            line = self.pending.pop(0)
            self.lines.append(line)
            if matcher(line.text):
                return line
        raise QemuError("no serial line matching within 0 s; last lines:")

    def collect(self, seconds: float) -> list[Line]:
        got, self.pending = self.pending, []
        self.lines += got
        return got

    def tail(self, n: int = 25) -> str:
        return "\n".join(ln.text for ln in self.lines[-n:])


RUNNING = "septum: hw motor rate=20.000 seq=1 frame=40 cmd_frame=40 why=command t_us=1"
DELIVER = ["septum: hw delivering rate=20.000 pumped=0.010 frame=100",
           "septum: hw delivering rate=20.000 pumped=0.013 frame=150"]
FAULT = ["MON|ERROR: received message 0x00000006  badge: 0x1  tcb cap: 0x2", "faulting PD: network",
         "VMFault: ip=0x0000000000200e44  fault_addr=0x0000000020019000  fsr=0x92000047  (data fault)",
         "   dfsc = translation fault, level 3 (0x00000007) -- write not read"]
ATTACK = "septum: network attack kind=unmapped addr=0x20019000"


def _verdict(sid: str, texts: list[str]) -> Outcome:
    out = Outcome(sid)
    try:
        SCENARIOS[sid].check(FakeBoot(texts), out)  # type: ignore[arg-type]
    except ScenarioFailed as exc:
        out.failures.append(str(exc))
    out.ok = not out.failures
    return out


def test_hostile_verdict_passes_only_with_the_kernels_report_of_that_write() -> None:
    assert _verdict("hostile-unmapped", [RUNNING, ATTACK, *FAULT, *DELIVER]).ok
    # the PD went on after its write: not stopped
    out = _verdict("hostile-unmapped", [RUNNING, ATTACK, "septum: network attack-survived kind=unmapped addr=0x1",
                                        "   dfsc = x"])
    assert not out.ok and "was not stopped" in out.failures[0]
    # a fault report, but for another address (or another PD): not evidence of this attack
    other = [t.replace("0x0000000020019000", "0x0000000030000000") for t in FAULT]
    assert "no fault report naming network at 0x20019000" in _verdict(
        "hostile-unmapped", [RUNNING, ATTACK, *other, *DELIVER]).failures[0]
    other_pd = [t.replace("faulting PD: network", "faulting PD: ui") for t in FAULT]
    assert not _verdict("hostile-unmapped", [RUNNING, ATTACK, *other_pd, *DELIVER]).ok
    # a fault report from before the attack does not count
    assert not _verdict("hostile-unmapped", [RUNNING, *FAULT, ATTACK, *DELIVER]).ok
    # the kernel stopped it but therapy did not go on
    assert "therapy running after the fault" in _verdict("hostile-unmapped", [RUNNING, ATTACK, *FAULT]).failures[0]
    # the wrong kind of fault (a read, a permission fault) is not this scenario's evidence
    read = [*FAULT[:3], "   dfsc = translation fault, level 3 (0x00000007) -- read not write"]
    assert not _verdict("hostile-unmapped", [RUNNING, ATTACK, *read, *DELIVER]).ok


def test_occlusion_verdict_requires_the_stop_on_the_first_occluded_frame() -> None:
    occ = "septum: hw fault kind=occlusion frame=140"
    alarm = "septum: safety_monitor alarm name=occlusion action=2 latched=0 frame=140"
    good = "septum: hw motor rate=0.000 seq=9 frame=140 cmd_frame=140 why=command t_us=2"
    assert _verdict("occlusion", [RUNNING, occ, good, alarm]).ok
    late = "septum: hw motor rate=0.000 seq=9 frame=141 cmd_frame=141 why=command t_us=2"
    assert "not within one monitor period" in _verdict("occlusion", [RUNNING, occ, late, alarm]).failures[0]
    lease = "septum: hw motor rate=0.000 seq=9 frame=140 cmd_frame=138 why=lease-expired t_us=2"
    assert not _verdict("occlusion", [RUNNING, occ, lease, alarm]).ok
    assert _verdict("occlusion", [RUNNING, occ, alarm, good]).ok  # the alarm line may come first
    assert "no occlusion alarm" in _verdict("occlusion", [RUNNING, occ, good]).failures[0]
    assert not _verdict("occlusion", [RUNNING, good, occ, alarm]).ok  # a stop before the fault is not its answer


def test_therapy_and_overlimit_verdicts_fail_on_a_motor_above_the_limit() -> None:
    fast = "septum: hw motor rate=600.000 seq=2 frame=60 cmd_frame=60 why=command t_us=3"
    assert _verdict("therapy", [RUNNING, *DELIVER, DELIVER[1].replace("0.013", "0.020")]).ok
    assert "above the programmed rate" in _verdict(
        "therapy", [RUNNING, fast, *DELIVER, DELIVER[1].replace("0.013", "0.02")]).failures[0]
    fault = "septum: pump_control fault kind=overlimit rate=600.000 frame=60"
    rejected = "septum: safety_monitor program result=rejected drug=normal-saline rate=600.000 issues=1 frame=60"
    limited = "septum: safety_monitor limited cmd=600.000 granted=20.000 by=programmed frame=60"
    stopped = "septum: safety_monitor motor rate=0.000 lease=0.000 bolus=0 frame=60"
    assert _verdict("overlimit", [RUNNING, fault, rejected, limited]).ok
    assert _verdict("overlimit", [RUNNING, fault, rejected, stopped]).ok
    assert "neither limited" in _verdict("overlimit", [RUNNING, fault, rejected]).failures[0]
    assert not _verdict("overlimit", [RUNNING, fault, rejected, limited, fast]).ok
    accepted = rejected.replace("result=rejected", "result=accepted")
    assert not _verdict("overlimit", [RUNNING, fault, accepted, limited]).ok


def test_silent_verdict_requires_the_latch_to_hold_after_the_controller_resumes() -> None:
    silent = "septum: pump_control fault kind=silent frame=200"
    latch = "septum: safety_monitor alarm name=controller-silent action=3 latched=1 frame=210"
    stop = "septum: hw motor rate=0.000 seq=5 frame=210 cmd_frame=210 why=command t_us=4"
    resumed = "septum: pump_control fault kind=resumed frame=300"
    assert _verdict("silent-controller", [RUNNING, silent, stop, latch, resumed]).ok
    again = RUNNING.replace("frame=40", "frame=310")
    assert "ran again" in _verdict("silent-controller", [RUNNING, silent, stop, latch, resumed, again]).failures[0]
    cleared = latch.replace("latched=1", "latched=0")
    assert not _verdict("silent-controller", [RUNNING, silent, stop, latch, resumed, cleared]).ok
    assert not _verdict("silent-controller", [RUNNING, silent, stop, resumed]).ok  # never latched
