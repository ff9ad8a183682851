"""The pump's seL4 scenarios: which image each one boots, and the verdict read from its serial line.

Each scenario is a build ``Variant`` of the same model (a scripted hardware fault, a faulty controller, a hostile
network PD) and a check that reads the serial line of one boot. A check passes only on evidence that the
scenario itself produced, in order: e.g. the hostile PD's announcement of its write, *then* the kernel's fault
report naming that PD and that address, *then* therapy still running. A line that every boot prints can never
satisfy a check. Used by tests/sel4/test_scenarios.py, ``septum attack`` (the hostile ones), ``septum sel4 boot``
and ``make demo``.

Guest time runs on QEMU's instruction counter (``ICOUNT_SHIFT``): see ``septum.sel4.qemu.qemu_command``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from septum.errors import InvariantBroken

from .build import PUMP_MODEL, BuiltImage, Variant, build_image
from .qemu import Boot, QemuError
from .serial import Event, parse_event, parse_faults

# 2**1 ns of guest time per instruction (500 MIPS, a slow Cortex-A53): at 2**3 the PDs' own work and serial
# lines overran their MCS budgets (the monitor's 2 ms per 10 ms) and the controller looked silent
ICOUNT_SHIFT = 1
PROGRAMMED_RATE = 20.0  # mL/h, the ui stand-in's scripted normal-saline program (pds/standin_ui.c)
HARD_MAX_RATE = 500.0   # normal-saline, adult-med-surg hard maximum in drug_library.yaml
OVERLIMIT_RATE = 600.0  # what the faulty controller asks for (pds/pump_control.c)
BOOT_DEADLINE_S = 60.0  # wall-clock bound for one expected line (generous: a loaded 2-core host)


@dataclass
class Outcome:
    id: str
    ok: bool = False
    tried: str = ""
    stopped_by: str = ""
    evidence: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    serial_tail: str = ""

    @property
    def name(self) -> str:
        """The id as ``septum attack`` lists it, apart from the Linux runtime's scenarios."""
        return f"sel4-{self.id}"

    def line(self) -> str:
        verdict = "ok  " if self.ok else "FAIL"
        detail = "; ".join(self.evidence) if self.ok else "; ".join(self.failures)
        return f"{verdict} {self.name}: {detail}"

    def as_dict(self) -> dict[str, object]:
        return {"id": self.name, "ok": self.ok, "tried": self.tried, "stopped_by": self.stopped_by,
                "evidence": self.evidence, "failures": self.failures}


class ScenarioFailed(Exception):
    """Internal: a check's expectation was not met (turned into Outcome.failures)."""


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    tries: str
    stops: str
    variant: Variant
    check: Callable[[Boot, Outcome], None]
    attack: bool = False  # one of `septum attack`'s scenarios


class _Reader:
    """Waits on one boot's serial line for PD events, in order."""

    def __init__(self, boot: Boot, deadline: float = BOOT_DEADLINE_S) -> None:
        self.boot, self.deadline = boot, deadline

    def event(self, pd: str, event: str, where: Callable[[Event], bool] = lambda _e: True,
              why: str = "") -> Event:
        def match(text: str) -> bool:
            ev = parse_event(text)
            return ev is not None and ev.pd == pd and ev.event == event and where(ev)

        try:
            line = self.boot.wait_for(match, self.deadline)
        except QemuError as exc:
            raise ScenarioFailed(f"no '{pd} {event}' line{' (' + why + ')' if why else ''}: "
                                 f"{str(exc).splitlines()[0]}") from None
        ev = parse_event(line.text, line.at)
        if ev is None:
            raise InvariantBroken("internal invariant broken: ev is not None")
        return ev

    def motor_running(self) -> Event:
        return self.event("hw", "motor", lambda e: e.num("rate") > 0, "the motor never ran")

    def delivering(self, n: int = 2, after: str = "") -> list[Event]:
        got = [self.event("hw", "delivering", lambda e: e.num("rate") > 0, f"therapy running {after}".strip())
               for _ in range(n)]
        if not all(b.num("pumped") > a.num("pumped") for a, b in pairwise(got)):
            raise ScenarioFailed(f"the pumped volume did not grow {after}: {[e.fields['pumped'] for e in got]}")
        return got


def _motor_lines(boot: Boot, since: int) -> list[Event]:
    out = []
    for ln in boot.lines[since:]:
        ev = parse_event(ln.text, ln.at)
        if ev is not None and ev.pd == "hw" and ev.event == "motor":
            out.append(ev)
    return out


def _never_above(boot: Boot, limit: float, what: str) -> str:
    rates = [e.num("rate") for e in _motor_lines(boot, 0)]
    over = [r for r in rates if r > limit + 1e-9]
    if over:
        raise ScenarioFailed(f"the motor ran at {max(over):.3f} mL/h, above {what} ({limit:.3f})")
    return f"the motor never ran above {limit:g} mL/h ({len(rates)} motor changes)"


# ------------------------------------------------------------------------------------------------ checks
def check_therapy(boot: Boot, out: Outcome) -> None:
    r = _Reader(boot)
    start = r.motor_running()
    if abs(start.num("rate") - PROGRAMMED_RATE) > 1e-6:
        raise ScenarioFailed(f"the motor started at {start.fields['rate']} mL/h, not the programmed "
                             f"{PROGRAMMED_RATE:g}")
    out.evidence.append(f"motor at {start.fields['rate']} mL/h from frame {start.fields['frame']}")
    got = r.delivering(3)
    out.evidence.append(f"{got[-1].fields['pumped']} mL pumped by frame {got[-1].fields['frame']}")
    out.evidence.append(_never_above(boot, PROGRAMMED_RATE, "the programmed rate"))


def _since(boot: Boot, start: int, pd: str, event: str, where: Callable[[Event], bool]) -> list[Event]:
    """PD events already read (``boot.lines[start:]``): for lines whose order with others does not matter."""
    out = []
    for ln in boot.lines[start:]:
        ev = parse_event(ln.text, ln.at)
        if ev is not None and ev.pd == pd and ev.event == event and where(ev):
            out.append(ev)
    return out


def check_overlimit(boot: Boot, out: Outcome) -> None:
    r = _Reader(boot)
    r.motor_running()
    fault = r.event("pump_control", "fault", lambda e: e.fields.get("kind") == "overlimit",
                    "the faulty controller's over-limit command")
    mark = len(boot.lines) - 1
    out.evidence.append(f"pump_control asked for {fault.fields.get('rate')} mL/h (hard max {HARD_MAX_RATE:g})")
    refusal = r.event("safety_monitor", "program", lambda e: e.fields.get("result") != "accepted"
                      and abs(e.num("rate") - OVERLIMIT_RATE) < 1e-6, "the monitor's verdict on the program")
    out.evidence.append(f"monitor: program {refusal.fields['result']} ({refusal.fields['issues']} issue(s))")
    boot.collect(1.0)
    # the monitor's answer to the 600 mL/h motor commands: limited, or the motor stopped (no accepted program)
    limited = _since(boot, mark, "safety_monitor", "limited", lambda e: abs(e.num("cmd") - OVERLIMIT_RATE) < 1e-6)
    stopped = _since(boot, mark, "safety_monitor", "motor", lambda e: e.num("rate") == 0)
    if limited:
        out.evidence.append(f"monitor: motor command {limited[0].fields['cmd']} -> {limited[0].fields['granted']} "
                            f"mL/h (limited by {limited[0].fields['by']})")
    elif stopped:
        out.evidence.append(f"monitor: motor stopped in frame {stopped[0].fields['frame']} (no accepted program "
                            "for the commanded rate)")
    else:
        raise ScenarioFailed("the monitor neither limited the 600 mL/h command nor stopped the motor")
    out.evidence.append(_never_above(boot, PROGRAMMED_RATE, "the accepted program"))


def check_occlusion(boot: Boot, out: Outcome) -> None:
    r = _Reader(boot)
    r.motor_running()
    occ = r.event("hw", "fault", lambda e: e.fields.get("kind") == "occlusion", "the scripted occlusion")
    mark = len(boot.lines) - 1
    f = occ.int("frame")
    stop = r.event("hw", "motor", lambda e: e.num("rate") == 0, "the motor never stopped after the occlusion")
    decided, applied = stop.int("cmd_frame"), stop.int("frame")
    if stop.fields.get("why") != "command" or decided != f or applied != f:
        raise ScenarioFailed(f"occlusion in frame {f}; the motor stopped ({stop.fields.get('why')}) on the monitor's "
                             f"decision in frame {decided}, applied in frame {applied}: not within one monitor "
                             "period")
    out.evidence.append(f"occlusion in sensor frame {f}; the monitor stopped the motor on that frame, before the "
                        "next one (one monitor period = one frame)")
    boot.collect(0.5)
    alarms = _since(boot, mark, "safety_monitor", "alarm", lambda e: e.fields.get("name") == "occlusion")
    if not alarms:
        raise ScenarioFailed("no occlusion alarm from the monitor")
    out.evidence.append(f"monitor alarm {alarms[0].fields['name']} (action {alarms[0].fields['action']})")


def check_silent(boot: Boot, out: Outcome) -> None:
    r = _Reader(boot)
    r.motor_running()
    r.event("pump_control", "fault", lambda e: e.fields.get("kind") == "silent", "the controller going silent")
    mark = len(boot.lines)
    latch = r.event("safety_monitor", "alarm", lambda e: e.fields.get("name") == "controller-silent"
                    and e.fields.get("latched") == "1", "the controller-silent latch")
    out.evidence.append(f"monitor latched {latch.fields['name']} in frame {latch.fields['frame']}")
    stops = [e for e in _motor_lines(boot, mark) if e.num("rate") == 0]
    stop = stops[0] if stops else r.event("hw", "motor", lambda e: e.num("rate") == 0, "the motor never stopped")
    out.evidence.append(f"motor stopped ({stop.fields['why']}) in frame {stop.fields['frame']}")
    resumed = r.event("pump_control", "fault", lambda e: e.fields.get("kind") == "resumed",
                      "the controller speaking again")
    after = len(boot.lines)
    boot.collect(1.5)
    ran = [e for e in _motor_lines(boot, after) if e.num("rate") > 0]
    if ran:
        raise ScenarioFailed(f"the motor ran again ({ran[0].fields['rate']} mL/h) after the controller resumed: "
                             "the fault did not stay latched")
    unlatched = [ev for ln in boot.lines[after:] if (ev := parse_event(ln.text)) is not None
                 and ev.pd == "safety_monitor" and ev.event == "alarm" and ev.fields.get("latched") == "0"]
    if unlatched:
        raise ScenarioFailed("the monitor cleared the latch without a clinician's fault reset")
    out.evidence.append(f"controller resumed (its tick {resumed.fields.get('tick', '?')}); the motor stayed "
                        "stopped and the fault latched")


def _check_hostile(kind: str, fault_kind: str) -> Callable[[Boot, Outcome], None]:
    def check(boot: Boot, out: Outcome) -> None:
        r = _Reader(boot)
        r.motor_running()
        attack = r.event("network", "attack", lambda e: e.fields.get("kind") == kind, "the hostile write")
        addr = attack.int("addr")
        start = next(i for i, ln in enumerate(boot.lines) if "network attack" in ln.text)
        try:
            boot.wait_for(lambda t: "dfsc =" in t or "attack-survived" in t, BOOT_DEADLINE_S)
        except QemuError:
            raise ScenarioFailed(f"no fault report after the write to {addr:#x}") from None
        lines = [(ln.at, ln.text) for ln in boot.lines[start:]]
        if any("attack-survived" in t for _, t in lines):
            raise ScenarioFailed(f"the write to {addr:#x} ({kind}) was not stopped: the hostile PD went on")
        faults = parse_faults(lines)
        mine = [f for f in faults if f.pd == "network" and f.fault_addr == addr]
        if not mine:
            seen = ", ".join(f.describe() for f in faults) or "none"
            raise ScenarioFailed(f"no fault report naming network at {addr:#x} (reports: {seen})")
        fault = mine[0]
        if fault.access != "write" or fault.kind != fault_kind:
            raise ScenarioFailed(f"expected a {fault_kind} on a write, the kernel reported {fault.describe()}")
        out.evidence.append(f"network wrote to {addr:#x} ({kind}); {fault.describe()}")
        got = r.delivering(2, "after the fault")
        out.evidence.append(f"therapy went on after the fault: {got[-1].fields['pumped']} mL pumped by frame "
                            f"{got[-1].fields['frame']}")
        out.evidence.append(_never_above(boot, PROGRAMMED_RATE, "the programmed rate"))

    return check


def _v(name: str, defines: dict[str, dict[str, str]], description: str) -> Variant:
    return Variant(name, defines, description)


HOSTILE_AFTER_MS = "1500"
SCENARIOS: dict[str, Scenario] = {s.id: s for s in [
    Scenario("therapy", "therapy within limits", "normal saline 20 mL/h programmed, started and confirmed",
             "pump_control and safety_monitor (C cores) on seL4", _v("therapy", {}, "the reference pump"),
             check_therapy),
    Scenario("overlimit", "a command above the hard limit", "a faulty pump_control sends a 600 mL/h program and "
             "motor command (saline hard max 500)", "the safety monitor's drug-library check and motor limit",
             _v("overlimit", {"pump_control": {"PC_FAULT_OVERLIMIT_AFTER_MS": "1500"}}, "faulty controller"),
             check_overlimit),
    Scenario("occlusion", "occlusion stops the motor", "the line occludes while the motor runs",
             "the safety monitor, on the first occluded sensor frame",
             _v("occlusion", {"hw": {"HW_OCCLUSION_AFTER_FRAMES": "100"}}, "scripted occlusion"), check_occlusion),
    Scenario("silent-controller", "silent pump_control", "pump_control stops talking for 1 s, then resumes",
             "the monitor's silence watch: motor stopped and the fault latched",
             _v("silent", {"pump_control": {"PC_FAULT_SILENT_AFTER_MS": "1500", "PC_FAULT_SILENT_FOR_MS": "1000"}},
                "silent controller"), check_silent),
    Scenario("hostile-unmapped", "hostile network: write outside its memory",
             "the network PD writes past the end of its orders_in ring (an unmapped guard page)",
             "the seL4 kernel (translation fault), reported by the Microkit monitor",
             _v("hostile-unmapped", {"network": {"NETWORK_HOSTILE": "1", "HOSTILE_AFTER_MS": HOSTILE_AFTER_MS}},
                "hostile network"), _check_hostile("unmapped", "translation fault"), attack=True),
    Scenario("hostile-motor", "hostile network: write to the motor",
             "the network PD writes to the motor registers' physical address (the motor region is in no address "
             "space of the network PD)", "the seL4 kernel (translation fault), reported by the Microkit monitor",
             _v("hostile-motor", {"network": {"NETWORK_HOSTILE": "2", "HOSTILE_AFTER_MS": HOSTILE_AFTER_MS}},
                "hostile network"), _check_hostile("motor", "translation fault"), attack=True),
    Scenario("hostile-wrong-direction", "hostile network: send on a receive channel",
             "the network PD writes into order_replies, the channel auth sends it (mapped read-only)",
             "the seL4 kernel (permission fault), reported by the Microkit monitor",
             _v("hostile-wrong-direction", {"network": {"NETWORK_HOSTILE": "3", "HOSTILE_AFTER_MS": HOSTILE_AFTER_MS}},
                "hostile network"), _check_hostile("wrong-direction", "permission fault"), attack=True),
]}


def build(ids: Sequence[str] | None = None, model: Path = PUMP_MODEL, out_root: Path | None = None,
          sdk: object | None = None, log: Callable[[str], None] | None = None) -> dict[str, BuiltImage]:
    """One image per scenario (objects shared between them: a scenario recompiles only the PD it changes)."""
    images = {}
    for sid in ids or list(SCENARIOS):
        sc = SCENARIOS[sid]
        folder = out_root / sc.variant.name if out_root is not None else None
        images[sid] = build_image(model, folder, variant=sc.variant, sdk=sdk, log=log)
    return images


def run(sid: str, image: Path, *, icount_shift: int | None = ICOUNT_SHIFT) -> Outcome:
    """Boot ``image`` and apply scenario ``sid``'s check; QEMU is always ended before this returns."""
    sc = SCENARIOS[sid]
    out = Outcome(sid, tried=sc.tries, stopped_by=sc.stops)
    with Boot(image, icount_shift=icount_shift) as boot:
        try:
            sc.check(boot, out)
        except ScenarioFailed as exc:
            out.failures.append(str(exc))
        except QemuError as exc:
            out.failures.append(str(exc).splitlines()[0])
        out.serial_tail = boot.tail(40)
    out.ok = not out.failures
    return out
