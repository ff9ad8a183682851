"""Alarm conditions, priorities, latching and silence.

Each alarm kind has a fixed priority (for the display and the sound) and a fixed action (for the motor).
When several alarms are active the most severe action wins: a high-priority "stop" is never masked by a
lower-priority advisory, and silencing an alarm only mutes it, it never changes what the motor does.

Stop alarms *latch*: they stay active after their condition is gone until a clinician clears them (so a
door that was opened and closed again, or a bubble that has passed the sensor, is seen by a person).
Advisory alarms clear themselves when their condition goes. After an occlusion is cleared no bolus may
start for ``occlusion_bolus_hold_off_s``: the line may still be under pressure and must not be pushed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from .errors import TherapyError


class Priority(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class AlarmAction(IntEnum):
    """What an alarm does to delivery, in increasing severity (the maximum over active alarms wins)."""

    NONE = 0
    ADVISORY = 1  # tell people, keep infusing
    STOP = 2  # stop the motor until a clinician clears the alarm and restarts
    LATCHED_FAULT = 3  # stop; only a clinician restart of the safety function clears it


class AlarmKind(StrEnum):
    AIR_IN_LINE = "air-in-line"
    AIR_CUMULATIVE = "air-in-line-cumulative"
    OCCLUSION = "occlusion"
    RESERVOIR_EMPTY = "reservoir-empty"
    DOOR_OPEN = "door-open"
    OVER_INFUSION = "over-infusion"
    SENSOR_FAULT = "sensor-fault"
    CONTROLLER_SILENT = "controller-silent"
    WATCHDOG = "monitor-watchdog"
    CLOCK_FAULT = "clock-fault"
    MOTOR_FAULT = "motor-fault"
    SENSOR_LINK_FAULT = "sensor-link-fault"
    RESERVOIR_LOW = "reservoir-low"
    UNDER_INFUSION = "under-infusion"
    PAUSED_TOO_LONG = "paused-too-long"
    DOSE_LIMIT = "dose-limit-reached"
    INFUSION_COMPLETE = "infusion-complete"
    RECORDS_LOST = "records-lost"
    BOLUS_EXCEEDED = "bolus-exceeded"


@dataclass(frozen=True)
class AlarmRule:
    priority: Priority
    action: AlarmAction
    message: str

    @property
    def latches(self) -> bool:
        return self.action >= AlarmAction.STOP


ALARM_RULES: dict[AlarmKind, AlarmRule] = {
    AlarmKind.AIR_IN_LINE: AlarmRule(Priority.HIGH, AlarmAction.STOP, "Air in line"),
    AlarmKind.AIR_CUMULATIVE: AlarmRule(Priority.HIGH, AlarmAction.STOP, "Too much air in line (cumulative)"),
    AlarmKind.OCCLUSION: AlarmRule(Priority.HIGH, AlarmAction.STOP, "Occlusion: line pressure too high"),
    AlarmKind.RESERVOIR_EMPTY: AlarmRule(Priority.HIGH, AlarmAction.STOP, "Reservoir empty"),
    AlarmKind.DOOR_OPEN: AlarmRule(Priority.HIGH, AlarmAction.STOP, "Door open"),
    AlarmKind.OVER_INFUSION: AlarmRule(
        Priority.HIGH, AlarmAction.STOP, "Over-infusion: motor delivered more than permitted"
    ),
    AlarmKind.SENSOR_FAULT: AlarmRule(Priority.HIGH, AlarmAction.STOP, "Sensor reading missing or invalid"),
    AlarmKind.CONTROLLER_SILENT: AlarmRule(
        Priority.HIGH, AlarmAction.LATCHED_FAULT, "Pump controller stopped responding"
    ),
    AlarmKind.WATCHDOG: AlarmRule(Priority.HIGH, AlarmAction.LATCHED_FAULT, "Safety monitor overran its period"),
    AlarmKind.CLOCK_FAULT: AlarmRule(Priority.HIGH, AlarmAction.LATCHED_FAULT, "Clock fault"),
    # a failed motor write or sensor read: what the motor does or what the line shows is no longer known
    AlarmKind.MOTOR_FAULT: AlarmRule(Priority.HIGH, AlarmAction.LATCHED_FAULT, "Motor driver write failed"),
    AlarmKind.SENSOR_LINK_FAULT: AlarmRule(
        Priority.HIGH, AlarmAction.LATCHED_FAULT, "Sensor link failed or closed"
    ),
    # high priority: a nurse must come before the bag runs dry (boluses are inhibited below 1 mL, pca.py)
    AlarmKind.RESERVOIR_LOW: AlarmRule(Priority.HIGH, AlarmAction.ADVISORY, "Reservoir low"),
    AlarmKind.UNDER_INFUSION: AlarmRule(
        Priority.MEDIUM, AlarmAction.ADVISORY, "Under-infusion: motor delivered less than commanded"
    ),
    AlarmKind.PAUSED_TOO_LONG: AlarmRule(Priority.MEDIUM, AlarmAction.ADVISORY, "Infusion paused too long"),
    AlarmKind.DOSE_LIMIT: AlarmRule(Priority.LOW, AlarmAction.ADVISORY, "Dose limit reached: running at KVO"),
    AlarmKind.INFUSION_COMPLETE: AlarmRule(Priority.LOW, AlarmAction.ADVISORY, "Infusion complete: running at KVO"),
    # event-stream or audit records could not be handed on (the counts are reported once a path works)
    AlarmKind.RECORDS_LOST: AlarmRule(Priority.MEDIUM, AlarmAction.ADVISORY, "Event or audit records were lost"),
    # the prescription's patient-bolus count is used up (pca.py); basal continues
    AlarmKind.BOLUS_EXCEEDED: AlarmRule(Priority.LOW, AlarmAction.ADVISORY, "Bolus Exceeded"),
}


@dataclass(frozen=True)
class AlarmConfig:
    """Illustrative thresholds; a real device takes them from its validated configuration."""

    air_single_bubble_ul: float = 50.0
    air_cumulative_ul: float = 500.0
    air_cumulative_window_s: float = 15 * 60.0
    occlusion_pressure_mmhg: float = 600.0
    occlusion_bolus_hold_off_s: float = 5 * 60.0
    reservoir_low_ml: float = 10.0
    reservoir_empty_ml: float = 0.5
    paused_too_long_s: float = 2 * 60.0
    silence_s: float = 120.0
    over_infusion_tolerance_ml: float = 0.2
    over_infusion_fraction: float = 0.05
    under_infusion_tolerance_ml: float = 0.5
    under_infusion_fraction: float = 0.10


@dataclass(frozen=True)
class SensorReading:
    """One period's sensor values, as read by the safety monitor (the only owner of the sensors)."""

    line_pressure_mmhg: float
    largest_bubble_ul: float  # largest single bubble seen since the previous reading
    air_ul: float  # total air seen since the previous reading
    reservoir_ml: float
    door_open: bool
    motor_volume_ml: float  # cumulative volume pushed, from the motor step count

    def problems(self) -> list[str]:
        out = []
        for name in ("line_pressure_mmhg", "largest_bubble_ul", "air_ul", "reservoir_ml", "motor_volume_ml"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                out.append(f"{name} is not a finite number")
            elif value < 0:
                out.append(f"{name} is negative")
        if not isinstance(self.door_open, bool):
            out.append("door_open is not true/false")
        return out


class AirInLineDetector:
    """Single-bubble and cumulative (sliding window) air detection."""

    def __init__(self, config: AlarmConfig) -> None:
        self._config = config
        self._seen: deque[tuple[float, float]] = deque()

    def conditions(self, now: float, reading: SensorReading) -> set[AlarmKind]:
        found: set[AlarmKind] = set()
        if reading.largest_bubble_ul >= self._config.air_single_bubble_ul:
            found.add(AlarmKind.AIR_IN_LINE)
        if reading.air_ul > 0:
            self._seen.append((now, reading.air_ul))
        while self._seen and self._seen[0][0] <= now - self._config.air_cumulative_window_s:
            self._seen.popleft()
        if sum(ul for _, ul in self._seen) >= self._config.air_cumulative_ul:
            found.add(AlarmKind.AIR_CUMULATIVE)
        return found

    def reset(self) -> None:
        """Forget counted air (after a clinician cleared the air alarm and primed the line)."""
        self._seen.clear()


def sensor_conditions(config: AlarmConfig, reading: SensorReading) -> set[AlarmKind]:
    """Conditions read directly off one reading (air is handled by ``AirInLineDetector``)."""
    found: set[AlarmKind] = set()
    if reading.line_pressure_mmhg >= config.occlusion_pressure_mmhg:
        found.add(AlarmKind.OCCLUSION)
    if reading.reservoir_ml <= config.reservoir_empty_ml:
        found.add(AlarmKind.RESERVOIR_EMPTY)
    elif reading.reservoir_ml <= config.reservoir_low_ml:
        found.add(AlarmKind.RESERVOIR_LOW)
    if reading.door_open:
        found.add(AlarmKind.DOOR_OPEN)
    return found


@dataclass(frozen=True)
class ActiveAlarm:
    kind: AlarmKind
    since: float
    condition_present: bool

    @property
    def rule(self) -> AlarmRule:
        return ALARM_RULES[self.kind]


class AlarmManager:
    """Tracks which alarms are active, their latching, clearing and silence."""

    def __init__(self, config: AlarmConfig) -> None:
        self.config = config
        self._active: dict[AlarmKind, ActiveAlarm] = {}
        self._silenced_until: float | None = None
        self._silenced: set[tuple[AlarmKind, float]] = set()
        self.bolus_hold_off_until: float | None = None

    def update(self, now: float, conditions: set[AlarmKind]) -> None:
        """Apply this period's conditions: raise new alarms, drop advisories whose condition went."""
        for kind in list(self._active):
            alarm = self._active[kind]
            present = kind in conditions
            if not present and not alarm.rule.latches:
                del self._active[kind]
            elif present != alarm.condition_present:
                self._active[kind] = ActiveAlarm(kind, alarm.since, present)
        for kind in conditions:
            if kind not in self._active:
                self._active[kind] = ActiveAlarm(kind, now, True)

    def active(self) -> tuple[ActiveAlarm, ...]:
        """Active alarms, the most severe action first, then highest priority (a high-priority advisory such
        as reservoir-low never hides a stop alarm)."""
        return tuple(sorted(self._active.values(),
                            key=lambda a: (-a.rule.action, -a.rule.priority, a.since, a.kind.value)))

    def is_active(self, kind: AlarmKind) -> bool:
        return kind in self._active

    def action(self) -> AlarmAction:
        """The most severe action among active alarms (the high-priority action wins)."""
        return max((a.rule.action for a in self._active.values()), default=AlarmAction.NONE)

    def clear(self, now: float) -> list[AlarmKind]:
        """A clinician clears latched STOP alarms whose condition is gone. Latched faults and alarms whose
        condition persists stay. Returns what was cleared."""
        cleared = [
            a.kind for a in self._active.values() if a.rule.action is AlarmAction.STOP and not a.condition_present
        ]
        for kind in cleared:
            del self._active[kind]
        if AlarmKind.OCCLUSION in cleared:
            self.bolus_hold_off_until = now + self.config.occlusion_bolus_hold_off_s
        return cleared

    def clear_faults(self) -> list[AlarmKind]:
        """Clear latched faults (only on a clinician restart of the safety function)."""
        cleared = [k for k, a in self._active.items() if a.rule.action is AlarmAction.LATCHED_FAULT]
        for kind in cleared:
            del self._active[kind]
        return cleared

    def silence(self, now: float) -> None:
        """Mute the alarms active now for ``silence_s``; an alarm raised later sounds at once."""
        if not math.isfinite(now):
            raise TherapyError("time must be a finite number")
        self._silenced_until = now + self.config.silence_s
        self._silenced = {(a.kind, a.since) for a in self._active.values()}

    def audible(self, now: float) -> tuple[AlarmKind, ...]:
        """Alarms that should sound now (silence expires by itself)."""
        silenced = self._silenced_until is not None and now < self._silenced_until
        return tuple(a.kind for a in self.active() if not (silenced and (a.kind, a.since) in self._silenced))
