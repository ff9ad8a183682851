import pytest
from septum_pump.therapy.alarms import (
    ALARM_RULES,
    AirInLineDetector,
    AlarmAction,
    AlarmConfig,
    AlarmKind,
    AlarmManager,
    Priority,
    SensorReading,
    sensor_conditions,
)

CFG = AlarmConfig()


def reading(**changes):
    base = dict(
        line_pressure_mmhg=50, largest_bubble_ul=0, air_ul=0, reservoir_ml=50, door_open=False, motor_volume_ml=0
    )
    base.update(changes)
    return SensorReading(**base)


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({"line_pressure_mmhg": 600}, AlarmKind.OCCLUSION),
        ({"reservoir_ml": 0.5}, AlarmKind.RESERVOIR_EMPTY),
        ({"reservoir_ml": 10}, AlarmKind.RESERVOIR_LOW),
        ({"door_open": True}, AlarmKind.DOOR_OPEN),
    ],
)
def test_sensor_thresholds(changes, kind):
    assert kind in sensor_conditions(CFG, reading(**changes))
    assert sensor_conditions(CFG, reading()) == set()


def test_just_below_thresholds_is_quiet():
    assert sensor_conditions(CFG, reading(line_pressure_mmhg=599.9, reservoir_ml=10.1)) == set()


def test_single_bubble_and_cumulative_air():
    air = AirInLineDetector(CFG)
    assert AlarmKind.AIR_IN_LINE in air.conditions(0, reading(largest_bubble_ul=50, air_ul=50))
    air = AirInLineDetector(CFG)
    found = set()
    for t in range(0, 900, 60):  # 15 small bubbles of 40 uL, each below the single-bubble threshold
        found |= air.conditions(t, reading(largest_bubble_ul=40, air_ul=40))
    assert found == {AlarmKind.AIR_CUMULATIVE}
    slow = AirInLineDetector(CFG)
    for t in range(0, 20000, 120):  # the same bubbles spread out never add up within 15 minutes
        assert slow.conditions(t, reading(largest_bubble_ul=40, air_ul=40)) == set()


def test_priorities_and_the_most_severe_action_wins():
    manager = AlarmManager(CFG)
    manager.update(0, {AlarmKind.RESERVOIR_LOW, AlarmKind.PAUSED_TOO_LONG})
    assert manager.action() is AlarmAction.ADVISORY
    manager.update(1, {AlarmKind.RESERVOIR_LOW, AlarmKind.OCCLUSION})
    assert manager.action() is AlarmAction.STOP
    assert manager.active()[0].kind is AlarmKind.OCCLUSION
    assert ALARM_RULES[AlarmKind.OCCLUSION].priority is Priority.HIGH
    assert ALARM_RULES[AlarmKind.UNDER_INFUSION].action is AlarmAction.ADVISORY
    assert ALARM_RULES[AlarmKind.OVER_INFUSION].action is AlarmAction.STOP


def test_advisories_clear_themselves_stop_alarms_latch_until_a_clinician_clears():
    manager = AlarmManager(CFG)
    manager.update(0, {AlarmKind.RESERVOIR_LOW, AlarmKind.DOOR_OPEN})
    manager.update(1, set())
    assert not manager.is_active(AlarmKind.RESERVOIR_LOW)
    assert manager.is_active(AlarmKind.DOOR_OPEN)  # the door closed, but a person must see it
    assert manager.action() is AlarmAction.STOP
    assert manager.clear(2) == [AlarmKind.DOOR_OPEN]
    assert manager.action() is AlarmAction.NONE


def test_an_alarm_whose_condition_persists_cannot_be_cleared():
    manager = AlarmManager(CFG)
    manager.update(0, {AlarmKind.OCCLUSION})
    assert manager.clear(1) == []
    assert manager.is_active(AlarmKind.OCCLUSION)


def test_latched_faults_need_a_restart_not_a_clear():
    manager = AlarmManager(CFG)
    manager.update(0, {AlarmKind.CONTROLLER_SILENT})
    manager.update(1, set())
    assert manager.clear(2) == []
    assert manager.action() is AlarmAction.LATCHED_FAULT
    assert manager.clear_faults() == [AlarmKind.CONTROLLER_SILENT]


def test_no_bolus_right_after_an_occlusion_is_cleared():
    manager = AlarmManager(CFG)
    manager.update(0, {AlarmKind.OCCLUSION})
    manager.update(5, set())
    manager.clear(10)
    assert manager.bolus_hold_off_until == 10 + CFG.occlusion_bolus_hold_off_s


def test_silence_mutes_then_expires_and_never_changes_the_action():
    manager = AlarmManager(CFG)
    manager.update(0, {AlarmKind.OCCLUSION})
    manager.silence(10)
    assert manager.audible(11) == ()
    assert manager.action() is AlarmAction.STOP
    assert manager.audible(10 + CFG.silence_s) == (AlarmKind.OCCLUSION,)


def test_a_new_alarm_sounds_during_silence():
    manager = AlarmManager(CFG)
    manager.update(0, {AlarmKind.RESERVOIR_LOW})
    manager.silence(1)
    manager.update(2, {AlarmKind.RESERVOIR_LOW, AlarmKind.AIR_IN_LINE})
    assert manager.audible(3) == (AlarmKind.AIR_IN_LINE,)


def test_bad_sensor_values_are_reported():
    assert reading(line_pressure_mmhg=float("nan")).problems()
    assert reading(reservoir_ml=-1).problems()
    assert reading(door_open="no").problems()
    assert reading(air_ul=True).problems()
    assert reading().problems() == []
