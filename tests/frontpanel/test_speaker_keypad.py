"""The whole pump under the runtime (no browser): numbers typed on the digit keys, a key bounce ignored,
the confirmation screen before the final start, and the alarm speaker with audio pause and its timeout.

What is checked is what the devices saw: the screen the ui partition drew on the display device, the Sound
it sent on the speaker device, and the motor. Time scale 60, so the 120 s audio pause runs out in 2 s."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from septum_pump.rig import PumpRig

from septum.runtime.sandbox.probe import probe

TIME_SCALE = 60.0
MAX_LOAD_PER_CPU = 3.0


@pytest.fixture(scope="module")
def rig() -> Iterator[PumpRig]:
    if not probe().root:
        pytest.skip("needs root (partitions run under their own uids)")
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load / cpus > MAX_LOAD_PER_CPU:
        pytest.skip(f"host overloaded (load {load:.1f} on {cpus} CPUs): the pump's real-time margins cannot be met")
    with PumpRig(time_scale=TIME_SCALE) as r:
        yield r


def screen(rig: PumpRig) -> str:
    return "\n".join(rig.display())


def shows(rig: PumpRig, *texts: str, timeout: float = 10.0) -> bool:
    return rig.wait_until(lambda: all(t in screen(rig) for t in texts), timeout=timeout)


def story(rig: PumpRig) -> list[tuple[str | None, str, dict[str, object]]]:
    return [(e.partition, e.kind, dict(e.fields)) for e in rig.supervisor.events.history
            if e.kind in ("alarm", "exited", "safe_state", "auth_reply", "command", "keys_debounced", "sound")]


def test_digits_bounce_confirmation_screen_and_the_speaker(rig: PumpRig) -> None:
    assert rig.login(), story(rig)  # the PIN typed on the digit keys (rig.press)
    if rig.alarms():
        rig.clear_fault("start-up fault cleared before the test")

    # a bounce: the keypad reports the same key twice within microseconds; the ui takes one press
    after = rig.seq()
    rig.press("rate")
    rig.sim.press_key("7")
    rig.sim.press_key("7")
    assert shows(rig, "> rate 7_"), screen(rig)
    assert rig.wait_event(lambda e: e.kind == "keys_debounced" and e.partition == "ui", timeout=10, after=after), \
        story(rig)
    rig.press("enter")
    assert shows(rig, "rate 7 |"), screen(rig)
    assert "> rate 77" not in screen(rig)

    # a whole number for a numeric field is not a key on this keypad
    rig.sim.press_key("vtbi", "500")
    assert shows(rig, "vtbi: type the value with the digit keys"), screen(rig)

    ok, why = rig.program("normal-saline", rate=100, vtbi=500)
    assert ok, (why, screen(rig))
    ok, why = rig._act("start_infusion", [("start", "")])
    assert ok, why
    # before the final start: what is about to run, from pump_control's program (the motor has not moved)
    assert shows(rig, "CONFIRM normal-saline 1 mL/mL", "rate 100 mL/h = 100.00 mL/h", "VTBI 500.0 mL"), \
        (screen(rig), story(rig))
    assert not re.search(r"(?<![\d.])0\.00 mL/h", screen(rig)), screen(rig)
    assert not rig.motor_running()
    ok, why = rig._act("start_infusion", [("confirm", "")])
    assert ok, why
    assert rig.wait_until(rig.motor_running, timeout=10), story(rig)
    assert rig.sim.sound.pattern == "off"

    # an occlusion: the speaker plays the high-priority pattern
    rig.inject("occlusion")
    assert rig.wait_until(lambda: rig.sim.sound.pattern == "high", timeout=10), (rig.sim.sound, story(rig))
    assert rig.sim.sound.alarm == "occlusion"
    # silence: audio paused with the time left, on the speaker and the display
    ok, why = rig._act("silence_alarm", [("silence", "")])
    assert ok, why
    assert rig.wait_until(lambda: rig.sim.sound.paused and rig.sim.sound.pattern == "off", timeout=10), \
        (rig.sim.sound, story(rig))
    assert 0 < rig.sim.sound.paused_remaining_s <= 120
    assert shows(rig, "AUDIO PAUSED"), screen(rig)
    # 120 s of device time later the occlusion, still there, sounds again
    assert rig.wait_until(lambda: rig.sim.sound.pattern == "high" and not rig.sim.sound.paused, timeout=20), \
        (rig.sim.sound, story(rig))
    patterns = [(snd.pattern, snd.paused) for _, snd in rig.sim.sound_log]
    assert patterns[-3:] == [("high", False), ("off", True), ("high", False)], patterns
