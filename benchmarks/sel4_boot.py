"""The pump on seL4: image size per PD, boot to the first motor command under QEMU, SDK and image build times.

    .venv/bin/python benchmarks/sel4_boot.py [--runs 5] [--cold]

Boot to first motor command: from starting QEMU to the `hw motor rate>0` line on the serial line (the hardware
PD applying the safety monitor's first grant of the scripted 20 mL/h therapy). Measured on the host clock, for
the documented QEMU command (guest on the host's clock) and for the scenarios' `-icount shift=1` guest, alternating
(A B A B ...) so load hits both alike; the guest's own clock at that line (t_us) is shown too. A trial fails when
the line does not come within 60 s; failed trials are counted and kept out of the figures.

SDK: `ensure_sdk()` on the cached SDK (repeats); with --cold also one build from the vendored sources into a
temporary cache (a few minutes of both cores). The issue sets no goals for these figures: the GOAL lines at the
end are marked informational and never "missed".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from septum.sel4 import scenarios  # noqa: E402
from septum.sel4 import sdk as sdk_mod  # noqa: E402
from septum.sel4.qemu import Boot, QemuError  # noqa: E402
from septum.sel4.serial import parse_event  # noqa: E402

DEADLINE_S = 60.0


def spread(name: str, values: list[float], unit: str, scale: float = 1.0) -> str:
    if not values:
        return f"{name}: no successful runs"
    return (f"{name}: median {statistics.median(values) * scale:.2f}{unit}, min {min(values) * scale:.2f}{unit}, "
            f"max {max(values) * scale:.2f}{unit} over {len(values)} runs")


def first_motor(image: Path, icount: int | None) -> tuple[float, float] | None:
    """(host seconds from QEMU start, guest seconds) at the first motor grant, or None (failed trial)."""
    def running(text: str) -> bool:
        ev = parse_event(text)
        return ev is not None and ev.pd == "hw" and ev.event == "motor" and ev.num("rate") > 0

    try:
        with Boot(image, icount_shift=icount) as boot:
            line = boot.wait_for(running, DEADLINE_S)
    except QemuError:
        return None
    ev = parse_event(line.text)
    assert ev is not None
    return line.at, ev.int("t_us") / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="also build the SDK once from source (minutes)")
    args = ap.parse_args()
    reason = sdk_mod.sdk_unavailable_reason()
    if reason is not None:
        print(f"no Microkit SDK: {reason}")
        sys.exit(2)

    cached = []
    for _ in range(args.runs):
        t = time.perf_counter()
        sdk = sdk_mod.ensure_sdk()
        cached.append(time.perf_counter() - t)
    cold: float | None = None
    if args.cold:
        with tempfile.TemporaryDirectory() as tmp:
            real = sdk_mod.cache_root
            sdk_mod.cache_root = lambda: Path(tmp)  # type: ignore[assignment]
            try:
                t = time.perf_counter()
                sdk_mod.ensure_sdk()
                cold = time.perf_counter() - t
            finally:
                sdk_mod.cache_root = real  # type: ignore[assignment]

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        built = scenarios.build(["therapy"], out_root=Path(tmp), sdk=sdk)["therapy"]
        clean_build = time.perf_counter() - t
        t = time.perf_counter()
        scenarios.build(["therapy"], out_root=Path(tmp), sdk=sdk)
        warm_build = time.perf_counter() - t
        image = built.image
        real_host: list[float] = []
        real_guest: list[float] = []
        ic_host: list[float] = []
        ic_guest: list[float] = []
        failed = {"real-time": 0, "icount": 0}
        for _ in range(args.runs):
            for mode, icount, host, guest in (("real-time", None, real_host, real_guest),
                                              ("icount", scenarios.ICOUNT_SHIFT, ic_host, ic_guest)):
                got = first_motor(image, icount)
                if got is None:
                    failed[mode] += 1
                else:
                    host.append(got[0])
                    guest.append(got[1])

        print(f"image: {built.image_bytes} bytes ({built.image_bytes / 2**20:.2f} MiB), {len(built.sizes)} PDs")
        print(f"{'PD':<16} {'ELF bytes':>10} {'loaded bytes':>13}  stand-in")
        for name, size in built.sizes.items():
            print(f"{name:<16} {size.elf_bytes:>10} {size.load_bytes:>13}  {'yes' if name in built.standins else ''}")
    print(spread("boot to first motor command, host clock, documented command", real_host, " s"))
    print(spread("  same, guest clock (t_us)", real_guest, " s"))
    print(spread(f"boot to first motor command, host clock, -icount shift={scenarios.ICOUNT_SHIFT}", ic_host, " s"))
    print(spread("  same, guest clock (t_us)", ic_guest, " s"))
    print(f"failed trials: real-time {failed['real-time']}/{args.runs}, icount {failed['icount']}/{args.runs}")
    print(spread("ensure_sdk(), cached", cached, " ms", 1000))
    print(f"SDK cold build: {cold:.1f} s" if cold is not None else "SDK cold build: not measured (pass --cold)")
    print(f"image build (therapy): clean object cache {clean_build:.1f} s, warm {warm_build:.1f} s")
    if real_host:
        median = statistics.median(real_host)
        print(f"GOAL sel4_boot_to_first_motor_command: {median:.2f} s vs none set — informational")
    print(f"GOAL sel4_sdk_cached: {statistics.median(cached) * 1000:.0f} ms vs none set — informational")


if __name__ == "__main__":
    main()
