"""Shared fixtures for the pump therapy tests: the shipped drug library and typical requests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from septum_pump.therapy.drug_library import DrugLibrary, load_drug_library
from septum_pump.therapy.program import Origin, PcaRequest, Principal, ProgramRequest
from septum_pump.therapy.units import AmountUnit, Concentration, DoseUnit

LIBRARY_PATH = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump" / "drug_library.yaml"
NURSE = Principal(id="nurse-7", role="clinician", authenticated=True)


@pytest.fixture(scope="session")
def library_bytes() -> bytes:
    return LIBRARY_PATH.read_bytes()


@pytest.fixture(scope="session")
def library(library_bytes: bytes) -> DrugLibrary:
    return load_drug_library(library_bytes)


def morphine_pca(**changes: object) -> ProgramRequest:
    """Morphine 1 mg/mL on adult-med-surg: basal 0.5 mg/h, 1 mg demand, 10 min lockout, 8 mg/h, 25 mg/4 h."""
    base = ProgramRequest(
        drug_id="morphine-pca",
        care_area="adult-med-surg",
        concentration=Concentration(1, AmountUnit.MG, 1),
        dose_unit=DoseUnit.MG_H,
        rate=0.5,
        vtbi_ml=50,
        pca=PcaRequest(demand_dose=1, lockout_min=10, max_boluses_per_hour=4, limit_1h=8, limit_4h=25),
        origin=Origin.LOCAL_KEYPAD,
        principal=NURSE,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def heparin(**changes: object) -> ProgramRequest:
    base = ProgramRequest(
        drug_id="heparin",
        care_area="adult-med-surg",
        concentration=Concentration(25000, AmountUnit.UNITS, 250),
        dose_unit=DoseUnit.UNITS_H,
        rate=1000,
        vtbi_ml=250,
        principal=NURSE,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def dopamine(**changes: object) -> ProgramRequest:
    base = ProgramRequest(
        drug_id="dopamine",
        care_area="icu",
        concentration=Concentration(400, AmountUnit.MG, 250),
        dose_unit=DoseUnit.MCG_KG_MIN,
        rate=5,
        vtbi_ml=250,
        weight_kg=80,
        principal=NURSE,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class Rig:
    """A controller and a monitor wired as the partitions will be, with an ideal simulated motor.

    ``run(seconds)`` advances one control period at a time; the motor delivers exactly what the monitor
    permits (the monitor owns the motor). Nothing sleeps: time is just a number.
    """

    def __init__(self, library: DrugLibrary, period_s: float = 1.0, now: float = 0.0) -> None:
        from septum_pump.therapy.monitor import MonitorConfig, SafetyMonitor
        from septum_pump.therapy.state_machine import Controller, ControllerConfig

        self.now = now
        self.period = period_s
        self.controller = Controller(library, ControllerConfig(period_s=period_s), now=now)
        self.monitor = SafetyMonitor(
            library,
            MonitorConfig(period_s=period_s, heartbeat_timeout_s=3 * period_s, watchdog_timeout_s=3 * period_s),
            now=now,
        )
        self.motor_ml = 0.0
        self.reservoir_ml = 100.0
        self.pressure = 20.0
        self.door_open = False
        self.bubble_ul = 0.0
        self.decisions: list = []
        self.controller_alive = True
        self.motor_factor = 1.0  # what the mechanism really pushes per mL the monitor permits

    def start(self, request: ProgramRequest) -> None:
        decision = self.controller.program_infusion(request, self.now)
        assert decision.accepted, decision.summary()
        assert self.controller.program is not None
        assert self.monitor.accept_program(self.controller.program, self.now) == ()
        assert self.controller.request_start(NURSE, self.now).ok
        assert self.controller.confirm_start(NURSE, self.now).ok

    def sensors(self):
        from septum_pump.therapy.alarms import SensorReading

        return SensorReading(
            line_pressure_mmhg=self.pressure,
            largest_bubble_ul=self.bubble_ul,
            air_ul=self.bubble_ul,
            reservoir_ml=self.reservoir_ml,
            door_open=self.door_open,
            motor_volume_ml=self.motor_ml,
        )

    def period_step(self):
        command = self.controller.tick(self.now) if self.controller_alive else None
        decision = self.monitor.step(self.now, command, self.sensors())
        if decision.action >= 2 and self.controller_alive:  # AlarmAction.STOP
            self.controller.on_alarm(decision.action, self.now)
        volume = decision.rate_ml_h * self.period / 3600
        self.motor_ml += volume * self.motor_factor
        self.reservoir_ml = max(0.0, self.reservoir_ml - volume)
        self.decisions.append(decision)
        self.now += self.period
        return decision

    def run(self, seconds: float):
        last = None
        for _ in range(round(seconds / self.period)):
            last = self.period_step()
        return last

    def press(self):
        from septum_pump.therapy.pca import BolusSource

        return self.controller.request_bolus(BolusSource.PCA_BUTTON, self.now, self.monitor.bolus_hold_off_until)
