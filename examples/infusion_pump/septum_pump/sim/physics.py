"""The physical pump: motor, fluid path and sensors, integrated over device time.

Pure state and arithmetic (no I/O, no threads): ``Simulator`` advances it and talks to the device links.
Volumes in mL, rates in mL/h, air in microlitres, pressure in mmHg, times in device seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

SECONDS_PER_HOUR = 3600.0


class Fault(StrEnum):
    """Hardware faults the simulator can inject (and clear)."""

    OCCLUSION = "occlusion"  # line blocked downstream: pressure rises above the alarm threshold
    AIR = "air"  # bubbles in the line, larger than the single-bubble threshold
    DOOR_OPEN = "door_open"  # the pump door is opened
    RESERVOIR_EMPTY = "reservoir_empty"  # the bag runs dry
    MOTOR_RUNAWAY = "motor_runaway"  # the motor driver pushes faster than commanded (gain fault)
    SENSOR_DROPOUT = "sensor_dropout"  # the sensor board stops reporting
    SENSOR_GARBAGE = "sensor_garbage"  # the sensor board reports impossible values


RUNAWAY_FACTOR = 3.0
RUNAWAY_EXTRA_ML_H = 30.0
NORMAL_PRESSURE_MMHG = 40.0
OCCLUDED_PRESSURE_MMHG = 900.0
BUBBLE_UL = 120.0  # per sensor frame while the air fault is present


@dataclass
class PumpPhysics:
    reservoir_ml: float = 250.0
    delivered_ml: float = 0.0  # cumulative volume the motor pushed (the encoder counts it)
    rate_ml_h: float = 0.0  # what the driver was told
    lease_end: float = 0.0  # device time at which the driver stops by itself
    last: float = 0.0  # device time of the last advance
    faults: set[Fault] = field(default_factory=set)
    gain: float = 1.0  # what the mechanism pushes per mL commanded (1.08: a driver 8 % fast; set by tests)

    def actual_rate(self, now: float) -> float:
        """What the motor really pushes at ``now`` (0 once the lease ran out or the bag is dry)."""
        if self.rate_ml_h <= 0 or now >= self.lease_end or self.reservoir_ml <= 0:
            return 0.0
        if Fault.MOTOR_RUNAWAY in self.faults:
            return self.rate_ml_h * RUNAWAY_FACTOR + RUNAWAY_EXTRA_ML_H
        return self.rate_ml_h * self.gain

    def advance(self, now: float) -> None:
        """Integrate delivery from ``last`` to ``now`` (exactly up to the lease end if it expired between)."""
        if now <= self.last:
            return
        end = min(now, self.lease_end)
        if end > self.last:
            volume = min(self.actual_rate(self.last) * (end - self.last) / SECONDS_PER_HOUR, self.reservoir_ml)
            self.delivered_ml += volume
            self.reservoir_ml -= volume
        self.last = now

    def set_motor(self, now: float, rate_ml_h: float, lease_s: float) -> None:
        self.advance(now)
        self.rate_ml_h = max(0.0, rate_ml_h)
        self.lease_end = now + max(0.0, lease_s) if rate_ml_h > 0 else now

    def stop_motor(self, now: float) -> None:
        self.set_motor(now, 0.0, 0.0)

    def running(self, now: float) -> bool:
        return self.actual_rate(now) > 0

    @property
    def pressure_mmhg(self) -> float:
        return OCCLUDED_PRESSURE_MMHG if Fault.OCCLUSION in self.faults else NORMAL_PRESSURE_MMHG

    @property
    def door_open(self) -> bool:
        return Fault.DOOR_OPEN in self.faults

    def inject(self, fault: Fault) -> None:
        self.faults.add(fault)
        if fault is Fault.RESERVOIR_EMPTY:
            self.reservoir_ml = 0.0

    def clear(self, fault: Fault, refill_ml: float = 250.0) -> None:
        self.faults.discard(fault)
        if fault is Fault.RESERVOIR_EMPTY:
            self.reservoir_ml = refill_ml  # a new bag was hung
