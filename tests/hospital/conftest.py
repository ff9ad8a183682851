"""Shared fixtures: TLS material generated per session, the model's InfusionOrder type, an in-process
hospital link with a stand-in for auth, and the example hospital client."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from septum_pump.hospital.link import HospitalLink
from septum_pump.hospital.pki import HospitalPki, provision_network
from septum_pump.hospital.validate import order_type_from_model

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "examples" / "infusion_pump" / "model.yaml"
sys.path.insert(0, str(ROOT / "examples" / "hospital_client"))

from hospital_client.client import HospitalClient  # noqa: E402


@pytest.fixture(scope="session")
def pki() -> HospitalPki:
    return HospitalPki.generate()


@pytest.fixture(scope="session")
def order_type() -> type[msgspec.Struct]:
    return order_type_from_model(str(MODEL))


@pytest.fixture(scope="session")
def hospital_dir(pki: HospitalPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pki.write_hospital(tmp_path_factory.mktemp("hospital"))


@dataclass
class FakeAuth:
    """Stands in for the auth service: records what reaches ``orders_in`` and answers as told."""

    answer: str = "accept"  # accept | reject | silent | full
    reason: str = "pre-filled; awaiting clinician confirmation"
    link: HospitalLink | None = None
    orders: list[Any] = field(default_factory=list)

    def forward(self, order: msgspec.Struct) -> bool:
        if self.answer == "full":
            return False
        self.orders.append(order)
        if self.answer != "silent":
            # auth answers from another process; here from another thread, like the partition's loop
            link = self.link
            assert link is not None
            accepted = self.answer == "accept"
            oid = order.order_id  # type: ignore[attr-defined]
            threading.Thread(target=link.on_reply, args=(oid, accepted, self.reason)).start()
        return True


@dataclass
class Audit:
    records: list[tuple[str, str, str]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, event: str, severity: str, detail: str) -> None:
        with self.cond:
            self.records.append((event, severity, detail))
            self.cond.notify_all()

    def kinds(self) -> list[str]:
        with self.cond:
            return [r[0] for r in self.records]

    def wait_for(self, pred: Callable[[tuple[str, str, str]], bool], timeout: float = 5.0) -> tuple[str, str, str]:
        with self.cond:
            found: list[tuple[str, str, str]] = []

            def check() -> bool:
                found[:] = [r for r in self.records if pred(r)]
                return bool(found)

            assert self.cond.wait_for(check, timeout), f"no matching audit record in {self.records}"
            return found[0]


@dataclass
class Harness:
    link: HospitalLink
    auth: FakeAuth
    audit: Audit
    data_dir: Path


@pytest.fixture
def make_link(pki: HospitalPki, order_type: type[msgspec.Struct], tmp_path: Path
              ) -> Iterator[Callable[..., Harness]]:
    made: list[HospitalLink] = []

    def make(answer: str = "accept", outbound: dict[str, Any] | None = None,
             link_kwargs: dict[str, Any] | None = None, **config: Any) -> Harness:
        data_dir = provision_network(tmp_path / f"network{len(made)}", pki, outbound=outbound)
        auth, audit = FakeAuth(answer=answer), Audit()
        config.setdefault("reply_timeout_s", 2.0)
        link = HospitalLink(data_dir, config, order_type, auth.forward, audit, **(link_kwargs or {}))
        auth.link = link
        made.append(link.start())
        return Harness(link, auth, audit, data_dir)

    yield make
    for link in made:
        link.close()


@pytest.fixture
def client_for(hospital_dir: Path) -> Iterator[Callable[..., HospitalClient]]:
    made: list[HospitalClient] = []

    def make(h: Harness, *, cert: str = "client.pem", key: str = "client.key") -> HospitalClient:
        c = HospitalClient("127.0.0.1", https_port=h.link.https.port, mllp_port=h.link.mllp.port,
                           ca=hospital_dir / "hospital-ca.pem", cert=hospital_dir / cert, key=hospital_dir / key,
                           timeout=10.0)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def basic_order(client: HospitalClient, source: str, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(order_id="ORD-1001", patient_id="MRN-42", drug="morphine-pca", concentration=1.0,
                                  concentration_unit="mg/mL", dose_rate=0.5, dose_unit="mg/h", vtbi_ml=100.0,
                                  care_area="adult-med-surg")
    fields.update(changes)
    return client.order(source, **fields)
