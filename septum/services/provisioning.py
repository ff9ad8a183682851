"""Provision one device from its model: a folder per partition that the runtime copies into its data dir.

    result = provision_device("model.yaml", out_dir, clinicians=["nurse1"], drug_library=(data, 7))
    result.pins            # {"nurse1": "482913"}: generated, shown once, stored only as argon2id hashes
    result.folders         # {"auth": out/auth, "audit": out/audit, ...}: pass as Supervisor(provision=...)

What goes where (nothing is built in; every secret is generated here, per device):

* ``auth``: ``credentials.json`` (argon2id hashes of the generated PINs), ``hospital-ca.pem`` and
  ``machine_pins.json`` (certificate identity -> machine role) when a hospital CA is given.
* ``audit``: ``audit.key`` (Ed25519 checkpoint key); ``audit.pub`` is also written to ``out_dir`` for
  ``septum audit verify``.
* ``update``: ``manufacturer.pub`` (the trusted update key), ``versions.json`` (anti-rollback floor) and
  ``initial/drug_library.sup`` (a signed bundle of the initial drug library, when one is given).
* every partition that receives ``DrugLibrary`` from the update service: ``manufacturer.pub``.

When no manufacturer key is given one is generated into ``out_dir/manufacturer/`` (a test or demo
convenience; a real manufacturer keeps its signing key off the device and passes it in).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.crypto.keys import generate_keypair, load_private_key, private_pem
from septum.crypto.secrets_at_rest import DeviceKey, load_device_key, seal_file, write_sealed
from septum.errors import SeptumError
from septum.model import load
from septum.model.schema import Model

from . import credentials as cr
from .update_bundle import make_bundle

DRUG_LIBRARY = "drug_library"  # the data item the update service publishes as DrugLibrary messages
LIBRARY_FILE = "drug_library.yaml"
SIGNATURE_FILE = "drug_library.sig"
CREDENTIALS_FILE = "credentials.json"
CA_FILE = "hospital-ca.pem"
PINS_FILE = "machine_pins.json"
MANUFACTURER_PUB = "manufacturer.pub"
INITIAL_DIR = "initial"


class ProvisioningError(SeptumError):
    """The device cannot be provisioned as asked; the message says why."""


@dataclass
class Provisioned:
    out_dir: Path
    folders: dict[str, Path] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)  # principal -> PIN, shown once, stored nowhere in clear
    audit_public_key: Path | None = None
    manufacturer_public_key: Path | None = None
    manufacturer_key: Path | None = None  # only when generated here
    hospital_ca: Path | None = None


def _model(model: Model | str | Path) -> Model:
    return model if isinstance(model, Model) else load(model)[0]


def generate_pin(digits: int = 6) -> str:
    """A random PIN that the credential policy accepts (no repeated digit, no run like 123456)."""
    while True:
        pin = "".join(str(secrets.randbelow(10)) for _ in range(digits))
        try:
            cr.check_secret("pin", pin)
        except cr.CredentialError:
            continue
        return pin


def drug_library_receivers(model: Model) -> list[str]:
    """Partitions that receive a drug library (version, data, signature) from an update service."""
    updaters = {n for n, p in model.partitions.items() if p.service == "update"}
    out: dict[str, None] = {}
    for ch in model.channels:
        if ch.src in updaters and {"version", "data", "signature"} <= set(model.message_fields(ch.message)):
            out[ch.dst] = None
    return list(out)


def _service(model: Model, kind: str) -> str | None:
    names = [n for n, p in model.partitions.items() if p.service == kind]
    return names[0] if names else None


def _role_for(model: Model, kind: str) -> str:
    """The human role that logs in with a PIN, named like ``kind`` (clinician, biomed) or the only one."""
    pin_roles = [n for n, r in model.roles.items() if r.kind == "human" and "pin" in r.authenticates_with]
    if kind in pin_roles:
        return kind
    raise ProvisioningError(f"the model has no human role {kind!r} that logs in with a PIN "
                            f"(PIN roles: {', '.join(pin_roles) or 'none'})")


def provision_device(
    model: Model | str | Path,
    out_dir: str | Path,
    *,
    clinicians: Iterable[str] = (),
    biomeds: Iterable[str] = (),
    users: Mapping[str, str] | None = None,
    hospital_ca_pem: bytes | str | Path | None = None,
    machine_pins: Mapping[str, str] | None = None,
    drug_library: tuple[bytes, int] | None = None,
    manufacturer_key: Ed25519PrivateKey | str | Path | None = None,
    argon2: cr.Argon2Params | None = None,
    device_id: str | None = None,
    device_key: DeviceKey | str | Path | None = None,
) -> Provisioned:
    """Provision the device described by ``model`` into ``out_dir`` (created; must not hold a previous
    provisioning). ``users`` maps further principals to PIN roles. Returns folders and generated PINs.

    ``device_key`` (a ``secrets_at_rest.DeviceKey`` or the path of a device key file): the audit key and
    the credential file are written sealed under it (``audit.key.sealed``, ``credentials.json.sealed``);
    the audit key never exists in clear on disk. Run the device with ``Supervisor(device_key=...)``."""
    dkey = load_device_key(device_key) if isinstance(device_key, str | Path) else device_key
    m = _model(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise ProvisioningError(f"{out} is not empty; provision each device into a fresh folder")
    result = Provisioned(out_dir=out)

    def folder(part: str) -> Path:
        d = out / part
        d.mkdir(exist_ok=True)
        result.folders[part] = d
        return d

    # manufacturer key (update signing): given, or generated for a demo/test
    if manufacturer_key is None:
        mdir = out / "manufacturer"
        mdir.mkdir()
        mkey = generate_keypair(mdir / "manufacturer.key", mdir / MANUFACTURER_PUB)
        result.manufacturer_key = mdir / "manufacturer.key"
    elif isinstance(manufacturer_key, Ed25519PrivateKey):
        mkey = manufacturer_key
    else:
        mkey = load_private_key(Path(manufacturer_key))
    mpub = mkey.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (out / MANUFACTURER_PUB).write_bytes(mpub)
    result.manufacturer_public_key = out / MANUFACTURER_PUB

    # auth: credentials and machine principals
    auth = _service(m, "auth")
    wanted: dict[str, str] = {}
    for name in clinicians:
        wanted[name] = _role_for(m, "clinician")
    for name in biomeds:
        wanted[name] = _role_for(m, "biomed")
    for name, role in (users or {}).items():
        wanted[name] = role
    if (wanted or hospital_ca_pem is not None) and auth is None:
        raise ProvisioningError("the model has no auth service to hold credentials")
    if auth is not None:
        adir = folder(auth)
        device = device_id or m.device.name
        for name, role in wanted.items():
            pin = generate_pin()
            try:
                cr.provision(adir / CREDENTIALS_FILE, device=device, principal=name, role=role, factor="pin",
                             secret=pin, model=m, params=argon2)
            except cr.CredentialError as exc:
                raise ProvisioningError(f"{name}: {exc}") from None
            result.pins[name] = pin
        if dkey is not None and (adir / CREDENTIALS_FILE).exists():
            seal_file(adir / CREDENTIALS_FILE, dkey, auth)
        if hospital_ca_pem is not None:
            # here, not at the top: the update and auth services import this module for its file names at start,
            # and x509 path verification is a heavy import they would pay for on every start
            from .mtls import MachinePins, load_certificates

            pem = hospital_ca_pem if isinstance(hospital_ca_pem, bytes) else Path(hospital_ca_pem).read_bytes()
            certs = load_certificates(pem, "hospital CA")
            pins = dict(machine_pins or {})
            MachinePins(m, certs, pins)  # refuses a pin to a role that is not a mutual-TLS machine role
            (adir / CA_FILE).write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
            (adir / PINS_FILE).write_text(json.dumps(pins, indent=2, sort_keys=True))
            result.hospital_ca = adir / CA_FILE
        elif machine_pins:
            raise ProvisioningError("machine pins need the hospital CA they chain to (hospital_ca_pem)")

    # audit: checkpoint key
    audit = _service(m, "audit")
    if audit is not None:
        adir = folder(audit)
        if dkey is None:
            generate_keypair(adir / "audit.key", adir / "audit.pub")
        else:  # generated in memory and written only sealed
            akey = Ed25519PrivateKey.generate()
            write_sealed(adir / "audit.key", private_pem(akey), dkey, audit)
            (adir / "audit.pub").write_bytes(akey.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        (out / "audit.pub").write_bytes((adir / "audit.pub").read_bytes())
        result.audit_public_key = out / "audit.pub"

    # update: trusted key, anti-rollback store, the initial drug library
    update = _service(m, "update")
    if update is not None:
        udir = folder(update)
        (udir / MANUFACTURER_PUB).write_bytes(mpub)
        (udir / "versions.json").write_text("{}")
        if drug_library is not None:
            data, version = drug_library
            if not isinstance(version, int) or version < 0:
                raise ProvisioningError("the drug library version must be a non-negative integer")
            (udir / INITIAL_DIR).mkdir()
            bundle = make_bundle(mkey, target=DRUG_LIBRARY, kind="data", version=str(version),
                                 files={LIBRARY_FILE: data, SIGNATURE_FILE: mkey.sign(data)})
            (udir / INITIAL_DIR / f"{DRUG_LIBRARY}.sup").write_bytes(bundle)
    elif drug_library is not None:
        raise ProvisioningError("the model has no update service to publish the drug library")
    for part in drug_library_receivers(m):
        (folder(part) / MANUFACTURER_PUB).write_bytes(mpub)

    for d in result.folders.values():
        for f in d.rglob("*"):
            os.chmod(f, 0o700 if f.is_dir() else 0o600)
    return result


def drug_library_bundle(key: Ed25519PrivateKey, data: bytes, version: int) -> bytes:
    """A signed drug-library bundle as the update service expects it (library + detached signature)."""
    return make_bundle(key, target=DRUG_LIBRARY, kind="data", version=str(version),
                       files={LIBRARY_FILE: data, SIGNATURE_FILE: key.sign(data)})
