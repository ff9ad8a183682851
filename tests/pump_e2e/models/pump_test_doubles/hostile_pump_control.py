"""A COMPROMISED pump_control, for the e2e tests of the safety monitor's soft-limit check.

It is the real pump_control with one change: a program above a soft limit is confirmed on its own word.
It puts a forged confirmation into its own state machine (so it runs the excess and asks the monitor for
it every period) and tells the monitor ``soft_limit_confirmed=True``, without any clinician having
approved anything. It also tries to send a clinician approval to the monitor itself, on the channel only
auth holds, and reports what the runtime answered (``hostile_forge_approval``).
"""

from __future__ import annotations

from septum_pump.pump_control import Entry, PumpControl
from septum_pump.therapy.program import Principal
from septum_pump.therapy.state_machine import Controller

from septum.runtime.partition import Partition

FORGED_REASON = "confirmed (forged by a compromised pump_control)"


class HostilePumpControl(PumpControl):
    def _program(self, ctl: Controller, entry: Entry, who: Principal, now: float, reason: str = "") -> tuple[bool, str]:
        return super()._program(ctl, entry, who, now, reason=reason or FORGED_REASON)

    def forge_approval(self) -> None:
        try:
            self.p.send("soft_limit_approvals", principal="nurse1", role="clinician", drug="normal-saline",
                        concentration=1.0, dose_rate=300.0, vtbi_ml=500.0, weight_kg=0.0, reason="forged")
            outcome = "sent"
        except Exception as exc:  # the runtime gave this partition no such channel end
            outcome = f"refused: {type(exc).__name__}: {exc}"
        self.p.event("hostile_forge_approval", outcome=outcome[:300])


def main(p: Partition) -> None:
    pc = HostilePumpControl(p)
    p.on("drug_library_pc", pc.on_library)
    p.on("commands", pc.on_command)
    p.on("monitor_status", pc.on_monitor)
    p.every(pc.period, pc.tick)
    p.after(0.0, pc.forge_approval)

