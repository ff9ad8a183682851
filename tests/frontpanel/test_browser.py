"""A person at the pump, in headless Chromium: login, programming with the two-step start, an alarm.

The whole device runs under the real runtime (``PumpRig``); the page is served by the front panel over the
rig's simulator. The browser clicks and types like a person (CDP mouse and text input), and the test checks
what the page's display shows: the lines the ``ui`` partition drew. The rig's own view of the device (motor,
events) is used only to confirm the page did not just show something plausible.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from septum_pump.rig import CLINICIAN, PumpRig, real_services_available
from septum_pump.sim.frontpanel import FrontPanel
from septum_pump.therapy.keypad import DEBOUNCE_S, LABELS

from septum.runtime.sandbox.probe import probe

from .cdp import CHROMIUM, Browser, Page

# Real time, as a person at the bench uses it. It also gives the safety monitor its widest real-time margin
# for pump_control's heartbeat (2 control periods = 100 ms at scale 1, 40 ms at scale 60): a browser on the
# same 2 shared cores must not make the monitor (rightly) latch controller-silent.
TIME_SCALE = 1.0
SHOTS = os.environ.get("SEPTUM_FRONTPANEL_SHOTS")  # a directory: keep the screenshots for a person to look at


def _needs() -> None:
    if not CHROMIUM.exists():
        print(f"SKIP: {CHROMIUM} is missing (make test installs Debian's chromium when run as root)")
        pytest.skip(f"{CHROMIUM} missing")
    if not probe().root:
        print("SKIP: the pump starts partitions under their own uids and needs root")
        pytest.skip("needs root (partitions run under their own uids)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _needs()
    # started before any device: its start-up burst on 2 shared cores must not starve freshly started
    # therapy partitions (the safety monitor would rightly trip)
    b = Browser()
    try:
        yield b
    finally:
        b.close()


# The pump's real-time margins are tight (the monitor latches controller-silent after 100 ms without a beat
# from pump_control, a sensor fault after 100 ms without a frame). On the device the separation kernel
# gives the therapy partitions their budgets whatever else runs; on a shared test host they compete with
# every other process. That starvation, not the page, was the cause of this test's failures, and it used to
# be retried once when the monitor raised such an alarm, which would also have passed a real regression
# that raised it. Now it runs once: on a host whose run queue is this long per CPU the margins cannot be
# met and the test says so before it starts; otherwise a starved monitor fails it, with that named.
MAX_LOAD_PER_CPU = 3.0
# the in-process parts of the bench (the supervisor thread, the hardware simulator that sends the sensor
# frames, the front panel server) above the rest of the host; they inherit it from the thread that starts
# them. The partitions inherit it too, though in their own cgroups it only orders them among themselves.
DEVICE_NICE = -10


def _host_can_keep_time() -> None:
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load / cpus > MAX_LOAD_PER_CPU:
        reason = (f"this host is overloaded (load {load:.1f} on {cpus} CPUs, over {MAX_LOAD_PER_CPU} per CPU): "
                  "the pump's 100 ms real-time margins cannot be met here, and its safety monitor would rightly "
                  "stop the motor")
        print(f"SKIP: {reason}")
        pytest.skip(reason)


@contextlib.contextmanager
def bench(browser: Browser, services: str) -> Iterator[tuple[PumpRig, Page]]:
    page = browser.page()
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, DEVICE_NICE)  # this thread only (Linux): what it starts inherits it
        with PumpRig(time_scale=TIME_SCALE, services=services) as rig, \
                FrontPanel(rig.sim, info={"time_scale": TIME_SCALE, "services": rig.services}) as panel:
            os.setpriority(os.PRIO_PROCESS, 0, before)
            page.navigate(panel.url)
            yield rig, page
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)
        page.close()


NOTABLE = {"alarm", "latched_fault", "exited", "safe_state", "not_restarted", "auth_reply", "command"}


def device_story(rig: PumpRig) -> list[tuple[str | None, str, dict[str, object]]]:
    """What the device did (for a failure message): a page that shows the wrong thing is told apart from a
    device that went to its safe state on an overloaded machine."""
    return [(e.partition, e.kind, dict(e.fields)) for e in rig.supervisor.events.history if e.kind in NOTABLE]


def display_has(page: Page, *texts: str, timeout: float = 10.0) -> bool:
    """Wait until the display (the ui partition's lines) contains every text."""
    cond = " && ".join(f"document.getElementById('display').innerText.includes({json.dumps(t)})" for t in texts)
    return bool(page.wait_for(cond, timeout))


def shot(page: Page, tmp_path: Path, name: str) -> None:
    out = Path(SHOTS) if SHOTS else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(out / f"{name}.png")
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


STARVED = ("controller-silent", "sensor-fault")  # what the monitor raises when it is starved of CPU


def starved(rig: PumpRig) -> str:
    """The monitor tripped on its own timing (no such fault was injected): the machine was overloaded."""
    for e in rig.events("alarm", "safety_monitor"):
        hit = [a for a in str(e.fields.get("alarms", "")).split(",") if a in STARVED]
        if hit:
            return hit[0]
    return ""


@pytest.mark.parametrize("services", ["doubles", "real"])
def test_login_program_two_step_start_and_an_alarm(browser: Browser, services: str, tmp_path: Path) -> None:
    if services == "real" and not real_services_available():
        print("SKIP: the Septum auth/audit/update services are not installed; the doubles variant ran")
        pytest.skip("real services not installed")
    _host_can_keep_time()
    with bench(browser, services) as (rig, page):
        try:
            scenario(rig, page, tmp_path)
        except AssertionError:
            # no retry: say what the device did, so a starved monitor is told apart from a broken page
            why = starved(rig)
            if why:
                print(f"the safety monitor tripped on {why} with no such fault injected (CPU starvation?)")
            raise


KEY_GAP_S = 1.5 * DEBOUNCE_S  # a finger pressing the same key again: slower than the ui's debounce interval


def keypad_number(page: Page, rig: PumpRig, field: str, text: str) -> None:
    """Type a number as a person at the pump does: the field key, each digit (the display echoes it), Enter."""
    page.click(f"#sel-{field}")
    assert display_has(page, f"> {field} "), (page.text("#display"), device_story(rig))
    typed, last, last_at = "", "", 0.0
    for ch in text:
        key = "decimal" if ch == "." else ch
        if key == last:
            time.sleep(max(0.0, last_at + KEY_GAP_S - time.monotonic()))
        page.click(f"#k-{key}")
        last, last_at = key, time.monotonic()
        typed += "*" if field == "pin" else ("0." if ch == "." and not typed else ch)
        assert display_has(page, f"> {field} {typed}_"), (page.text("#display"), device_story(rig))
    page.click("#k-enter")
    if field != "pin":
        assert display_has(page, f"{LABELS[field]} {text}"), (page.text("#display"), device_story(rig))
    else:
        assert page.wait_for("!document.getElementById('display').innerText.includes('> pin')", 10), \
            page.text("#display")


def scenario(rig: PumpRig, page: Page, tmp_path: Path) -> None:
    assert display_has(page, "please log in"), (page.text("#display"), device_story(rig))
    assert page.text("#user") == "not logged in"
    assert page.eval("document.getElementById('alarm-light').dataset.priority") == "none", device_story(rig)
    assert page.eval("document.getElementById('sound').dataset.pattern") == "off"

    # a wrong PIN (typed on the digit keys) is refused by auth, and the display says so
    pin = rig.pins[CLINICIAN]
    page.type("#f-user", CLINICIAN)
    keypad_number(page, rig, "pin", str((int(pin[0]) + 1) % 10) + pin[1:])
    page.click("#k-login")
    assert display_has(page, "login: denied"), (page.text("#display"), device_story(rig))
    assert page.text("#user") == "not logged in"

    # the provisioned clinician logs in; the PIN is gone from the form once sent
    keypad_number(page, rig, "pin", pin)
    page.click("#k-login")
    assert display_has(page, "login: ok"), (page.text("#display"), device_story(rig))
    assert page.wait_for(f"document.getElementById('user').innerText === 'user {CLINICIAN}'", 5)
    assert "*" not in page.text("#display")

    # programming, field by field on the digit keys: the display shows the program, nothing moves yet
    page.type("#f-drug", "normal-saline")
    keypad_number(page, rig, "rate", "100")
    keypad_number(page, rig, "vtbi", "500")
    page.click("#k-program")
    assert display_has(page, "PROGRAMMED normal-saline"), (page.text("#display"), device_story(rig))
    assert not rig.motor_running()

    # two-step start: Start shows what is about to run (drug, concentration, rate, VTBI) and runs nothing ...
    page.click("#k-start")
    assert display_has(page, "start_infusion: ok"), (page.text("#display"), device_story(rig))
    assert display_has(page, "CONFIRM normal-saline 1 mL/mL", "rate 100 mL/h = 100.00 mL/h", "VTBI 500.0 mL"), \
        ("the confirmation screen does not show what is about to run", page.text("#display"), device_story(rig))
    assert not re.search(r"(?<![\d.])0\.00 mL/h", page.text("#display")), page.text("#display")  # the motor's 0
    assert not rig.motor_running()
    shot(page, tmp_path, "confirm")
    # ... Confirm does
    page.click("#k-confirm")
    assert display_has(page, "RUNNING normal-saline 100.00 mL/h"), (page.text("#display"), device_story(rig))
    assert rig.wait_until(rig.motor_running, timeout=10)
    # the live volume on the page is the motor encoder's and it grows
    assert page.wait_for("parseFloat(document.getElementById('delivered').innerText) > 0.01", 15), \
        page.text("#delivered")
    assert page.eval("document.getElementById('motor-led').classList.contains('on')") is True
    # the clicks were user gestures: the page's Web Audio context runs (it plays nothing while all is well)
    assert page.wait_for("window.panelAudio.ctx && window.panelAudio.ctx.state === 'running'", 10), \
        page.eval("window.panelAudio.ctx ? window.panelAudio.ctx.state : 'no AudioContext'")
    assert page.eval("window.panelAudio.pulses") == 0
    shot(page, tmp_path, "running")

    # an alarm: the occlusion fault button -> the monitor stops the motor -> alarm light, display and sound
    page.click("#fault-occlusion")
    assert page.wait_for("document.getElementById('alarm-light').dataset.priority === 'high'", 10), \
        ("the display never showed a high alarm (the ui draws the alarm the safety monitor reports on "
         "monitor_alarms)", page.text("#display"), page.text("#panel-note"), device_story(rig))
    assert "occlusion" in page.text("#alarm-light")
    assert display_has(page, "ALARM"), page.text("#display")
    assert rig.wait_until(lambda: not rig.motor_running(), timeout=5)
    assert page.wait_for("!document.getElementById('motor-led').classList.contains('on')", 5)
    assert "clear occlusion" in page.text("#fault-occlusion")
    # the speaker: the ui partition asked for the high-priority pattern and the page plays its 10-pulse burst
    assert page.wait_for("document.getElementById('sound').dataset.pattern === 'high'", 10), \
        (page.text("#sound"), rig.sim.snapshot()["sound"], device_story(rig))
    assert rig.sim.sound.pattern == "high" and rig.sim.sound.alarm == "occlusion"
    assert page.wait_for("window.panelAudio.pulses >= 10 && window.panelAudio.timer !== null", 10), \
        page.eval("[window.panelAudio.pulses, window.panelAudio.bursts]")
    assert "HIGH priority alarm tone: occlusion" in page.text("#sound")
    shot(page, tmp_path, "alarm")

    # silence is a keypad action the clinician is authorised for: audio paused (with the time left), the
    # light stays on
    page.click("#k-silence")
    assert display_has(page, "silence_alarm: ok"), (page.text("#display"), device_story(rig))
    assert page.wait_for("document.getElementById('sound').dataset.paused === 'true'", 10), \
        (page.text("#sound"), rig.sim.snapshot()["sound"])
    assert page.wait_for("window.panelAudio.timer === null", 5)  # the page stopped playing
    assert "AUDIO PAUSED" in page.text("#sound")
    assert display_has(page, "AUDIO PAUSED"), page.text("#display")
    assert page.eval("document.getElementById('alarm-light').dataset.priority") == "high", \
        (page.text("#alarm-light"), rig.sim.snapshot())
    shot(page, tmp_path, "paused")

    # unkink the line (clear the fault in the world), then the clinician clears the alarm with a reason
    page.click("#fault-occlusion")
    assert page.wait_for("document.getElementById('fault-occlusion').innerText.startsWith('inject')", 5)
    page.type("#f-reason", "line unkinked")
    page.click("#k-clear_fault")
    assert page.wait_for("document.getElementById('alarm-light').dataset.priority === 'none'", 10), \
        (page.text("#alarm-light"), page.text("#display"))
    assert page.wait_for("document.getElementById('sound').dataset.pattern === 'off' && "
                         "document.getElementById('sound').dataset.paused === 'false'", 10), page.text("#sound")
    assert page.eval("document.getElementById('panel-note').innerText") == ""
