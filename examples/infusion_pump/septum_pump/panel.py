"""Run the pump with its front panel in a browser (a test-bench demo, not a clinical device).

    cd examples/infusion_pump && sudo ../../.venv/bin/python -m septum_pump.panel --time-scale 60

Starts the whole device under the real runtime with the hardware simulator attached (``PumpRig``), serves
the front panel on 127.0.0.1 and prints its URL and the clinician PIN that provisioning generated for this
run (it exists only in this run's temporary state and is never written to the repository). Ctrl-C (or
SIGTERM) stops the device and removes its state.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

import yaml

from .rig import CLINICIAN, LIBRARY, PumpRig, RigError
from .sim.frontpanel import FrontPanel


def _drug_ids() -> list[str]:
    """The drug ids of the shipped library, offered as suggestions in the page's drug field."""
    try:
        return sorted(yaml.safe_load(LIBRARY.read_text())["drugs"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return []  # only a convenience: the clinician can still type the id


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m septum_pump.panel", description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="device seconds per real second (60: an hour of therapy per minute; default 1)")
    ap.add_argument("--port", type=int, default=8480, help="TCP port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--services", choices=("auto", "real", "doubles"), default="auto",
                    help="Septum services or the clearly named test doubles (auto: real when installed)")
    args = ap.parse_args(argv)
    if not (0 < args.time_scale <= 3600):
        ap.error("--time-scale must be in (0, 3600]")
    if not (0 <= args.port <= 65535):
        ap.error("--port must be in [0, 65535]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if os.geteuid() != 0:
        print("the pump runs each partition under its own uid: run this as root", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(_sig: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"starting the pump (time scale {args.time_scale:g}, services {args.services}) ...", flush=True)
    try:
        with PumpRig(time_scale=args.time_scale, services=args.services) as rig:
            info = {"time_scale": args.time_scale, "services": rig.services, "drugs": _drug_ids()}
            with FrontPanel(rig.sim, port=args.port, info=info) as panel:
                print(f"front panel: {panel.url}")
                print(f"bench clinician: {CLINICIAN}  PIN {rig.pins.get(CLINICIAN, '(none provisioned)')}"
                      "  (generated for this run only)")
                print("Ctrl-C to stop the device", flush=True)
                while not stop.wait(1.0):
                    if rig.supervisor.events.wait_for(lambda e: e.kind == "safe_state", 0, after=0):
                        print("the supervisor put the device in its safe state; the panel stays up so you can "
                              "see why (Ctrl-C to stop)", flush=True)
                        stop.wait()
    except RigError as exc:
        print(f"the pump did not start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"could not serve the front panel: {exc}", file=sys.stderr)
        return 1
    print("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
