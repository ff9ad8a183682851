"""pump_control's gate on starting: what the safety monitor reports decides whether a start may be armed.

Pure and small on purpose: the seL4 core mirrors it (see /work/helpers/monitor-changes.md). pump_control
refuses to arm or confirm a start (or a resume) while the monitor reports a latched fault or an alarm that
stops the motor, e.g. an open door: acknowledging "running" while the monitor holds the motor is a lie to
the clinician. The monitor holds the motor whatever pump_control does; this gate only makes the screen
tell the truth and keeps the controller out of RUNNING.
"""

from __future__ import annotations

from .alarms import ALARM_RULES, AlarmAction, AlarmKind


def start_refusal(monitor_alarm: str, monitor_priority: str, latched_fault: bool) -> str | None:
    """Why a start must be refused now, or None. ``monitor_alarm`` is the governing alarm the monitor reports
    (the one with the most severe action); an alarm kind this code does not know counts as a stop alarm
    when it is high priority."""
    if latched_fault:
        return f"safety fault latched at the safety monitor ({monitor_alarm or 'fault'}): a clinician must clear it"
    if not monitor_alarm:
        return None
    try:
        action = ALARM_RULES[AlarmKind(monitor_alarm)].action
    except ValueError:
        action = AlarmAction.STOP if monitor_priority == "high" else AlarmAction.ADVISORY
    if action >= AlarmAction.STOP:
        return f"alarm active at the safety monitor: {monitor_alarm}"
    return None
