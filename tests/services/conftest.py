from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.crypto.keys import generate_keypair
from septum.model import Model, loads

# A small device model with the roles and actions the services act on (MODEL.md shapes).
MODEL_YAML = """
septum: 1
device: {name: test-pump}
interfaces:
  hospital_net: {kind: network, external: true, protocol: https, port: 8443, authentication: mutual-tls}
  keypad: {kind: keypad, external: true, authentication: clinician-pin}
  pca_button: {kind: button, external: true}
  stop_button: {kind: button, external: true}
  service_port: {kind: debug, external: true, enabled: false}
partitions:
  network: {owns: [hospital_net], allow: {net: true}}
  ui: {owns: [keypad, pca_button, stop_button]}
  auth: {service: auth, criticality: high, mitigation: [authenticating]}
  pump_control: {criticality: safety, heartbeat_ms: 100}
  update: {service: update}
roles:
  clinician: {authenticates_with: [pin], via: [keypad]}
  biomed: {authenticates_with: [pin, badge], via: [keypad]}
  patient: {via: [pca_button]}
  hospital_server: {kind: machine, authenticates_with: [mutual-tls], via: [hospital_net]}
actions:
  program_infusion: {handled_by: pump_control, allowed: [clinician], safety: true}
  accept_remote_order: {handled_by: pump_control, allowed: [hospital_server], requires_confirmation_by: clinician}
  patient_bolus: {handled_by: pump_control, allowed: [patient], via: [pca_button]}
  install_update: {handled_by: update, allowed: [biomed]}
  emergency_stop: {handled_by: pump_control, break_glass: true}
  silence_alarm: {handled_by: pump_control, break_glass: true, via: [stop_button]}
"""



@pytest.fixture
def audit_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, Path]:
    priv, pub = tmp_path / "signing.pem", tmp_path / "signing.pub"
    generate_keypair(priv, pub)
    return priv, pub


@pytest.fixture
def device_model() -> Model:
    return loads(MODEL_YAML)[0]
