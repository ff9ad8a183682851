"""Requests decided against the model's roles and actions."""

from __future__ import annotations

import pytest

from septum.model import Model
from septum.services.authorize import ActionRequest, Authorizer, Principal

NURSE = Principal("nurse1", "clinician", "pin")
TECH = Principal("tech1", "biomed", "badge")
SERVER = Principal("his.example.org", "hospital_server", "mutual-tls")
PATIENT = Principal("bed-12", "patient")


def test_allowed_requests(device_model: Model) -> None:
    a = Authorizer(device_model)
    d = a.decide(ActionRequest("program_infusion", "keypad", NURSE))
    assert d.allow and d.handled_by == "pump_control" and d.safety and not d.must_audit_and_alert
    d = a.decide(ActionRequest("accept_remote_order", "hospital_net", SERVER))
    assert d.allow and d.requires_confirmation_by == "clinician"
    assert a.decide(ActionRequest("install_update", "keypad", TECH)).allow
    assert a.decide(ActionRequest("patient_bolus", "pca_button", PATIENT)).allow


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        (ActionRequest("program_infusion", "keypad", None), "needs an authenticated principal"),
        (ActionRequest("program_infusion", "keypad", PATIENT), "may not perform"),
        (ActionRequest("program_infusion", "hospital_net", NURSE), "does not act via 'hospital_net'"),
        (ActionRequest("program_infusion", "keypad", Principal("n", "clinician", None)), "must authenticate"),
        (ActionRequest("program_infusion", "keypad", Principal("n", "clinician", "badge")), "must authenticate"),
        (ActionRequest("patient_bolus", "keypad", PATIENT), "not accepted via 'keypad'"),
        (ActionRequest("install_update", "service_port", TECH), "disabled"),
        (ActionRequest("install_update", "usb0", TECH), "unknown interface"),
        (ActionRequest("rm_rf", "keypad", TECH), "unknown action"),
        (ActionRequest("program_infusion", "keypad", Principal("x", "root", "pin")), "not in the model"),
        (ActionRequest("accept_remote_order", "hospital_net", NURSE), "may not perform"),
    ],
)
def test_denied_with_reason(device_model: Model, req: ActionRequest, reason: str) -> None:
    d = Authorizer(device_model).decide(req)
    assert not d.allow and reason in d.reason


def test_break_glass_needs_no_login_but_is_always_flagged(device_model: Model) -> None:
    a = Authorizer(device_model)
    for who in (None, NURSE):
        d = a.decide(ActionRequest("emergency_stop", "keypad", who))
        assert d.allow and d.must_audit_and_alert and d.handled_by == "pump_control"
    d = a.decide(ActionRequest("silence_alarm", "stop_button"))
    assert d.allow and d.must_audit_and_alert
    # Not from anywhere: the action's 'via' is respected, and no-login from the network is refused.
    d = a.decide(ActionRequest("silence_alarm", "keypad"))
    assert not d.allow and d.must_audit_and_alert
    d = a.decide(ActionRequest("emergency_stop", "hospital_net"))
    assert not d.allow and "network" in d.reason and d.must_audit_and_alert
