"""The Simplex warmer the analysis accepts also behaves as one when it runs: only the monitor drives the
heater, it caps the controller's command, and it cuts the heater on over-temperature, a silent probe or an
unplugged one (examples/warmer)."""

from __future__ import annotations

import socket
import tempfile
import threading
from pathlib import Path

import pytest

from septum.model import load
from septum.runtime.sandbox.probe import probe
from septum.runtime.supervisor import Supervisor, remove_state_dir

WARMER = Path(__file__).parents[2] / "examples" / "warmer"
DEADLINE_S = 20.0


class Bench:
    """The heater and skin probe: records what the heater is told, sends the probe frames a test sets."""

    def __init__(self) -> None:
        self.socks: dict[str, socket.socket] = {}
        self.heater: list[float] = []
        self.skin: bytes | None = b"34.0"
        self.changed = threading.Condition()
        self.stop = threading.Event()

    def attach(self, interface: str, sock: socket.socket) -> None:
        self.socks[interface] = sock

    def run(self) -> None:
        threading.Thread(target=self._probe, daemon=True).start()
        threading.Thread(target=self._heater, daemon=True).start()

    def _probe(self) -> None:
        while not self.stop.wait(0.02):
            if self.skin is not None:
                try:
                    self.socks["skin_probe"].send(self.skin)
                except OSError:
                    return

    def _heater(self) -> None:
        sock = self.socks["heater"]
        while True:
            try:
                data = sock.recv(64)
            except OSError:
                return
            if not data:
                return
            with self.changed:
                self.heater.append(float(data.decode()))
                self.changed.notify_all()

    def wait_heater(self, pred: object) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: bool(self.heater) and pred(self.heater[-1]), DEADLINE_S)  # type: ignore[operator]


def test_monitor_gates_the_controller_and_fails_safe() -> None:
    if not probe().root:
        print("SKIP: septum run starts partitions under their own uids and needs root")
        pytest.skip("needs root")
    model, source = load(WARMER / "model.yaml")
    bench = Bench()
    state = Path(tempfile.mkdtemp(prefix="septum-test-"))
    sup = Supervisor(model, source, model_dir=WARMER, state_dir=state, hardware=bench)
    sup.start()  # with the analysis gate: the model is clean
    try:
        assert sup.wait_ready(DEADLINE_S)
        bench.run()
        # skin 34.0 C, set point 36.5: the controller wants 100 %, the monitor caps at max_power_pct 60
        assert bench.wait_heater(lambda v: v > 0), bench.heater
        assert max(bench.heater) == 60.0
        start = sup.events.last_seq
        bench.skin = b"38.5"  # over max_skin_c: heater off, alarm
        assert bench.wait_heater(lambda v: v == 0.0), bench.heater
        assert sup.events.wait_for(lambda e: e.kind == "alarm" and e.fields.get("alarm") == "over_temperature",
                                   DEADLINE_S, after=start)
        bench.skin = b"34.0"
        assert bench.wait_heater(lambda v: v > 0), bench.heater
        start = sup.events.last_seq
        bench.skin = None  # the probe goes silent
        assert bench.wait_heater(lambda v: v == 0.0), bench.heater
        assert sup.events.wait_for(lambda e: e.kind == "alarm" and e.fields.get("alarm") == "probe_fault",
                                   DEADLINE_S, after=start)
    finally:
        bench.stop.set()
        sup.stop()
        remove_state_dir(state)
    assert not sup.failures
