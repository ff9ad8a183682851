"""Operational records for reviewers (``septum_pump.operational_log``): one every period of device time and
at every mode change, with UTC time, patient, prescription, mode and rate; alarm records with the remaining
volume, once per new alarm."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from septum_pump.operational_log import OperationalLog, Snapshot


def _snap(mode: str = "running", **over: Any) -> Snapshot:
    base = dict(mode=mode, patient_id="MRN-42", drug="normal-saline", concentration="1 mL/mL", dose_rate=50.0,
                dose_unit="mL/h", vtbi_ml=100.0, rate_ml_h=50.0, delivered_ml=30.0)
    return Snapshot(**(base | over))  # type: ignore[arg-type]


class Sink:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, event: str, severity: str, **fields: Any) -> None:
        self.records.append((event, severity, fields))


def test_periodic_and_mode_change_records() -> None:
    sink = Sink()
    log = OperationalLog(sink, period_s=300.0, clock=lambda: "2026-12-01T10:00:00.000+00:00")
    assert log.tick(0.0, _snap("idle"))  # the first state is a mode change
    assert not log.tick(299.0, _snap("idle"))
    assert log.tick(300.0, _snap("idle"))  # the period is up
    assert log.tick(310.0, _snap("running"))  # mode change at once
    assert not log.tick(609.0, _snap("running"))
    assert log.tick(610.0, _snap("running"))
    whys = [f["why"] for _, _, f in sink.records]
    assert whys == ["mode-change", "periodic", "mode-change", "periodic"]
    event, _, fields = sink.records[-1]
    assert event == "operational"
    assert fields["utc"].endswith("+00:00") and fields["patient_id"] == "MRN-42" and fields["mode"] == "running"
    assert fields["rate_ml_h"] == 50.0 and fields["drug"] == "normal-saline" and fields["dose_unit"] == "mL/h"


def test_no_gap_longer_than_the_period() -> None:
    sink = Sink()
    log = OperationalLog(sink, period_s=300.0)
    times = [t * 7.0 for t in range(1000)]  # a control loop, 7 s apart, for ~2 h
    for t in times:
        log.tick(t, _snap())
    at = [f["device_s"] for _, _, f in sink.records]
    assert at[0] == 0.0 and max(b - a for a, b in itertools.pairwise(at)) < 300.0 + 7.0


def test_alarm_record_carries_the_remaining_volume_once() -> None:
    sink = Sink()
    log = OperationalLog(sink)
    assert log.alarm("occlusion", "high", _snap("alarm", delivered_ml=30.0, vtbi_ml=100.0), reservoir_ml=220.0)
    assert not log.alarm("occlusion", "high", _snap("alarm"), reservoir_ml=220.0)  # still the same alarm
    assert not log.alarm("", "none", _snap(), reservoir_ml=220.0)
    assert log.alarm("occlusion", "high", _snap("alarm"), reservoir_ml=219.0)  # raised again later
    event, severity, fields = sink.records[0]
    assert (event, severity) == ("alarm_raised", "alert")
    assert fields["remaining_vtbi_ml"] == 70.0 and fields["reservoir_ml"] == 220.0 and fields["alarm"] == "occlusion"


def test_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="operational_record_s"):
        OperationalLog(Sink(), period_s=0)
