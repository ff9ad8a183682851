"""The warmer's safety monitor: the only partition that drives the heater.

The simple, certifiable part of the Simplex pair. Every heater command from the controller is gated:
capped at ``max_power_pct``, and refused (heater off) when the skin probe is unplugged or silent, the skin
is at or over ``max_skin_c``, or the controller has been silent longer than ``max_silence_ms`` (the same
number analysis rule LIVE002 checks the controller's heartbeat against). An alarm is an event
(``alarm``) whenever the reason the heater is off changes.

Probe frames are ASCII degrees Celsius (``b"36.4"``); the heater takes ASCII percent (``b"25.0"``). Run
under ``septum run`` without hardware, the probe is unplugged: the monitor keeps the heater off and says
``probe_fault``.
"""

from __future__ import annotations

from typing import Any

from septum.runtime.partition import Partition

PERIOD_S = 0.02  # the model's period_ms
PROBE_STALE_S = 0.5


def main(p: Partition) -> None:
    max_silence_s = int(p.config["max_silence_ms"]) / 1000
    max_power = float(p.config.get("max_power_pct", 60.0))
    max_skin = float(p.config.get("max_skin_c", 38.0))
    st: dict[str, Any] = {"skin": None, "skin_at": None, "unplugged": False, "beat_at": None, "wanted": 0.0,
                          "alarm": "none", "power": 0.0}

    def probe(packet: bytes) -> None:
        if not packet:
            st["unplugged"] = True
            return
        try:
            value = float(packet.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return  # a garbled frame is no reading; staleness catches a probe that sends only garbage
        if 0.0 <= value <= 60.0:
            st["skin"], st["skin_at"] = value, p.now()

    p.on_device("skin_probe", probe)

    @p.handler("ctl_heartbeat")
    def beat(_msg: Any) -> None:
        st["beat_at"] = p.now()

    @p.handler("heater_cmd")
    def command(msg: Any) -> None:
        st["wanted"] = msg.power_pct

    def decide() -> tuple[float, str]:
        now = p.now()
        if st["unplugged"] or st["skin_at"] is None or now - st["skin_at"] > PROBE_STALE_S:
            return 0.0, "probe_fault"
        if st["skin"] >= max_skin:
            return 0.0, "over_temperature"
        if st["beat_at"] is None or now - st["beat_at"] > max_silence_s:
            return 0.0, "controller_silent"
        return min(st["wanted"], max_power), "none"

    def step() -> None:
        power, alarm = decide()
        if power != st["power"]:
            try:
                p.device("heater").send(f"{power:.1f}".encode("ascii"))
            except OSError:
                power, alarm = 0.0, "heater_fault" if alarm == "none" else alarm
        st["power"] = power
        if alarm != st["alarm"]:
            p.event("alarm", severity="error" if alarm != "none" else "info", alarm=alarm, heater_pct=power)
            st["alarm"] = alarm
        p.send("monitor_status", skin_c=st["skin"] if st["skin"] is not None else 0.0, heater_pct=power,
               alarm=alarm if alarm != "heater_fault" else "probe_fault")

    p.every(PERIOD_S, step)
