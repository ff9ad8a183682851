"""PIN/badge provisioning (no defaults), argon2id storage, and lockout with back-off."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from septum.model import Model
from septum.services.credentials import (
    Argon2Params,
    CredentialError,
    CredentialStore,
    LockoutPolicy,
    provision,
)

# Cheap parameters (still at the floor) so the tests stay fast; production uses the RFC 9106 defaults.
FAST = Argon2Params(time_cost=1, memory_kib=8192)


@pytest.fixture
def creds(tmp_path: Path, device_model: Model) -> Path:
    path = tmp_path / "credentials.json"
    provision(path, device="test-pump", principal="nurse1", role="clinician", factor="pin", secret="480613",
              model=device_model, params=FAST)
    provision(path, device="test-pump", principal="tech1", role="biomed", factor="badge",
              secret="BADGE-7f3a9c21d4e8", model=device_model)
    return path


def test_file_holds_only_argon2id_hashes(creds: Path) -> None:
    text = creds.read_text()
    assert "480613" not in text and "BADGE-7f3a9c21d4e8" not in text
    assert text.count("$argon2id$") == 2
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600


def test_unprovisioned_device_refuses(tmp_path: Path, device_model: Model) -> None:
    store = CredentialStore.load(tmp_path / "nothing.json", device_model)
    assert store.unprovisioned_roles() == ["biomed", "clinician"]
    for secret in ("000000", "123456", "1234", "admin", "password"):
        r = store.authenticate("admin", "pin", secret, now=0.0)
        assert not r.ok and r.reason == "credentials not provisioned on this device"


def test_authenticate_and_roles(creds: Path, device_model: Model) -> None:
    store = CredentialStore.load(creds, device_model)
    assert store.unprovisioned_roles() == []
    r = store.authenticate("nurse1", "pin", "480613", now=0.0)
    assert r.ok and r.role == "clinician" and r.factor == "pin"
    assert store.authenticate("tech1", "badge", "BADGE-7f3a9c21d4e8", now=0.0).ok
    r = store.authenticate("tech1", "pin", "480613", now=0.0)
    assert not r.ok and r.audit == "factor not provisioned"


@pytest.mark.parametrize(
    ("role", "factor", "secret", "reason"),
    [
        ("clinician", "pin", "1234", "6 to 12 digits"),
        ("clinician", "pin", "111111", "repeated digit"),
        ("clinician", "pin", "345678", "run like"),
        ("clinician", "pin", "48o613", "6 to 12 digits"),
        ("clinician", "badge", "x" * 20, "does not authenticate with 'badge'"),
        ("biomed", "badge", "short", "16 to"),
        ("patient", "pin", "480613", "does not authenticate with"),
        ("janitor", "pin", "480613", "not in the model"),
    ],
)
def test_weak_or_wrong_provisioning_is_refused(
    tmp_path: Path, device_model: Model, role: str, factor: str, secret: str, reason: str
) -> None:
    with pytest.raises(CredentialError, match=reason):
        provision(tmp_path / "c.json", device="test-pump", principal="x", role=role, factor=factor,
                  secret=secret, model=device_model, params=FAST)
    assert not (tmp_path / "c.json").exists()


def test_cheap_params_and_other_device_are_refused(tmp_path: Path, device_model: Model, creds: Path) -> None:
    with pytest.raises(CredentialError, match="floor"):
        provision(tmp_path / "weak.json", device="test-pump", principal="n", role="clinician", factor="pin",
                  secret="480613", model=device_model, params=Argon2Params(time_cost=1, memory_kib=1024))
    with pytest.raises(CredentialError, match="provisioned for device"):
        provision(creds, device="other-pump", principal="n2", role="clinician", factor="pin",
                  secret="480613", model=device_model)


def test_corrupt_credential_file_is_an_error(tmp_path: Path, device_model: Model) -> None:
    bad = tmp_path / "c.json"
    bad.write_text('{"format": 1, "device": "x"')
    with pytest.raises(CredentialError, match="not a credential file"):
        CredentialStore.load(bad, device_model)


def test_brute_force_locks_out_with_growing_back_off(creds: Path, device_model: Model) -> None:
    policy = LockoutPolicy(free_attempts=3, base_s=30, max_s=600)
    store = CredentialStore.load(creds, device_model, policy)
    now = 0.0
    guesses = iter(f"{n:06d}" for n in range(100000, 999999, 7919))
    for _ in range(3):
        assert store.authenticate("nurse1", "pin", next(guesses), now).retry_after == 0
    r = store.authenticate("nurse1", "pin", next(guesses), now)
    assert not r.ok and r.retry_after == 30 and "locked out" in r.reason
    # While locked, even the right PIN is refused (and not checked).
    r = store.authenticate("nurse1", "pin", "480613", now + 29)
    assert not r.ok and r.audit == "attempt during lockout"
    waits = []
    now += 30.001
    for _ in range(6):
        r = store.authenticate("nurse1", "pin", next(guesses), now)
        waits.append(r.retry_after)
        now += r.retry_after + 0.001
    assert waits == [60, 120, 240, 480, 600, 600]
    assert store.authenticate("nurse1", "pin", "480613", now).ok
    assert store.authenticate("nurse1", "pin", "000001", now).retry_after == 0  # counter was reset


def test_unknown_principals_share_one_bounded_bucket(creds: Path, device_model: Model) -> None:
    store = CredentialStore.load(creds, device_model, LockoutPolicy(free_attempts=2, base_s=10))
    for i in range(3):
        r = store.authenticate(f"ghost{i}", "pin", "480613", 0.0)
        assert not r.ok and r.reason.startswith("bad credential")
    assert store.authenticate("ghost99", "pin", "480613", 1.0).audit == "attempt during lockout"
    assert store.authenticate("nurse1", "pin", "480613", 1.0).ok  # real users are not locked by it
    assert len(store.lockout._failures) <= 2


def test_lockout_survives_a_restart(creds: Path, device_model: Model) -> None:
    store = CredentialStore.load(creds, device_model, LockoutPolicy(free_attempts=0, base_s=100))
    store.authenticate("nurse1", "pin", "999990", 50.0)
    saved = store.lockout.snapshot(now=60.0)
    again = CredentialStore.load(creds, device_model, LockoutPolicy(free_attempts=0, base_s=100))
    again.lockout.restore(saved, now=5.0)  # new boot, new monotonic clock
    assert again.authenticate("nurse1", "pin", "480613", 90.0).audit == "attempt during lockout"
    assert again.authenticate("nurse1", "pin", "480613", 95.1).ok


@pytest.mark.parametrize(("factor", "secret"), [("retina", "x"), ("pin", ""), ("pin", "9" * 1000)])
def test_malformed_requests(creds: Path, device_model: Model, factor: str, secret: str) -> None:
    r = CredentialStore.load(creds, device_model).authenticate("nurse1", factor, secret, 0.0)
    assert not r.ok and r.reason


def test_an_unknown_principal_costs_one_argon2_run_like_a_known_one(
        creds: Path, device_model: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing must not tell who exists, on the first try after a start too. The stand-in compared for an
    unknown principal used to be hashed on first use: that try cost two argon2 runs (hash, then verify)
    against a known principal's one."""
    from argon2 import PasswordHasher

    runs: list[str] = []
    real_hash, real_verify = PasswordHasher.hash, PasswordHasher.verify

    def hash_(self: PasswordHasher, *a: object, **kw: object) -> str:
        runs.append("hash")
        return real_hash(self, *a, **kw)  # type: ignore[arg-type]

    def verify(self: PasswordHasher, stored: str, secret: str) -> bool:
        runs.append(f"verify m={self.memory_cost},t={self.time_cost}")
        return real_verify(self, stored, secret)

    monkeypatch.setattr(PasswordHasher, "hash", hash_)
    monkeypatch.setattr(PasswordHasher, "verify", verify)
    store = CredentialStore.load(creds, device_model)  # a fresh start: nothing computed yet
    first_unknown = store.authenticate("admin", "pin", "000000", now=0.0)
    unknown_runs, runs[:] = list(runs), []
    known_wrong = store.authenticate("nurse1", "pin", "000001", now=0.0)
    known_runs, runs[:] = list(runs), []
    assert not first_unknown.ok and not known_wrong.ok and first_unknown.reason == known_wrong.reason
    assert unknown_runs == known_runs == [f"verify m={FAST.memory_kib},t={FAST.time_cost}"], (unknown_runs,
                                                                                               known_runs)


def test_the_stand_in_is_a_valid_phc_string_that_matches_nothing() -> None:
    from argon2.exceptions import VerifyMismatchError

    stand_in = FAST.phc_stand_in()
    assert stand_in.startswith("$argon2id$v=19$m=8192,t=1,p=1$") and stand_in != FAST.phc_stand_in()
    with pytest.raises(VerifyMismatchError):  # not InvalidHashError: a real argon2 run was done
        FAST.hasher().verify(stand_in, "000000")
