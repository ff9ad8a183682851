"""The front panel's HTTP API without a browser or a runtime: the simulator's devices are socket pairs whose
far ends stand in for the ui partition, so a press must arrive on the keypad link as the wire ``Key`` the ui
partition decodes, and what "the ui" draws on the display link must come back in ``/api/state``."""

from __future__ import annotations

import http.client
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from septum_pump.sim import Fault, Simulator, wire
from septum_pump.sim.frontpanel import FIELD_KEYS, FUNCTION_KEYS, NUMERIC_FIELD_KEYS, FrontPanel


@dataclass
class Bench:
    sim: Simulator
    panel: FrontPanel
    ui: dict[str, socket.socket]  # the partition's end of each device link

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.panel.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read().decode()
            if resp.getheader("Content-Type", "").startswith("application/json"):
                return resp.status, json.loads(data)
            return resp.status, data
        finally:
            conn.close()

    def post(self, path: str, obj: Any) -> tuple[int, dict[str, Any]]:
        status, body = self.request("POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"})
        assert isinstance(body, dict), body
        return status, body

    def read(self, device: str) -> wire.Packet:
        sock = self.ui[device]
        sock.settimeout(5)
        return wire.decode(sock.recv(wire.MAX_PACKET))


@pytest.fixture
def bench() -> Iterator[Bench]:
    sim = Simulator()
    ui: dict[str, socket.socket] = {}
    for dev in ("keypad", "pca_button", "display", "speaker"):
        hw, part = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sim.attach(dev, hw)
        ui[dev] = part
    sim.start()
    with FrontPanel(sim, info={"time_scale": 1.0, "services": "none"}) as panel:
        yield Bench(sim, panel, ui)
    sim.stop()
    for s in ui.values():
        s.close()


def test_page_is_served_and_every_key_it_sends_exists_on_the_keypad(bench: Bench) -> None:
    status, page = bench.request("GET", "/")
    assert status == 200 and isinstance(page, str)
    assert 'id="alarm-light"' in page and 'id="display"' in page and 'id="pca"' in page
    assert "http://" not in page.replace("http://127.0.0.1", "") and "https://" not in page  # no CDN
    keys = set(re.findall(r'data-key="([^"]+)"', page))
    fields = {f for group in re.findall(r'data-fields="([^"]+)"', page) for f in group.split()}
    assert keys and keys <= FUNCTION_KEYS, keys - FUNCTION_KEYS
    assert fields and fields <= FIELD_KEYS, fields - FIELD_KEYS
    # every field the page sends has an input the clinician can type into
    assert all(f'id="f-{f}"' in page for f in fields)
    # numbers only through the keypad: each number field has a field key, and the digit keys are all there
    selects = set(re.findall(r'data-select="([^"]+)"', page))
    assert selects == set(NUMERIC_FIELD_KEYS), selects ^ set(NUMERIC_FIELD_KEYS)
    assert not fields & set(NUMERIC_FIELD_KEYS), fields & set(NUMERIC_FIELD_KEYS)
    assert {*"0123456789", "decimal", "clear", "enter"} <= keys
    # the page's fault buttons are exactly the simulator's faults
    listed = re.search(r"const FAULTS = \[([^\]]*)\]", page)
    assert listed is not None
    assert set(re.findall(r'"([a-z_]+)"', listed.group(1))) == {f.value for f in Fault}


def key_of(packet: wire.Packet) -> tuple[str, str]:
    assert isinstance(packet, wire.Key), packet
    assert packet.at_ms > 0  # the keypad stamps each press (the ui debounces on these stamps)
    return packet.key, packet.value


def test_key_press_reaches_the_keypad_link_as_a_wire_key(bench: Bench) -> None:
    assert bench.post("/api/key", {"key": "drug", "value": "normal-saline"}) == (200, {"ok": True, "key": "drug"})
    assert key_of(bench.read("keypad")) == ("drug", "normal-saline")
    assert bench.post("/api/key", {"key": "start"})[0] == 200
    assert key_of(bench.read("keypad")) == ("start", "")
    assert bench.post("/api/silence", {})[0] == 200
    assert key_of(bench.read("keypad")) == ("silence", "")


def test_a_number_is_the_field_key_then_digit_keys_then_enter(bench: Bench) -> None:
    for key in ("rate", "1", "2", "decimal", "5", "clear", "0", "enter"):
        assert bench.post("/api/key", {"key": key}) == (200, {"ok": True, "key": key})
        assert key_of(bench.read("keypad")) == (key, "")
    # a number cannot be sent whole: the keypad has no such key
    status, body = bench.post("/api/key", {"key": "rate", "value": "100"})
    assert status == 400 and "digit keys" in body["error"]
    for key in (str(d) for d in range(10)):
        assert key in FUNCTION_KEYS


def test_state_carries_the_speaker_and_the_tone_patterns(bench: Bench) -> None:
    bench.ui["speaker"].send(wire.encode(wire.Sound(pattern="high", alarm="occlusion", paused=False)))
    assert bench.sim.wait_until(lambda s: s.snapshot()["sound"]["pattern"] == "high", timeout=5)
    state = bench.request("GET", "/api/state")[1]
    assert isinstance(state, dict)
    assert state["sound"] == {"pattern": "high", "alarm": "occlusion", "paused": False, "paused_remaining_s": 0.0}
    assert [len(state["patterns"][p]["pulses"]) for p in ("high", "medium", "low")] == [10, 3, 2]
    # a pattern the speaker does not know is a bad packet, not a new sound
    bench.ui["speaker"].send(wire.encode(wire.Sound(pattern="siren")))
    bench.ui["speaker"].send(wire.encode(wire.Sound(pattern="off", paused=True, paused_remaining_s=100.0)))
    assert bench.sim.wait_until(lambda s: s.snapshot()["sound"]["paused"], timeout=5)
    assert bench.sim.bad_packets == 1
    assert [snd.pattern for _, snd in bench.sim.sound_log] == ["high", "off"]


def test_pca_button_reaches_its_own_link(bench: Bench) -> None:
    assert bench.post("/api/pca", {})[0] == 200
    first = bench.read("pca_button")
    assert bench.post("/api/pca", {})[0] == 200
    second = bench.read("pca_button")
    assert isinstance(first, wire.ButtonPress) and isinstance(second, wire.ButtonPress)
    assert second.seq == first.seq + 1


def test_state_shows_what_the_ui_drew_on_the_display(bench: Bench) -> None:
    screen = wire.Screen(lines=["RUNNING normal-saline 100.00 mL/h", "login: ok"], alarm="occlusion",
                         priority="high", user="nurse1")
    bench.ui["display"].send(wire.encode(screen))
    assert bench.sim.wait_until(lambda s: s.snapshot()["display"] == screen.lines, timeout=5)
    status, state = bench.request("GET", "/api/state")
    assert status == 200 and isinstance(state, dict)
    assert state["display"] == screen.lines
    assert (state["alarm"], state["alarm_priority"], state["user"]) == ("occlusion", "high", "nurse1")
    assert state["info"] == {"time_scale": 1.0, "services": "none"}
    assert {"delivered_ml", "reservoir_ml", "motor_running", "faults", "connected"} <= state.keys()


def test_fault_inject_and_clear_change_the_physical_world(bench: Bench) -> None:
    status, body = bench.post("/api/fault", {"fault": "occlusion"})
    assert status == 200 and body["faults"] == ["occlusion"]
    state = bench.request("GET", "/api/state")[1]
    assert isinstance(state, dict) and state["line_pressure_mmhg"] > 500
    status, body = bench.post("/api/fault", {"fault": "reservoir_empty"})
    assert body["faults"] == ["occlusion", "reservoir_empty"]
    assert bench.post("/api/clear", {"fault": "occlusion"})[1]["faults"] == ["reservoir_empty"]
    assert bench.post("/api/clear", {"fault": "reservoir_empty"})[1]["faults"] == []
    state = bench.request("GET", "/api/state")[1]
    assert isinstance(state, dict) and state["reservoir_ml"] > 0  # a new bag was hung


def test_press_with_the_keypad_unplugged_is_503_not_lost_silently(bench: Bench) -> None:
    bench.sim.links.pop("keypad").close()  # the ui partition is restarting: its link is not attached
    status, body = bench.post("/api/key", {"key": "start"})
    assert status == 503 and body["ok"] is False and "keypad" in body["error"]


MALFORMED: list[tuple[str, str, bytes, dict[str, str], str]] = [
    ("not json", "/api/key", b"{key: start}", {"Content-Type": "application/json"}, "not valid JSON"),
    ("array", "/api/key", b'["start"]', {"Content-Type": "application/json"}, "JSON object"),
    ("wrong content type", "/api/key", b'{"key": "start"}', {"Content-Type": "text/plain"}, "Content-Type"),
    ("form post", "/api/pca", b"a=1", {"Content-Type": "application/x-www-form-urlencoded"}, "Content-Type"),
    ("unknown key", "/api/key", b'{"key": "format_disk"}', {"Content-Type": "application/json"}, "no such key"),
    ("missing key", "/api/key", b'{"value": "1"}', {"Content-Type": "application/json"}, "missing"),
    ("extra field", "/api/key", b'{"key": "start", "x": 1}', {"Content-Type": "application/json"}, "unknown"),
    ("key not a string", "/api/key", b'{"key": 7}', {"Content-Type": "application/json"}, "strings"),
    ("value on function key", "/api/key", b'{"key": "start", "value": "1"}', {"Content-Type": "application/json"},
     "takes no value"),
    ("control chars", "/api/key", b'{"key": "user", "value": "a\\u0000b"}', {"Content-Type": "application/json"},
     "control"),
    ("value too long", "/api/key", json.dumps({"key": "reason", "value": "x" * 257}).encode(),
     {"Content-Type": "application/json"}, "longer"),
    ("NaN", "/api/key", b'{"key": "rate", "value": NaN}', {"Content-Type": "application/json"}, "not valid JSON"),
    ("bad utf-8", "/api/key", b'{"key": "\xff"}', {"Content-Type": "application/json"}, "not valid JSON"),
    ("unknown fault", "/api/fault", b'{"fault": "fire"}', {"Content-Type": "application/json"}, "fault must be"),
    ("fault not string", "/api/clear", b'{"fault": ["air"]}', {"Content-Type": "application/json"},
     "fault must be"),
    ("pca with body", "/api/pca", b'{"times": 100}', {"Content-Type": "application/json"}, "unknown"),
    ("silence with body", "/api/silence", b'{"key": "x"}', {"Content-Type": "application/json"}, "unknown"),
    ("too big", "/api/key", b'{"key": "reason", "value": "' + b"x" * 5000 + b'"}',
     {"Content-Type": "application/json"}, "larger"),
    ("bad host", "/api/pca", b"{}", {"Content-Type": "application/json", "Host": "evil.example:80"}, "Host"),
]


@pytest.mark.parametrize(("path", "body", "headers", "reason"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_requests_are_400_with_a_reason(bench: Bench, path: str, body: bytes, headers: dict[str, str],
                                                  reason: str) -> None:
    status, reply = bench.request("POST", path, body, headers)
    assert status == 400, reply
    assert isinstance(reply, dict) and reply["ok"] is False and reason in reply["error"], reply
    assert "Traceback" not in reply["error"]
    # and nothing reached the devices
    bench.ui["keypad"].setblocking(False)
    with pytest.raises(BlockingIOError):
        bench.ui["keypad"].recv(wire.MAX_PACKET)
    assert bench.sim.snapshot()["faults"] == []


def test_missing_content_length_is_400(bench: Bench) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", bench.panel.port, timeout=10)
    try:
        conn.putrequest("POST", "/api/pca")
        conn.putheader("Content-Type", "application/json")
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 400 and "Content-Length" in json.loads(resp.read())["error"]
    finally:
        conn.close()


def test_wrong_paths_and_methods(bench: Bench) -> None:
    assert bench.request("GET", "/etc/passwd")[0] == 404
    assert bench.request("GET", "/api/key")[0] == 405
    assert bench.request("POST", "/api/state", b"{}", {"Content-Type": "application/json"})[0] == 405
    assert bench.request("POST", "/api/nothing", b"{}", {"Content-Type": "application/json"})[0] == 404
    assert bench.request("DELETE", "/api/state")[0] == 405


def test_served_on_loopback_only(bench: Bench) -> None:
    assert bench.panel.url.startswith("http://127.0.0.1:")
    assert bench.panel._httpd is not None and bench.panel._httpd.server_address[0] == "127.0.0.1"
