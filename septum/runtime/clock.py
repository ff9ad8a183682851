"""The runtime clock: device time that the supervisor can scale (for simulation and test rigs).

Every partition and the supervisor share one reference: CLOCK_MONOTONIC is system-wide, so a partition
computes device time from the same origin the supervisor chose, with no messages exchanged.
``now()`` is seconds of device time since the device started; with ``scale=10`` device time runs ten
times faster than real time (timers and rate limits follow it). Heartbeat supervision stays in real
time, because it is about whether a process is alive, not about the therapy's timeline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    origin: float  # time.monotonic() value at which device time is 0
    scale: float = 1.0
    wall_origin: float = 0.0  # time.time() at the origin, for wall-clock stamps

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError("time scale must be a positive number")

    @classmethod
    def start(cls, scale: float = 1.0) -> Clock:
        return cls(origin=time.monotonic(), scale=scale, wall_origin=time.time())

    def now(self) -> float:
        """Device time in seconds since the device started."""
        return (time.monotonic() - self.origin) * self.scale

    def wall(self) -> float:
        """Device wall-clock time (Unix seconds), advancing at the scaled rate."""
        return self.wall_origin + self.now()

    def to_real(self, device_seconds: float) -> float:
        """How many real seconds a device-time interval lasts."""
        return device_seconds / self.scale

    def real_deadline(self, device_seconds_from_now: float) -> float:
        """time.monotonic() value at which the given device-time delay expires."""
        return time.monotonic() + device_seconds_from_now / self.scale
