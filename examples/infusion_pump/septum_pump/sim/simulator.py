"""The simulator process side: device links, the physics thread, faults and the front-panel API.

One thread owns the physics and the device links: it waits on the links (poll) with a timeout of one
sensor period, applies motor commands, integrates delivery and pushes a sensor frame every period and at
once when a fault is injected or cleared (so a hazard reaches the safety monitor without waiting for the
next frame). Public methods may be called from any thread; they take the lock and wake the thread.
"""

from __future__ import annotations

import math
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from septum.runtime.clock import Clock

from . import wire
from .physics import BUBBLE_UL, Fault, PumpPhysics

SENSOR_PERIOD_REAL_S = 0.005  # the sensor board reports every 5 ms of real time
DEVICES = ("motor", "sensors", "keypad", "display", "pca_button", "speaker")
SOUND_PATTERNS = ("off", "low", "medium", "high")  # the speaker knows these; anything else is a bad packet
HARDWARE_NICE = -10  # the simulated hardware's thread (see Simulator._run)


@dataclass(frozen=True)
class MotorChange:
    at_real: float  # time.monotonic()
    at_device: float
    running: bool
    rate_ml_h: float
    why: str  # "command", "lease expired", "link closed", "reservoir empty"


class Simulator:
    def __init__(self, clock: Clock | None = None, reservoir_ml: float = 250.0) -> None:
        self.clock = clock or Clock.start()
        self.physics = PumpPhysics(reservoir_ml=reservoir_ml)
        self.links: dict[str, socket.socket] = {}
        self.screen = wire.Screen(lines=["(display not connected)"])
        self.sound = wire.Sound()  # what the alarm speaker plays (the front panel plays it with Web Audio)
        self.sound_log: list[tuple[float, wire.Sound]] = []  # (time.monotonic(), sound) at each change
        self.motor_log: list[MotorChange] = []
        self.motor_commands = 0
        self.bad_packets = 0
        self._button_seq = 0
        self._frame_seq = 0
        self._push_now = False
        self._lock = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._was_running = False
        # time.monotonic() of the recent sensor frames sent: a benchmark places an injection within the schedule
        self.frame_times: deque[float] = deque(maxlen=256)

    # ------------------------------------------------------------------ HardwareProvider
    def attach(self, interface: str, sock: socket.socket) -> None:
        if interface not in DEVICES:
            sock.close()  # a device this simulator does not model stays unplugged
            return
        with self._lock:
            self.links[interface] = sock
        self._wake()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is None:
            self.physics.last = self.clock.now()
            self._thread = threading.Thread(target=self._run, name="pump-simulator", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop = True
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        for s in self.links.values():
            s.close()
        self.links.clear()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the physical world, for people and tests
    def press_key(self, key: str, value: str = "") -> bool:
        """A key (or a field entry) on the front panel. False if the keypad is not connected."""
        # the keypad stamps each press with its own clock: the ui debounces on these, not on when it reads
        return self._send("keypad", wire.Key(key=key, value=value, at_ms=int(time.monotonic() * 1000)))

    def press_pca(self) -> bool:
        """The patient presses the hand-held bolus button."""
        with self._lock:
            self._button_seq += 1
            seq = self._button_seq
        return self._send("pca_button", wire.ButtonPress(seq=seq))

    def inject(self, fault: Fault | str, *, push: bool = True) -> float:
        """Inject a hardware fault; returns time.monotonic() of the injection (for reaction times).

        ``push``: send a sensor frame at once; False leaves it to the board's next scheduled frame, as on a
        real board (a reaction benchmark then counts the wait for that frame)."""
        f = Fault(fault)
        with self._lock:
            self.physics.advance(self.clock.now())
            self.physics.inject(f)
            self._push_now = self._push_now or push
            at = time.monotonic()
        self._wake()
        return at

    def set_motor_gain(self, gain: float) -> None:
        """A driver that pushes ``gain`` times what it is told (a small sustained over- or under-infusion)."""
        if not (math.isfinite(gain) and gain >= 0):
            raise ValueError("the motor gain must be a finite number >= 0")
        with self._lock:
            self.physics.advance(self.clock.now())
            self.physics.gain = gain

    def clear(self, fault: Fault | str, refill_ml: float = 250.0) -> None:
        with self._lock:
            self.physics.advance(self.clock.now())
            self.physics.clear(Fault(fault), refill_ml)
            self._push_now = True
        self._wake()

    def snapshot(self) -> dict[str, Any]:
        """Everything a front panel shows, as plain data."""
        with self._lock:
            now = self.clock.now()
            ph = self.physics
            ph.advance(now)
            return {
                "device_time_s": now,
                "motor_running": ph.running(now),
                "motor_rate_ml_h": ph.actual_rate(now),
                "commanded_rate_ml_h": ph.rate_ml_h if now < ph.lease_end else 0.0,
                "delivered_ml": ph.delivered_ml,
                "reservoir_ml": ph.reservoir_ml,
                "line_pressure_mmhg": ph.pressure_mmhg,
                "door_open": ph.door_open,
                "faults": sorted(f.value for f in ph.faults),
                "display": list(self.screen.lines),
                "alarm": self.screen.alarm,
                "alarm_priority": self.screen.priority,
                "user": self.screen.user,
                "sound": {"pattern": self.sound.pattern, "alarm": self.sound.alarm, "paused": self.sound.paused,
                          "paused_remaining_s": self.sound.paused_remaining_s},
                "connected": sorted(self.links),
            }

    def delivered_ml(self) -> float:
        with self._lock:
            self.physics.advance(self.clock.now())
            return self.physics.delivered_ml

    def motor_running(self) -> bool:
        with self._lock:
            return self.physics.running(self.clock.now())

    def wait_until(self, pred: Callable[[Simulator], bool], timeout: float) -> bool:
        """Wait (bounded) until ``pred(self)`` holds; re-checked whenever the physics thread changes state."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                self._lock.release()
                try:
                    if pred(self):
                        return True
                finally:
                    self._lock.acquire()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.02))

    def last_stop_after(self, t_real: float) -> MotorChange | None:
        """The first motor stop recorded at or after ``t_real`` (time.monotonic())."""
        with self._lock:
            for ch in self.motor_log:
                if ch.at_real >= t_real and not ch.running:
                    return ch
        return None

    # ------------------------------------------------------------------ internals
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _send(self, device: str, msg: wire.Packet) -> bool:
        with self._lock:
            sock = self.links.get(device)
        if sock is None:
            return False
        try:
            sock.send(wire.encode(msg), socket.MSG_DONTWAIT)
        except OSError:
            return False
        return True

    def _record_motor(self, why: str) -> None:
        now = self.clock.now()
        running = self.physics.running(now)
        if running != self._was_running or (running and why == "command"):
            rate = self.physics.actual_rate(now)
            if running != self._was_running or not self.motor_log or self.motor_log[-1].rate_ml_h != rate:
                self.motor_log.append(MotorChange(time.monotonic(), now, running, rate, why))
            self._was_running = running
            self._lock.notify_all()

    def _on_packet(self, device: str, data: bytes) -> None:
        try:
            msg = wire.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.bad_packets += 1
            return
        if device == "motor" and isinstance(msg, wire.MotorSet):
            rate = msg.rate_ml_h if math.isfinite(msg.rate_ml_h) else 0.0
            lease = msg.lease_s if math.isfinite(msg.lease_s) else 0.0
            self.motor_commands += 1
            self.physics.set_motor(self.clock.now(), rate, lease)
            self._record_motor("command")
        elif device == "display" and isinstance(msg, wire.Screen):
            self.screen = msg
            self._lock.notify_all()
        elif device == "speaker" and isinstance(msg, wire.Sound) and msg.pattern in SOUND_PATTERNS:
            if (msg.pattern, msg.alarm, msg.paused) != (self.sound.pattern, self.sound.alarm, self.sound.paused):
                self.sound_log.append((time.monotonic(), msg))
            self.sound = msg
            self._lock.notify_all()
        else:
            self.bad_packets += 1

    def _frame(self) -> wire.SensorFrame:
        ph = self.physics
        self._frame_seq += 1
        air = BUBBLE_UL if Fault.AIR in ph.faults else 0.0
        if Fault.SENSOR_GARBAGE in ph.faults:
            return wire.SensorFrame(seq=self._frame_seq, line_pressure_mmhg=-1.0, largest_bubble_ul=math.nan,
                                    air_ul=0.0, reservoir_ml=ph.reservoir_ml, door_open=ph.door_open,
                                    motor_volume_ml=ph.delivered_ml)
        return wire.SensorFrame(seq=self._frame_seq, line_pressure_mmhg=ph.pressure_mmhg, largest_bubble_ul=air,
                                air_ul=air, reservoir_ml=ph.reservoir_ml, door_open=ph.door_open,
                                motor_volume_ml=ph.delivered_ml)

    def _run(self) -> None:
        # this thread stands for the pump's hardware, which a busy host does not slow down: run it ahead of
        # ordinary processes where permitted (Linux: per thread), so a loaded bench does not fake sensor faults
        try:
            os.setpriority(os.PRIO_PROCESS, 0, HARDWARE_NICE)
        except OSError:
            pass
        poller = select.poll()
        registered: dict[int, str] = {}
        poller.register(self._wake_r, select.POLLIN)
        next_frame = time.monotonic()
        while True:
            with self._lock:
                if self._stop:
                    return
                for name in ("motor", "display", "speaker"):
                    sock = self.links.get(name)
                    if sock is not None and sock.fileno() not in registered:
                        registered[sock.fileno()] = name
                        poller.register(sock.fileno(), select.POLLIN)
            # rounded up: poll() counts whole milliseconds, and a truncated timeout woke early and then spun on
            # poll(0) under the lock for up to a millisecond before every frame (an injection waited it out)
            timeout_ms = max(0, math.ceil((next_frame - time.monotonic()) * 1000))
            for fd, _ev in poller.poll(timeout_ms):
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 512)
                    except BlockingIOError:
                        pass
                    continue
                name = registered[fd]
                with self._lock:
                    closed = self._drain(name)
                    if closed:
                        poller.unregister(fd)
                        del registered[fd]
                        if name == "motor":  # the driver's enable line drops with its link
                            self.physics.stop_motor(self.clock.now())
                            self._record_motor("link closed")
            with self._lock:
                self.physics.advance(self.clock.now())
                self._record_motor("lease expired")
                now_real = time.monotonic()
                if now_real >= next_frame or self._push_now:
                    self._push_now = False
                    if now_real >= next_frame:  # the board's own grid: a frame a poll tick late does not delay the next
                        next_frame += SENSOR_PERIOD_REAL_S
                        if next_frame <= now_real:  # a whole period behind (a busy host): the grid restarts here
                            next_frame = now_real + SENSOR_PERIOD_REAL_S
                    else:  # pushed at once by a fault change: the grid restarts from it, as before
                        next_frame = now_real + SENSOR_PERIOD_REAL_S
                    if Fault.SENSOR_DROPOUT not in self.physics.faults:
                        frame = self._frame()
                        sock = self.links.get("sensors")
                        if sock is not None:
                            try:
                                sock.send(wire.encode(frame), socket.MSG_DONTWAIT)
                                self.frame_times.append(now_real)
                            except OSError:
                                pass  # monitor busy or gone: the next frame follows

    def _drain(self, name: str) -> bool:
        """Read what a partition sent on a link; True once the link reached end-of-file."""
        sock = self.links[name]
        for _ in range(256):
            try:
                data = sock.recv(wire.MAX_PACKET + 1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                return True
            if not data:
                return True
            self._on_packet(name, data)
        return False
