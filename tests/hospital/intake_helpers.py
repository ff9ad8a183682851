"""Socket-free intake: a desk with a recording stand-in for auth, and an independent validity oracle."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from septum_pump.hospital.intake import OrderDesk, Peer
from septum_pump.hospital.pki import HospitalPki

from septum.services.signed_fields import canonical

RATE = {"mL/h", "mg/h", "units/h", "mcg/kg/min"}
CONC = {"mg/mL", "mcg/mL", "units/mL", "mL/mL"}
FITS = {"mL/h": CONC, "mg/h": {"mg/mL", "mcg/mL"}, "units/h": {"units/mL"}, "mcg/kg/min": {"mg/mL", "mcg/mL"}}


class Recorder:
    def __init__(self) -> None:
        self.orders: list[Any] = []
        self.desk: OrderDesk | None = None

    def forward(self, order: msgspec.Struct) -> bool:
        self.orders.append(order)
        assert self.desk is not None
        self.desk.on_reply(order.order_id, True, "ok")  # type: ignore[attr-defined]  # answered at once
        return True


def make_desk(order_type: type[msgspec.Struct]) -> tuple[OrderDesk, Recorder]:
    rec = Recorder()
    desk = OrderDesk(order_type, rec.forward, lambda *a: None, reply_timeout_s=1.0)
    rec.desk = desk
    return desk, rec


def peer_of(pki: HospitalPki) -> Peer:
    return Peer("hospital.example", pki.hospital_client.cert.public_bytes(Encoding.DER), "test")


def oracle_valid(order: Any, pki: HospitalPki) -> bool:
    """Written independently of septum_pump.hospital.validate: what a forwarded order must satisfy."""
    d = msgspec.structs.asdict(order)
    numbers_ok = all(isinstance(d[k], float) and math.isfinite(d[k]) and d[k] > 0
                     for k in ("concentration", "dose_rate", "vtbi_ml"))
    weight_ok = (0.3 <= d["weight_kg"] <= 350) if d["dose_unit"] == "mcg/kg/min" else (
        d["weight_kg"] == 0 or 0.3 <= d["weight_kg"] <= 350)
    try:
        pki.hospital_client.key.public_key().verify(d["signature"], canonical(d), ec.ECDSA(hashes.SHA256()))
        signed = True
    except Exception:
        signed = False
    return (numbers_ok and weight_ok and signed and d["dose_unit"] in RATE and d["concentration_unit"] in CONC
            and d["concentration_unit"] in FITS[d["dose_unit"]] and d["concentration"] <= 10000
            and d["dose_rate"] <= 10000 and d["vtbi_ml"] <= 5000
            and all(0 < len(d[k]) <= 64 and d[k].isprintable() and "|" not in d[k]
                    for k in ("order_id", "patient_id", "drug", "nonce"))
            and 0 < len(d["care_area"]) <= 32 and d["principal"] == "hospital.example")
