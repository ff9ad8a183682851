import pytest
from septum_pump.therapy.ledger import DeliveryLedger
from septum_pump.therapy.pca import BolusDenial, BolusSource
from septum_pump.therapy.program import PcaRequest

from .conftest import NURSE, Rig, morphine_pca

PCA = PcaRequest(demand_dose=1, lockout_min=10, max_boluses_per_hour=4, limit_1h=8, limit_4h=25)


def test_ledger_counts_segments_by_their_delivery_time():
    ledger = DeliveryLedger()
    ledger.record("m", 0, 3600, 1.0, 2.0)  # 1 mL over the first hour, 2 mg/mL
    ledger.record("m", 3600, 3636, 100.0, 2.0, bolus=True)  # 1 mL in 36 s
    assert ledger.amount_in_window("m", 3636, 3600) == pytest.approx(2 * (1 + 1 - 36 / 3600))
    assert ledger.amount_between("m", 1800, 3618) == pytest.approx(2 * (0.5 + 0.5))
    assert ledger.amount_between("other", 0, 4000) == 0


def test_only_the_physical_button_makes_a_patient_bolus(library):
    rig = Rig(library)
    rig.start(morphine_pca())
    for source in (BolusSource.KEYPAD, BolusSource.NETWORK, "pca-button"):
        assert rig.controller.request_bolus(source, rig.now).denial is BolusDenial.NOT_PATIENT_BUTTON
    assert rig.press().granted


def test_bolus_delivers_the_demand_dose_then_lockout(library):
    rig = Rig(library)
    rig.start(morphine_pca(rate=0))
    assert rig.press().granted
    rig.run(120)  # 1 mL at 60 mL/h takes 60 s
    assert rig.monitor.delivered_ml == pytest.approx(1.0)
    assert rig.press().denial is BolusDenial.LOCKOUT
    rig.run(600 - 120 - 1)
    assert rig.press().denial is BolusDenial.LOCKOUT  # lockout runs from the start of the last bolus
    rig.run(1)
    assert rig.press().granted


def test_max_boluses_per_hour(library):
    rig = Rig(library)
    pca = PcaRequest(demand_dose=1, lockout_min=6, max_boluses_per_hour=2, limit_1h=8, limit_4h=25)
    rig.start(morphine_pca(rate=0, pca=pca))
    for _ in range(2):
        assert rig.press().granted
        rig.run(360)
    assert rig.press().denial is BolusDenial.MAX_PER_HOUR
    rig.run(3600 - 720)  # the first bolus leaves the one-hour window
    assert rig.press().granted


def test_one_hour_limit_counts_basal_and_denies_before_the_motor_moves(library):
    rig = Rig(library)
    pca = PcaRequest(demand_dose=2, lockout_min=6, max_boluses_per_hour=6, limit_1h=5, limit_4h=20)
    rig.start(morphine_pca(rate=1, pca=pca))  # 1 mg/h basal
    assert rig.press().granted
    rig.run(360)
    assert rig.press().granted
    rig.run(360)
    # basal 10 min (~0.17 mg) + 4 mg of boluses: one more 2 mg demand would exceed 5 mg
    before = rig.monitor.delivered_ml
    assert rig.press().denial is BolusDenial.LIMIT_1H
    rig.run(1)
    assert rig.monitor.delivered_ml - before == pytest.approx(1 / 3600)  # only basal moved


def test_four_hour_limit(library):
    rig = Rig(library, period_s=5)
    pca = PcaRequest(demand_dose=2, lockout_min=6, max_boluses_per_hour=6, limit_1h=8, limit_4h=10)
    rig.start(morphine_pca(rate=0, pca=pca))
    granted = 0
    for _ in range(12):
        granted += rig.press().granted
        rig.run(1200)
    assert granted == 5  # 10 mg / 2 mg per 4 h
    assert rig.press().denial is BolusDenial.LIMIT_4H


def test_bolus_stops_at_limit_and_pump_drops_to_kvo(library):
    rig = Rig(library)
    rig.start(morphine_pca(rate=1, pca=PCA))  # 1 mg/h basal, 8 mg / 1 h
    rig.run(3600)  # 1 mg in the last hour
    assert rig.press().granted  # 1 + 1 <= 8
    rig.run(30)  # half of the 1 mL bolus
    # A clinician lowers the 1-hour limit during the bolus, below what the last hour already holds
    # (~0.99 mg basal + 0.5 mg bolus): the bolus must stop at once and delivery drop to KVO or less.
    lower = PcaRequest(demand_dose=1, lockout_min=10, max_boluses_per_hour=4, limit_1h=1.2, limit_4h=25)
    assert rig.controller.program_infusion(morphine_pca(rate=1, pca=lower), rig.now).accepted
    assert rig.controller.confirm_edit(NURSE, rig.now).ok
    assert rig.monitor.accept_program(rig.controller.program, rig.now) == ()
    rig.run(5)
    bolus_ml = sum(s.volume_ml for s in rig.monitor.ledger.segments() if s.bolus)
    assert bolus_ml == pytest.approx(0.5, abs=0.02)  # stopped early; counts what was delivered
    assert rig.monitor.pca.active is None and rig.controller.pca.active is None
    assert all(d.rate_ml_h <= 0.5 + 1e-9 for d in rig.decisions[-5:])  # KVO, or less with no room
    assert any(a.kind.value == "dose-limit-reached" for a in rig.decisions[-1].alarms)
    edit_time = rig.now - 5
    over = rig.monitor.ledger.amount_in_window("morphine-pca", edit_time, 3600)
    # The oldest basal slides out; delivery resumes only inside the new limit.
    rig.run(3600)
    for t in range(round(edit_time), round(rig.now), 5):
        assert rig.monitor.ledger.amount_in_window("morphine-pca", t, 3600) <= max(1.2, over) + 1e-9
    assert rig.decisions[-1].rate_ml_h == pytest.approx(1.0) or rig.decisions[-2].rate_ml_h == pytest.approx(1.0)


def test_a_partially_delivered_bolus_counts_what_was_delivered(library):
    rig = Rig(library)
    pca = PcaRequest(demand_dose=2, lockout_min=10, max_boluses_per_hour=4, limit_1h=2.5, limit_4h=10)
    rig.start(morphine_pca(rate=0.5, pca=pca))
    rig.run(1800)  # 0.25 mg basal
    assert rig.press().granted  # 0.25 + 2 <= 2.5
    rig.run(30)  # half the bolus (60 mL/h for 30 s = 0.5 mL)
    assert rig.controller.pause(NURSE, rig.now).ok
    rig.run(10)
    bolus_ml = sum(s.volume_ml for s in rig.monitor.ledger.segments() if s.bolus)
    assert bolus_ml == pytest.approx(0.5, abs=0.02)
    assert rig.monitor.pca.active is None


def test_no_bolus_when_not_running_or_not_pca(library):
    from .conftest import heparin

    rig = Rig(library)
    assert rig.press().denial is BolusDenial.NOT_PCA
    rig.start(heparin())
    assert rig.press().denial is BolusDenial.NOT_PCA
