"""Human credentials: argon2id-hashed PINs and badge tokens, provisioned per device, with lockout.

There is no default credential anywhere: a device whose provisioning file is missing has no principals,
and every role that authenticates with a PIN or badge is refused until someone provisions it
(``unprovisioned_roles`` names them so the auth partition can say so at boot). The file holds only
argon2id hashes (PHC strings with their own random salt) and is written with mode 0600.

A role's ``authenticates_with`` lists the factors it may use; any one of them authenticates.
Time is an input (``now``, monotonic seconds) so the event loop and the tests own the clock.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from septum.errors import SeptumError
from septum.model.schema import Model
from septum.staged_write import write_atomic

Factor = Literal["pin", "badge"]
FACTORS: tuple[str, ...] = ("pin", "badge")
MAX_SECRET = 256
_WEAK_PINS_SEQ = "01234567890", "09876543210"


class CredentialError(SeptumError):
    """Provisioning input or a provisioning file that must be refused; the message says why."""


class Argon2Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # RFC 9106 section 4, second recommended option (for memory-constrained systems): t=3, 64 MiB.
    # Parallelism 1 because a partition is given one CPU.
    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 1
    hash_len: int = 32
    salt_len: int = 16

    def check(self) -> None:
        # A floor so that a provisioning mistake cannot quietly make PINs cheap to brute-force offline.
        if self.memory_kib < 8192 or self.time_cost < 1 or self.salt_len < 16 or self.hash_len < 16:
            raise CredentialError("argon2 parameters below the floor (memory >= 8 MiB, salt >= 16 bytes)")

    def phc_stand_in(self) -> str:
        """An argon2id PHC string with these parameters whose salt and digest are random: verifying a secret
        against it costs exactly one argon2 run with these parameters and matches nothing (2^-256)."""
        def b64(n: int) -> str:
            return base64.b64encode(secrets.token_bytes(n)).rstrip(b"=").decode()

        return (f"$argon2id$v=19$m={self.memory_kib},t={self.time_cost},p={self.parallelism}"
                f"${b64(self.salt_len)}${b64(self.hash_len)}")

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_kib,
                              parallelism=self.parallelism, hash_len=self.hash_len,
                              salt_len=self.salt_len, type=Type.ID)


class Principal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: str
    factors: dict[str, str]  # factor -> argon2id PHC string


class CredentialFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: int
    device: str
    params: Argon2Params
    principals: dict[str, Principal] = {}


def check_secret(factor: str, secret: str) -> None:
    """Provisioning policy: refuse secrets that are trivially guessable."""
    if factor == "pin":
        if not (secret.isascii() and secret.isdigit() and 6 <= len(secret) <= 12):
            raise CredentialError("a PIN must be 6 to 12 digits")
        if len(set(secret)) == 1 or any(secret in s for s in _WEAK_PINS_SEQ):
            raise CredentialError("a PIN must not be one repeated digit or a run like 123456")
    elif factor == "badge":
        if not (secret.isascii() and secret.isprintable() and 16 <= len(secret) <= MAX_SECRET):
            raise CredentialError(f"a badge token must be 16 to {MAX_SECRET} printable ASCII characters")
    else:
        raise CredentialError(f"unknown factor {factor!r}; one of {', '.join(FACTORS)}")


def _human_roles_needing(model: Model) -> dict[str, set[str]]:
    return {
        name: set(role.authenticates_with) & set(FACTORS)
        for name, role in model.roles.items()
        if role.kind == "human" and set(role.authenticates_with) & set(FACTORS)
    }


def read_file(path: Path, data: bytes | None = None) -> CredentialFile:
    """``data``: the file's bytes when the supervisor unsealed them (secrets_at_rest.py); else read ``path``."""
    try:
        data = Path(path).read_bytes() if data is None else data
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CredentialError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        cf = msgspec.json.decode(data, type=CredentialFile)
    except msgspec.DecodeError as exc:
        raise CredentialError(f"{path}: not a credential file ({exc})") from None
    if cf.format != 1:
        raise CredentialError(f"{path}: unsupported format {cf.format}")
    cf.params.check()
    return cf


def provision(
    path: Path, *, device: str, principal: str, role: str, factor: str, secret: str, model: Model,
    params: Argon2Params | None = None,
) -> None:
    """Add or replace one factor of one principal in the device's credential file (created if absent)."""
    needs = _human_roles_needing(model)
    if role not in model.roles:
        raise CredentialError(f"role {role!r} is not in the model")
    if factor not in needs.get(role, set()):
        raise CredentialError(f"role {role!r} does not authenticate with {factor!r} in the model")
    if not principal or len(principal) > 64 or not principal.isprintable():
        raise CredentialError("principal name must be 1 to 64 printable characters")
    check_secret(factor, secret)
    try:
        cf = read_file(path)
    except FileNotFoundError:
        cf = CredentialFile(format=1, device=device, params=params or Argon2Params())
    if cf.device != device:
        raise CredentialError(f"{path}: provisioned for device {cf.device!r}, not {device!r}")
    cf.params.check()
    old = cf.principals.get(principal)
    if old is not None and old.role != role:
        raise CredentialError(f"principal {principal!r} already has role {old.role!r}")
    factors = dict(old.factors) if old else {}
    factors[factor] = cf.params.hasher().hash(secret)
    principals = {**cf.principals, principal: Principal(role=role, factors=factors)}
    write_atomic(Path(path), msgspec.json.encode(msgspec.structs.replace(cf, principals=principals)))


# ---------------------------------------------------------------------------------------------- lockout


@dataclass(frozen=True)
class LockoutPolicy:
    """``free_attempts`` failures cost nothing; each further one locks for base * 2**k, capped."""

    free_attempts: int = 3
    base_s: float = 30.0
    max_s: float = 3600.0

    def delay(self, failures: int) -> float:
        over = failures - self.free_attempts
        if over <= 0:
            return 0.0
        return min(self.max_s, self.base_s * 2 ** min(over - 1, 32))


class Lockout:
    """Failure counters per key. Keys are provisioned principals plus one shared bucket for unknown
    names, so memory is bounded by what was provisioned, whatever an attacker types."""

    def __init__(self, policy: LockoutPolicy) -> None:
        self.policy = policy
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def retry_after(self, key: str, now: float) -> float:
        return max(0.0, self._until.get(key, 0.0) - now)

    def failed(self, key: str, now: float) -> float:
        n = self._failures.get(key, 0) + 1
        self._failures[key] = n
        delay = self.policy.delay(n)
        if delay:
            self._until[key] = now + delay
        return delay

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
        self._until.pop(key, None)

    def snapshot(self, now: float) -> bytes:
        """Counters to persist, so that restarting the auth partition does not reset a lockout. Lock
        ends are stored as remaining seconds because the monotonic clock does not survive a reboot."""
        remaining = {k: t - now for k, t in self._until.items() if t > now}
        return msgspec.json.encode({"failures": self._failures, "until": remaining})

    def restore(self, data: bytes, now: float) -> None:
        try:
            state = msgspec.json.decode(data, type=dict[str, dict[str, float]])
            self._failures = {k: int(v) for k, v in state.get("failures", {}).items()}
            self._until = {k: now + v for k, v in state.get("until", {}).items()}
        except (msgspec.DecodeError, ValueError) as exc:
            raise CredentialError(f"lockout state unreadable ({exc})") from None


# ---------------------------------------------------------------------------------------------- verify

UNKNOWN = "\x00unknown"


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    principal: str
    role: str | None = None
    factor: str | None = None
    reason: str = ""
    retry_after: float = 0.0
    audit: str = ""  # the detail the audit record gets (more than the person at the keypad is told)


class CredentialStore:
    """Loaded per device at boot of the auth partition. ``path`` missing means nothing is provisioned."""

    def __init__(self, model: Model, creds: CredentialFile | None, policy: LockoutPolicy | None = None):
        self.model = model
        self.file = creds
        self.lockout = Lockout(policy or LockoutPolicy())
        self._dummy: str | None = None
        if creds is not None:
            needs = _human_roles_needing(model)
            for name, p in creds.principals.items():
                if p.role not in needs:
                    raise CredentialError(f"principal {name!r} has role {p.role!r}, which needs no PIN or badge")
                for f in p.factors:
                    if f not in needs[p.role]:
                        raise CredentialError(f"principal {name!r}: role {p.role!r} does not use factor {f!r}")

    @classmethod
    def load(cls, path: Path, model: Model, policy: LockoutPolicy | None = None,
             data: bytes | None = None) -> CredentialStore:
        try:
            creds = read_file(path, data)
        except FileNotFoundError:
            creds = None
        return cls(model, creds, policy)

    def unprovisioned_roles(self) -> list[str]:
        have = {p.role for p in self.file.principals.values()} if self.file else set()
        return sorted(set(_human_roles_needing(self.model)) - have)

    def _dummy_verify(self, secret: str) -> None:
        # Spend the same argon2 cost for unknown principals so timing does not reveal who exists.
        # The stand-in is a PHC string with random salt and digest, not a hash computed here: computing one
        # on first use made the first unknown principal after every start cost two argon2 runs against a
        # known one's one (a timing oracle for who exists, and twice the time auth's loop is busy).
        params = self.file.params if self.file else Argon2Params()
        if self._dummy is None:
            self._dummy = params.phc_stand_in()
        try:
            params.hasher().verify(self._dummy, secret)
        except VerificationError:
            pass

    def authenticate(self, principal: str, factor: str, secret: str, now: float) -> AuthResult:
        if factor not in FACTORS:
            return AuthResult(False, principal, reason=f"unknown factor {factor!r}", audit="bad factor")
        if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET:
            return AuthResult(False, principal, reason="malformed credential", audit="malformed secret")
        if self.file is None:
            return AuthResult(False, principal, reason="credentials not provisioned on this device",
                              audit="no credential file")
        known = self.file.principals.get(principal)
        key = principal if known is not None else UNKNOWN
        wait = self.lockout.retry_after(key, now)
        if wait > 0:
            # While locked, the secret is not even checked: a locked account gives no oracle.
            return AuthResult(False, principal, reason=f"locked out: retry in {wait:.0f} s",
                              retry_after=wait, audit="attempt during lockout")
        stored = known.factors.get(factor) if known is not None else None
        matched = False
        if stored is None:
            self._dummy_verify(secret)
        else:
            try:
                matched = self.file.params.hasher().verify(stored, secret)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                matched = False
        if matched and known is not None:
            self.lockout.succeeded(key)
            return AuthResult(True, principal, role=known.role, factor=factor, audit="authenticated")
        delay = self.lockout.failed(key, now)
        why = "unknown principal" if known is None else ("factor not provisioned" if stored is None else "wrong secret")
        reason = "bad credential" + (f"; locked out for {delay:.0f} s" if delay else "")
        return AuthResult(False, principal, reason=reason, retry_after=delay, audit=why)
