"""The warmer's controller: servo control of the heater power toward a skin-temperature set point.

It is the complex part of the Simplex pair (`criticality: high`): it computes the power it wants and
sends it to the monitor, which alone drives the heater. It proves it is alive on `ctl_heartbeat` every
period; the runtime's `heartbeat_ms` supervision covers a hang of its whole event loop.
"""

from __future__ import annotations

from typing import Any

from septum.runtime.partition import Partition

PERIOD_S = 0.1  # the model's period_ms
GAIN_PCT_PER_C = 40.0  # heater power per degree below the set point


def main(p: Partition) -> None:
    set_point = float(p.config.get("set_point_c", 36.5))
    st: dict[str, Any] = {"seq": 0, "skin": None, "alarm": "none"}

    @p.handler("monitor_status")
    def status(msg: Any) -> None:
        st["skin"], st["alarm"] = msg.skin_c, msg.alarm

    def control() -> None:
        # no skin reading, no heat: the controller never guesses a temperature
        skin = st["skin"]
        power = 0.0 if skin is None else max(0.0, min(100.0, (set_point - skin) * GAIN_PCT_PER_C))
        st["seq"] += 1
        p.send("heater_cmd", seq=st["seq"], power_pct=power)
        p.send("ctl_heartbeat", seq=st["seq"])

    p.every(PERIOD_S, control)
