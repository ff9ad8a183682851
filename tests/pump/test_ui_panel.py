"""The ui partition's front panel logic over fake device links (no runtime): the confirmation screen, key
debounce on the keypad's time stamps, and the speaker driven by the alarms with audio pause."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from septum_pump import ui
from septum_pump.sim import wire

from septum.model import load
from septum.runtime import codec

MODEL = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump" / "model.yaml"
_model, _ = load(MODEL)


def message(name: str) -> type[msgspec.Struct]:
    return codec.message_type(name, {k: codec.field_spec(v) for k, v in _model.messages[name].items()})


PumpStatus, MonitorStatus, AuthReply, UiRequest = (message(n) for n in
                                                    ("PumpStatus", "MonitorStatus", "AuthReply", "UiRequest"))


def zero(t: Any) -> Any:
    info = msgspec.inspect.type_info(t)
    return {f.name: ("" if isinstance(f.type, msgspec.inspect.StrType) else False
                     if isinstance(f.type, msgspec.inspect.BoolType) else 0) for f in info.fields}


def pump_status(**fields: Any) -> Any:
    base = zero(PumpStatus)
    base.update(state="idle", alarm_priority="none")
    base.update(fields)
    return PumpStatus(**base)


def monitor_status(**fields: Any) -> Any:
    base = zero(MonitorStatus)
    base.update(alarm_priority="none")
    base.update(fields)
    return MonitorStatus(**base)


class Clock:
    scale = 1.0


class FakePartition:
    """What FrontPanel uses of a Partition: devices (socket pairs), sends, events and the time."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.clock = Clock()
        self.t = 1000.0
        self.control_lost = 0
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.sent: list[tuple[str, Any]] = []
        self.links: dict[str, socket.socket] = {}
        self.far: dict[str, socket.socket] = {}
        for dev in ("keypad", "display", "pca_button", "speaker"):
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.links[dev], self.far[dev] = a, b

    def now(self) -> float:
        return self.t

    def device(self, name: str) -> socket.socket:
        return self.links[name]

    def message_type(self, channel: str) -> type[msgspec.Struct]:
        assert channel == "ui_requests"
        return UiRequest

    def send(self, channel: str, **fields: Any) -> bool:
        self.sent.append((channel, fields))
        return True

    def event(self, kind: str, severity: str = "info", **fields: Any) -> None:
        self.events.append((kind, fields))

    # the far (hardware) ends
    def last(self, device: str) -> Any:
        sock, out = self.far[device], None
        sock.setblocking(False)
        while True:
            try:
                out = wire.decode(sock.recv(wire.MAX_PACKET))
            except BlockingIOError:
                return out

    def close(self) -> None:
        for s in (*self.links.values(), *self.far.values()):
            s.close()


@pytest.fixture
def panel() -> Iterator[tuple[ui.FrontPanel, FakePartition]]:
    p = FakePartition()
    fp = ui.FrontPanel(p)  # type: ignore[arg-type]
    yield fp, p
    p.close()


def key(fp: ui.FrontPanel, k: str, at_ms: int, value: str = "") -> None:
    fp.on_key(wire.encode(wire.Key(key=k, value=value, at_ms=at_ms)))


def test_the_confirmation_screen_shows_what_is_about_to_run(panel: tuple[ui.FrontPanel, FakePartition]) -> None:
    """Before the final start the motor has not moved (rate_ml_h 0): the screen must show the program's
    drug, concentration, rate and VTBI, not the motor's 0.00 mL/h."""
    fp, p = panel
    fp.on_pump(pump_status(state="programmed", drug="morphine-pca", rate_ml_h=0.0, program_rate_ml_h=2.0,
                           dose="2 mg/h", concentration="1 mg/mL", vtbi_ml=30.0, confirm_pending=True,
                           message="confirm to start"))
    screen = p.last("display")
    text = "\n".join(screen.lines)
    assert "CONFIRM morphine-pca 1 mg/mL" in text, text
    assert "rate 2 mg/h = 2.00 mL/h" in text and "VTBI 30.0 mL" in text, text
    assert "0.00 mL/h" not in text, text
    # once confirmed and running, the head line is the motor's rate again
    fp.on_pump(pump_status(state="running", drug="morphine-pca", rate_ml_h=2.0, program_rate_ml_h=2.0,
                           dose="2 mg/h", concentration="1 mg/mL", vtbi_ml=30.0, message="running"))
    assert p.last("display").lines[0] == "RUNNING morphine-pca 2.00 mL/h"


def test_digits_are_debounced_on_the_keypad_time_stamps_not_on_arrival(
        panel: tuple[ui.FrontPanel, FakePartition]) -> None:
    fp, p = panel
    # two real presses of 0, 100 ms apart by the keypad's clock, read by the ui at the same moment (it was
    # busy): both count
    key(fp, "rate", 1000)
    for k, at in (("1", 1010), ("0", 1020), ("0", 1120)):
        key(fp, k, at)
    assert fp.entry.typed == "100"
    # a bounce 20 ms after a press is dropped and counted
    key(fp, "0", 1140)
    assert fp.entry.typed == "100" and fp.debounced == 1
    key(fp, "enter", 1200)
    assert fp.entry.values["rate"] == "100"
    fp.tick()
    assert ("keys_debounced", {"total": 1}) in p.events
    assert "rate 100" in "\n".join(p.last("display").lines)


def test_a_whole_number_on_a_numeric_field_is_refused(panel: tuple[ui.FrontPanel, FakePartition]) -> None:
    fp, p = panel
    key(fp, "rate", 1000, value="100")
    assert "rate" not in fp.entry.values
    assert "digit keys" in p.last("display").lines[-1]


def test_the_speaker_plays_the_alarm_pauses_on_an_authorised_silence_and_sounds_again(
        panel: tuple[ui.FrontPanel, FakePartition]) -> None:
    fp, p = panel
    fp.on_monitor(monitor_status(alarm="reservoir-low", alarm_priority="medium"))
    assert p.last("speaker") == wire.Sound(pattern="medium", alarm="reservoir-low")
    fp.session = "s1"
    key(fp, "silence", 1000)
    rid, req = p.sent[-1][1]["request_id"], p.sent[-1][1]
    assert req["action"] == "silence_alarm"
    assert p.last("speaker") is None and fp.sound is not None and fp.sound.name == "medium"  # not until auth says
    fp.on_reply(AuthReply(request_id=rid, ok=True, reason="authorised", session="s1", role="clinician"))
    paused = p.last("speaker")
    assert (paused.pattern, paused.paused, paused.paused_remaining_s) == ("off", True, 120.0)
    assert "AUDIO PAUSED 2:00" in p.last("display").lines
    # a new, higher alarm sounds at once, pause or not
    p.t += 10
    fp.on_monitor(monitor_status(alarm="occlusion", alarm_priority="high"))
    assert p.last("speaker").pattern == "high"
    # the monitor reports its highest alarm only: while occlusion was on top the ui could not see that
    # reservoir-low stayed, so when it shows again it is a new condition and sounds (louder, never quieter)
    fp.on_monitor(monitor_status(alarm="reservoir-low", alarm_priority="medium"))
    assert p.last("speaker").pattern == "medium"
    key(fp, "silence", 2000)
    fp.on_reply(AuthReply(request_id=p.sent[-1][1]["request_id"], ok=True, reason="", session="s1", role="c"))
    assert p.last("speaker").pattern == "off"
    # the pause runs out: the still-active alarm sounds again
    p.t += 119.5
    fp.tick()
    assert p.last("speaker").paused is True
    p.t += 0.5
    fp.tick()
    back = p.last("speaker")
    assert (back.pattern, back.paused) == ("medium", False)


def test_a_refused_silence_pauses_nothing(panel: tuple[ui.FrontPanel, FakePartition]) -> None:
    fp, p = panel
    fp.on_monitor(monitor_status(alarm="occlusion", alarm_priority="high"))
    fp.session = "s1"
    key(fp, "silence", 1000)
    rid = p.sent[-1][1]["request_id"]
    fp.on_reply(AuthReply(request_id=rid, ok=False, reason="not authorised", session="", role=""))
    fp.tick()
    assert fp.sound is not None and (fp.sound.name, fp.sound.paused) == ("high", False)


def test_a_silent_safety_monitor_is_a_high_alarm_of_the_ui(panel: tuple[ui.FrontPanel, FakePartition],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fp, p = panel
    real = [500.0]
    monkeypatch.setattr(ui.time, "monotonic", lambda: real[0])
    fp.on_monitor(monitor_status())
    fp.tick()
    assert fp.sound is not None and fp.sound.name == "off"
    real[0] += ui.MONITOR_SILENT_REAL_S + 0.1  # no status from the monitor since
    fp.tick()
    assert p.last("speaker") == wire.Sound(pattern="high", alarm=ui.MONITOR_SILENT)
    screen = p.last("display")
    assert (screen.alarm, screen.priority) == (ui.MONITOR_SILENT, "high")
    assert ("monitor_status_lost", {}) in p.events
    fp.on_monitor(monitor_status())  # it speaks again
    assert p.last("speaker").pattern == "off"
    assert p.last("display").alarm == ""
