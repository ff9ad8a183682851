"""Demo rows for the hospital path: order -> pre-filled at the pump -> clinician confirms -> infusion runs,
and an unconfirmed order that expires. ``run_hospital_story() -> list[(step, ok, detail)]`` for the demo.

The device is the pump as built (real network partition with its TLS listeners, real services), started with
``AttackRig(compromised=False)`` only for its provisioning of the hospital PKI; no attacker code runs.
"""

from __future__ import annotations

from .attacks.device import AttackRig
from .attacks.hospital_side import client, order

Row = tuple[str, bool, str]
TIME_SCALE = 60.0  # the 600 s order lifetime passes in 10 s of real time


def run_hospital_story() -> list[Row]:
    rows: list[Row] = []
    with AttackRig(time_scale=TIME_SCALE, compromised=False) as rig:
        c = client(rig)
        try:
            o = order(c, "fhir", "ORD-DEMO-1", dose_rate=25.0, vtbi_ml=50.0)
            status, body = c.send_fhir(o)
            rows.append(("hospital sends a signed FHIR MedicationRequest over mutual TLS", status == 201,
                         f"HTTP {status}: {(body.get('issue') or [{}])[0].get('diagnostics', '')}"[:120]))
            shown = rig.wait_until(lambda: any("ORD-DEMO-1" in line for line in rig.display()), timeout=5)
            rows.append(("order pre-filled at the pump, waiting for a clinician", shown,
                         "display: " + " / ".join(rig.display())[:100]))
            rows.append(("the pump does not start it by itself", not rig.motor_running(), "motor stopped"))
            logged = rig.login()
            ok, why = rig._act("confirm_order", [("order_id", "ORD-DEMO-1"), ("confirm_order", "")])
            rows.append(("clinician logs in and confirms the order at the pump", logged and ok, why))
            ok2, why2 = rig.start()
            running = ok2 and rig.wait_until(rig.motor_running, timeout=10)
            rows.append(("two-step start: the infusion runs at the ordered rate", running,
                         f"{why2}; motor {'running' if rig.motor_running() else 'stopped'}"))
            got = rig.wait_until(lambda: rig.delivered_ml() > 0.01, timeout=10)
            rows.append(("volume delivered", got, f"{rig.delivered_ml():.3f} mL"))
            o2 = order(c, "hl7v2", "ORD-DEMO-2", dose_rate=30.0)
            code = c.send_hl7(o2)
            accepted_at = rig.device_time()
            accepted = "MSA|AA" in code
            rows.append(("a second order arrives (HL7 RGV^O15) and is pre-filled", accepted,
                         code.split("\r")[1][:60] if "\r" in code else code[:60]))
            ttl = 600.0
            rig.wait_until(lambda: rig.device_time() > accepted_at + ttl + 1, timeout=ttl / TIME_SCALE + 10)
            rig.login()  # the session may have timed out meanwhile: log in again, so only expiry can refuse
            ok3, why3 = rig._act("confirm_order", [("order_id", "ORD-DEMO-2"), ("confirm_order", "")])
            rows.append(("nobody confirms it for 10 minutes: it expires and cannot be confirmed",
                         not ok3 and "expired" in why3, why3))
            rows.append(("the running infusion is unchanged by the expired order", rig.motor_running(),
                         f"state {rig.pump_state()}, alarms {rig.alarms()[-3:]}"))
            ok4, detail = rig.verify_audit()
            rows.append(("audit log verifies", ok4, detail))
        finally:
            c.close()
    return rows


if __name__ == "__main__":
    for step, ok, detail in run_hospital_story():
        print(f"{'OK ' if ok else 'BAD'} {step:<75} {detail}")
