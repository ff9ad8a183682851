"""The byte protocol on each hardware link (what a driver speaks to the device; the runtime does not look).

One msgpack-encoded, tagged struct per SEQPACKET packet. The pump's partitions and the simulator both
import this module; on a real board the same structs would be spoken to the device driver's node.

  motor       safety_monitor -> motor:      MotorSet (rate and a lease: the driver stops when it expires)
  sensors     sensors -> safety_monitor:    SensorFrame (pushed every sensor period and on any change)
  keypad      keypad -> ui:                 Key (one key or field entry of the front panel)
  pca_button  button -> ui:                 ButtonPress
  display     ui -> display:                Screen (what the front panel shows, alarm lights)
  speaker     ui -> speaker:                Sound (the alarm tone pattern to play, audio paused)
"""

from __future__ import annotations

import msgspec


class MotorSet(msgspec.Struct, frozen=True, tag=True):
    seq: int
    rate_ml_h: float
    lease_s: float  # device seconds; a motor not renewed within its lease stops by itself (hardware watchdog)


class SensorFrame(msgspec.Struct, frozen=True, tag=True):
    seq: int
    line_pressure_mmhg: float
    largest_bubble_ul: float  # since the previous frame
    air_ul: float  # since the previous frame
    reservoir_ml: float
    door_open: bool
    motor_volume_ml: float  # cumulative, from the motor encoder


class Key(msgspec.Struct, frozen=True, tag=True):
    key: str  # a function key ("login", "start", ...) or a field name ("pin", "rate", ...)
    value: str = ""  # the entered value for a field
    at_ms: int = 0  # the keypad's own time stamp of the press (ms, monotonic); 0: unknown (debounce by arrival)


class ButtonPress(msgspec.Struct, frozen=True, tag=True):
    seq: int


class Screen(msgspec.Struct, frozen=True, tag=True):
    lines: list[str]
    alarm: str = ""
    priority: str = "none"  # none, low, medium, high: the alarm light colour
    user: str = ""  # who is logged in (empty: nobody)


class Sound(msgspec.Struct, frozen=True, tag=True):
    pattern: str = "off"  # off, low, medium, high: the IEC 60601-1-8 burst the speaker repeats (therapy/audible.py)
    alarm: str = ""  # what it sounds for
    paused: bool = False  # audio paused: an active alarm is muted for now
    paused_remaining_s: float = 0.0  # device seconds until it sounds again


Packet = MotorSet | SensorFrame | Key | ButtonPress | Screen | Sound
MAX_PACKET = 4096

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Packet)


def encode(msg: Packet) -> bytes:
    return _encoder.encode(msg)


def decode(data: bytes) -> Packet:
    """Strictly decode one packet (raises msgspec.DecodeError / ValidationError on anything else)."""
    if len(data) > MAX_PACKET:
        raise msgspec.DecodeError("device packet too large")
    return _decoder.decode(data)
