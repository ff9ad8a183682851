"""Events out to the hospital: PumpEvent -> HL7 v2 ORU^R01 / ORU^R42 over MLLP/TLS, or FHIR R4
MedicationAdministration / Observation POSTed over HTTPS; delivered in order from the on-disk buffer.

The sender removes an event from the buffer only when the hospital acknowledged it (HL7 ``MSA`` AA/CA,
HTTP 2xx). While the hospital is unreachable it keeps the events and retries with a capped backoff; an
event the hospital explicitly refuses (AE/AR, HTTP 4xx) will not succeed by retrying, so it is audited
with the hospital's answer and removed. Going unreachable and coming back are audited once each.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from typing import Any

from . import hl7_orders, hl7_writer
from .answers import hl7_timestamp, next_control_id
from .intake import Audit
from .mllp import FrameReader, MllpError, frame

SEPTUM_CODES = "https://septum.example/fhir/CodeSystem/pump-event"
CONNECT_TIMEOUT_S = 5.0
MAX_BACKOFF_S = 5.0


def _ts(at_ms: int) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(at_ms / 1000)) + f".{at_ms % 1000:03d}+0000"


def _iso(at_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at_ms / 1000)) + f".{at_ms % 1000:03d}Z"


def hl7_event(event: dict[str, Any], *, control_id: str, timestamp: str) -> bytes:
    """ORU^R42 for an alarm, ORU^R01 for everything else (status, administration, order result, security);
    built with python-hl7 (``hl7_writer``), every value escaped."""
    kind = str(event["kind"])
    alarm = kind == "alarm"
    msg_type = ("ORU", "R42" if alarm else "R01", "ORU_R01")
    when = _ts(int(event["at_ms"]))
    service = ("ALARM", "Pump alarm", "SEPTUM") if alarm else (kind.upper(), f"Pump {kind}", "SEPTUM")
    segs = [
        hl7_writer.header(msg_type, control_id, timestamp, "2.5"),
        hl7_writer.segment("OBR", ["1", str(event.get("order_id", "")), "", service, "", "", when]),
        hl7_writer.segment("OBX", ["1", "NM", (kind, f"{kind} value", "SEPTUM"), "",
                                   repr(float(event.get("value", 0.0))), (str(event.get("unit", "")), "", "UCUM"),
                                   "", "", "", "", "F", "", "", when]),
        hl7_writer.segment("OBX", ["2", "ST", ("TEXT", "Event text", "SEPTUM"), "", str(event.get("text", "")),
                                   "", "", "", "", "", "F", "", "", when]),
    ]
    return hl7_writer.message(segs)


def fhir_event(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(resource type, resource): MedicationAdministration for an administration, else an Observation."""
    when = _iso(int(event["at_ms"]))
    order = {"identifier": {"value": event.get("order_id") or "none"}}
    if event["kind"] == "administration":
        return "MedicationAdministration", {
            "resourceType": "MedicationAdministration",
            "status": "in-progress",
            "medicationCodeableConcept": {"text": event.get("text") or "infusion"},
            "subject": {"display": "patient of the infusion order"},
            "effectiveDateTime": when,
            "request": order,
            "dosage": {"rateQuantity": {"value": float(event.get("value", 0.0)), "unit": event.get("unit", ""),
                                        "system": "http://unitsofmeasure.org", "code": event.get("unit", "")}},
        }
    return "Observation", {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": SEPTUM_CODES, "code": event["kind"]}], "text": event.get("text", "")},
        "effectiveDateTime": when,
        "basedOn": [order],
        "valueQuantity": {"value": float(event.get("value", 0.0)), "unit": event.get("unit", "")},
    }


class Delivery(Exception):
    """The event could not be delivered now (retry later)."""


class Refused(Exception):
    """The hospital answered and refused the event (retrying will not help)."""


class Sender:
    """Drains an ``EventBuffer`` to the hospital in a thread of its own."""

    def __init__(self, buffer: Any, target: dict[str, Any], ctx: ssl.SSLContext, audit: Audit) -> None:
        self.buffer = buffer
        self.mode = target.get("mode", "mllp")
        if self.mode not in ("mllp", "fhir"):
            raise ValueError(f"outbound mode {self.mode!r} is not mllp or fhir")
        self.host = str(target["host"])
        self.port = int(target["port"])
        self.server_name = str(target.get("server_name", self.host))
        self.base_path = str(target.get("base_path", "/fhir")).rstrip("/")
        self.ctx = ctx
        self.audit = audit
        self.sent = 0
        self.reachable = True
        self._stop = threading.Event()
        self._conn: ssl.SSLSocket | None = None
        self._reader = FrameReader()
        self._thread = threading.Thread(target=self._run, name="hospital-sender", daemon=True)

    def start(self) -> Sender:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.buffer.wake()
        self._thread.join(timeout=CONNECT_TIMEOUT_S + 1)
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
            self._reader = FrameReader()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            item = self.buffer.peek(timeout=1.0)
            if item is None:
                continue
            seq, event = item
            try:
                self._deliver(event)
            except Delivery as exc:
                self._close()
                if self.reachable:
                    self.reachable = False
                    self.audit("hospital_unreachable", "warning",
                               f"{self.mode} {self.host}:{self.port}: {exc}; {len(self.buffer)} event(s) buffered")
                self._stop.wait(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                continue
            except Refused as exc:
                self.audit("event_refused", "warning", f"hospital refused {event.get('kind')} event: {exc}")
            self.buffer.remove(seq)
            self.sent += 1
            backoff = 0.1
            if not self.reachable:
                self.reachable = True
                self.audit("hospital_reachable", "notice", f"{self.mode} {self.host}:{self.port}: sending "
                           f"{len(self.buffer)} buffered event(s)")

    def _deliver(self, event: dict[str, Any]) -> None:
        if self.mode == "mllp":
            self._deliver_mllp(event)
        else:
            self._deliver_fhir(event)

    def _deliver_mllp(self, event: dict[str, Any]) -> None:
        control_id = next_control_id()
        data = frame(hl7_event(event, control_id=control_id, timestamp=hl7_timestamp()))
        try:
            if self._conn is None:
                raw = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
                self._conn = self.ctx.wrap_socket(raw, server_hostname=self.server_name)
            self._conn.sendall(data)
            while True:
                chunk = self._conn.recv(65536)
                if not chunk:
                    raise Delivery("the hospital closed the connection before acknowledging")
                for item in self._reader.feed(chunk):
                    if isinstance(item, MllpError):
                        raise Delivery(f"bad acknowledgement framing: {item}")
                    self._check_ack(item, control_id)
                    return
        except (OSError, ssl.SSLError) as exc:
            raise Delivery(str(exc) or type(exc).__name__) from None

    @staticmethod
    def _check_ack(payload: bytes, control_id: str) -> None:
        try:
            msa = hl7_orders.parse(payload).one("MSA")
        except hl7_orders.Hl7Error as exc:
            raise Delivery(f"unreadable acknowledgement: {exc.reason}") from None
        code = hl7_orders.component(hl7_orders.field(msa, 1, "MSA"), 1)
        if hl7_orders.component(hl7_orders.field(msa, 2, "MSA"), 1) != control_id:
            raise Delivery("acknowledgement for another message")
        if code not in ("AA", "CA"):
            raise Refused(f"MSA {code}: {hl7_orders.component(hl7_orders.field(msa, 3, 'MSA'), 1)[:200]}")

    def _deliver_fhir(self, event: dict[str, Any]) -> None:
        rtype, resource = fhir_event(event)
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=CONNECT_TIMEOUT_S)
        try:
            conn.request("POST", f"{self.base_path}/{rtype}", body=json.dumps(resource).encode(),
                         headers={"Content-Type": "application/fhir+json", "Host": self.server_name})
            resp = conn.getresponse()
            body = resp.read(4096)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise Delivery(str(exc) or type(exc).__name__) from None
        finally:
            conn.close()
        if 200 <= resp.status < 300:
            return
        if resp.status >= 500 or resp.status == 429:
            raise Delivery(f"HTTP {resp.status}")
        raise Refused(f"HTTP {resp.status}: {body[:200].decode('utf-8', 'replace')}")
