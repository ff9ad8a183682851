"""TEST ONLY: partition entry points with a defence switched off, to prove the attack checks can fail.

``tests/attacks/test_defences_off.py`` restarts a partition of the attack device with one of these entry
points (the Boot's ``entry``, with this folder added to its import path and Landlock read rules); each
patches the named defence out of the real code and then runs that code. Never part of a device.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from septum.runtime.partition import Partition

EXTRA_CA = "extra-ca.pem"


def network_main(p: Partition) -> None:
    """The attack suite's network partition (real link + attacker) with its hospital-side defences off:
    TLS 1.2 allowed and client certificates from an extra, unprovisioned CA trusted (``EXTRA_CA`` in its data
    folder), no order signature pre-check, unfinished MLLP frames not recorded, negative rates accepted."""
    from septum_pump.attacks import inside_network
    from septum_pump.hospital import mllp, tls, validate

    def weak_server_context(ca_pem: Any, cert_pem: Any, key_pem: Any,
                            key_password: bytes | None = None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(ca_pem))
        extra = Path(ca_pem).parent / EXTRA_CA  # a CA the hospital never provisioned, trusted all the same
        if extra.exists():
            ctx.load_verify_locations(cafile=str(extra))
        ctx.load_cert_chain(str(cert_pem), str(key_pem), password=key_password)  # the key is sealed at rest
        return ctx

    tls.server_context = weak_server_context  # type: ignore[assignment]
    import septum_pump.hospital.intake as intake

    intake.verify_order_signature = lambda *a, **k: None  # type: ignore[assignment]
    mllp.FrameReader.pending = lambda self: 0  # type: ignore[method-assign]
    real_check = validate.check_order

    def lenient(fields: Any, order_type: Any) -> Any:
        fields = dict(fields)
        if isinstance(fields.get("dose_rate"), int | float) and fields["dose_rate"] < 0:
            fields["dose_rate"] = 1.0  # a negative rate "accepted" as some rate
        return real_check(fields, order_type)

    validate.check_order = lenient  # type: ignore[assignment]
    intake.check_order = lenient  # type: ignore[attr-defined]
    inside_network.main(p)


def auth_main(p: Partition) -> None:
    """The Septum auth service with no lockout, no nonce replay guard and any order signature accepted."""
    from septum.services import auth_service, credentials, signed_requests
    from septum.services.mtls import MachineIdentity

    credentials.Lockout.retry_after = lambda self, key, now: 0.0  # type: ignore[method-assign]
    credentials.Lockout.failed = lambda self, key, now: 0.0  # type: ignore[method-assign]
    signed_requests.NonceGuard.check = (  # type: ignore[method-assign]
        lambda self, sender, nonce, sent_at, now: signed_requests.NonceVerdict(True))

    def any_signature(fields: Any, pins: Any, now: Any) -> MachineIdentity:
        return MachineIdentity("hospital.example", "hospital_server")

    auth_service.verify_signed = any_signature  # type: ignore[assignment]
    auth_service.main(p)


def network_no_deadlines_main(p: Partition) -> None:
    """The attack suite's network partition whose hospital listeners never time a connection out (the
    slow-loris defence off); the rest of the link as built."""
    from dataclasses import replace

    from septum_pump.attacks import inside_network
    from septum_pump.hospital import servers

    real = servers.Limits.from_settings.__func__  # type: ignore[attr-defined]

    def patient(cls: Any, s: dict[str, Any]) -> Any:
        return replace(real(cls, s), handshake_timeout_s=3600.0, header_timeout_s=3600.0, body_timeout_s=3600.0)

    servers.Limits.from_settings = classmethod(patient)  # type: ignore[method-assign, assignment]
    inside_network.main(p)
