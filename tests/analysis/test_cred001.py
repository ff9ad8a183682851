"""CRED001: literal secrets in partition configuration, however nested, found by key name and by value shape;
policy settings and references to provisioned secrets are not findings."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

import msgspec
import pytest

from septum.analysis import Finding, check
from septum.model import load, loads
from septum.model.schema import Model

PUMP = Path(__file__).parents[2] / "examples" / "infusion_pump" / "model.yaml"


def _with_config(config: dict[str, Any], partition: str = "network") -> list[Finding]:
    """The pump with ``partition``'s configuration replaced. The model file format keeps configuration flat,
    so nested values reach the rule through the Python API (a model built in code, or a future format)."""
    model, source = load(PUMP)
    parts = dict(model.partitions)
    parts[partition] = msgspec.structs.replace(parts[partition], config=config)
    model = msgspec.structs.replace(model, partitions=parts)
    return [f for f in check(model, source).findings if f.rule == "CRED001"]


def _messages(config: dict[str, Any]) -> list[str]:
    return [f.message for f in _with_config(config)]


NESTED_SECRETS = [
    ({"db": {"password": "x"}}, "config 'db.password' holds a literal secret"),
    ({"db": {"primary": {"conn": {"passwd": "hunter2"}}}}, "config 'db.primary.conn.passwd' holds a literal secret"),
    ({"servers": [{"host": "a"}, {"host": "b", "api_key": "k-123"}]},
     "config 'servers[1].api_key' holds a literal secret"),
    ({"tokens": ["t1", "t2"]}, "config 'tokens[0]' holds a literal secret"),
    ({"pin_code": "1234"}, "config 'pin_code' holds a literal PIN"),
    ({"pin_code": 482913}, "config 'pin_code' holds a literal PIN"),
    ({"service": {"defaultPin": "0000"}}, "config 'service.defaultPin' holds a literal PIN"),
    ({"pins": ["1234", "9876"]}, "config 'pins[0]' holds a literal PIN"),
    ({"adminPassword": "pump"}, "config 'adminPassword' holds a literal secret"),
    ({"hl7": {"client-secret": "s3cr3t"}}, "config 'hl7.client-secret' holds a literal secret"),
    ({"tls": {"privateKey": "abc"}}, "config 'tls.privateKey' holds a literal secret"),
    ({"wifi": {"psk": "correct horse"}}, "config 'wifi.psk' holds a literal secret"),
    ({"keys": [{"pem": "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE..."}]},
     "config 'keys[0].pem' holds a private key or a known token format"),
    ({"ci": {"gh": "ghp_" + "A1b2" * 9}}, "config 'ci.gh' holds a private key or a known token format"),
    ({"vendor": {"blob": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"}},
     "config 'vendor.blob' holds a random-looking token (a key or password?)"),
]


@pytest.mark.parametrize(("config", "message"), NESTED_SECRETS)
def test_nested_and_shaped_secrets_are_found(config: dict[str, Any], message: str) -> None:
    found = _with_config(config)
    assert [f.message for f in found][:1] == [f"partition 'network' {message}"]
    assert all(f.primary.name == "network" for f in found)


def test_every_secret_in_a_list_is_reported() -> None:
    assert sorted(_messages({"pins": ["1234", "9876"], "db": [{"password": "a"}, {"password": "b"}]})) == sorted([
        "partition 'network' config 'pins[0]' holds a literal PIN",
        "partition 'network' config 'pins[1]' holds a literal PIN",
        "partition 'network' config 'db[0].password' holds a literal secret",
        "partition 'network' config 'db[1].password' holds a literal secret",
    ])


NOT_SECRETS = [
    {"db": {"password": "provisioned:db_admin"}},  # a reference, provisioned per device
    {"db": {"password": "env:DB_PASSWORD", "token": "file:/data/token"}},
    {"db": {"password": ""}},
    {"auth": {"pin_attempts": 5, "pin_lockout_ms": 30000, "pin_min_len": 6}},  # PIN policy, not a PIN
    {"pin_code": "not-set"},  # a PIN is digits
    {"pin": 12},  # too short to be a PIN
    {"token_ttl_s": 3600, "password_min_len": 8, "secret_rotation_days": 90, "token_required": True},
    {"route.orders_in": "accept_remote_order", "forward.clear_fault": "fault_reset"},
    {"cert": {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},  # a fingerprint
    {"names": ["InfusionPumpController2026", "HospitalNetworkGatewayV3", "X509CertificateValidatorImpl"]},
    {"entry": "septum_pump.network:main", "bypass": "1234", "spinner": "12345"},  # words that contain 'pin'/'pass'
]


@pytest.mark.parametrize("config", NOT_SECRETS)
def test_policy_settings_and_references_are_not_findings(config: dict[str, Any]) -> None:
    assert _messages(config) == []


def test_random_tokens_are_found_and_identifiers_are_not() -> None:
    # the shape heuristic over many real random tokens: the measured detection is ~97%, asserted at 90%
    tokens = [secrets.token_urlsafe(n) for n in (18, 24, 32) for _ in range(50)]
    tokens += [base64.b64encode(secrets.token_bytes(n)).decode() for n in (18, 24, 32) for _ in range(50)]
    found = _with_config({"vendor": {f"v{i}": t for i, t in enumerate(tokens)}})
    assert len(found) >= 0.9 * len(tokens)


def test_flat_config_from_a_model_file(tmp_path: Path) -> None:
    text = PUMP.read_text().replace("route.orders_in: accept_remote_order",
                                    "route.orders_in: accept_remote_order\n      service_pin_code: '2468'")
    model, source = loads(text, "m.yaml")
    (f,) = [f for f in check(model, source).findings if f.rule == "CRED001"]
    assert f.message == "partition 'auth' config 'service_pin_code' holds a literal PIN"
    assert f.primary.name == "auth"


def test_a_pem_in_config_is_reported_once() -> None:
    # the model-wide value scan leaves configuration to the per-key walk, so one secret is one finding
    assert len(_with_config({"tls": {"private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIB"}})) == 1


def test_reference_pump_stays_clean() -> None:
    model, source = load(PUMP)
    assert isinstance(model, Model)
    assert [f for f in check(model, source).findings if f.rule == "CRED001"] == []
