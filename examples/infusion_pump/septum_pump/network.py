"""The network partition: the pump's hospital link (see docs/hospital.md).

Thin on purpose: the link (``septum_pump.hospital.link``) runs its TLS listeners (one event loop, a
small worker pool) and the event sender in threads of their own; this entry point only wires it to the
partition's channels, and starts the liveness probes the model declares for the two listeners
(``septum.runtime.liveness``): a listener that stops answering, or a listener loop that fails, ends the
partition with the reason (``p.fatal``), so the supervisor audits the exit and restarts it. Orders go to auth on
``orders_in``; auth's answers arrive on ``order_replies`` and pump_control's verdict on each order auth
forwarded (drug library and care area are checked there; this partition relays it and enforces no limit)
on ``order_verdicts``; pump events arrive on ``pump_events`` and are
buffered on disk until the hospital acknowledges them; every security-relevant record goes to the audit
service on ``audit_network`` and to the supervisor's event stream.

``orders_in``'s rate is the one the model declares for the channel (the runtime hands it to the sending
end too): orders beyond it are refused here, at once and with the reason, because auth would drop them and
the hospital would be told "pending" (see ``hospital.ratelimit``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec

from septum.crypto.secrets_at_rest import SECRETS_CONFIG_KEY
from septum.runtime import liveness
from septum.runtime.partition import Partition

from .hospital.link import HospitalLink, SetupError
from .hospital.pki import KEY_PASSPHRASE

# the link's audit severities (the AuditEvent enum) as the supervisor's event stream names them
REPORT_SEVERITY = {"alert": "error"}


def main(p: Partition) -> None:
    lock = threading.Lock()  # link threads and the event loop share the channel ends

    def emit_audit(event: str, severity: str, detail: str) -> None:
        with lock:
            p.send("audit_network", event=event[:64], severity=severity, detail=detail[:1024],
                   at_ms=int(time.time() * 1000))
            if severity not in ("info",):
                p.audit(event, severity=REPORT_SEVERITY.get(severity, severity), detail=detail[:1024])

    def forward(order: msgspec.Struct) -> bool:
        with lock:
            return p.send("orders_in", order)

    def forward_chunk(chunk: msgspec.Struct) -> bool:
        with lock:
            return p.send("updates_in", chunk)

    # update chunks from the hospital's update server go to auth on updates_in (hospital/update_desk.py)
    updates = (p.message_type("updates_in"), forward_chunk) if "updates_in" in p.outputs else None
    rate = p.output_rate("orders_in")
    config = dict(p.config)
    # the TLS key's passphrase, unsealed by the supervisor (device key): never part of the link's settings
    unsealed = config.pop(SECRETS_CONFIG_KEY, None)
    key_password = unsealed.get(KEY_PASSPHRASE) if isinstance(unsealed, dict) else None
    try:
        # the probes of hospital_https / hospital_mllp the model declares: a listener that stops answering
        # ends the partition (restart policy), a heartbeat alone would not show it
        probes = liveness.Liveness.from_config(config, p.fatal, emit_audit)
        config.pop(liveness.CONFIG_KEY, None)
        # auth's bucket runs on device time (scaled under test rigs): ours must too, or it would admit a
        # different rate; Retry-After goes back to the hospital in real seconds
        link = HospitalLink(p.data_dir, config, p.message_type("orders_in"), forward, emit_audit,
                            orders_rate_per_s=rate, clock=p.now, to_real=p.clock.to_real, fatal=p.fatal,
                            is_probe=probes.is_probe, updates=updates, key_password=key_password,
                            expect_verdict="order_verdicts" in p.inputs)
        link.start()
    except (SetupError, OSError, ValueError) as exc:
        # without its TLS material the partition must not listen at all; exiting lets the supervisor
        # report it (and its restart policy apply) instead of running a link that accepts nothing
        p.audit("hospital_link_unavailable", severity="error", detail=str(exc)[:1024])
        raise SystemExit(78) from None
    if rate is None:
        p.audit("orders_rate_unknown", severity="warning",
                detail="the model declares no rate for orders_in: every valid order is forwarded")
    bind = str(link.settings["bind"])
    probes.watch("hospital_https", bind, link.https.port)
    probes.watch("hospital_mllp", bind, link.mllp.port)
    probes.start()

    @p.handler("order_replies")
    def on_reply(msg: Any) -> None:
        link.on_reply(msg.order_id, msg.accepted, msg.reason)

    if "update_replies" in p.inputs:
        @p.handler("update_replies")
        def on_update_reply(msg: Any) -> None:
            if link.updates is not None:
                link.updates.on_reply(msg.bundle_id, msg.index, msg.accepted, msg.reason)

    if "order_verdicts" in p.inputs:
        # pump_control's verdict on each order auth forwarded (drug library, care area): relayed, not judged
        @p.handler("order_verdicts")
        def on_verdict(msg: Any) -> None:
            link.on_verdict(msg.order_id, msg.verdict, msg.reason)

    @p.handler("pump_events")
    def on_event(msg: Any) -> None:
        link.on_event(msgspec.structs.asdict(msg))

    p.every(1.0, link.flush)
    p.event("listening", https=link.https.port, mllp=link.mllp.port,
            outbound=bool(link.sender), buffered=len(link.buffer), max_pending=link.server.limits.max_pending,
            max_sessions=link.server.limits.max_sessions, liveness=sorted(probes.specs))
