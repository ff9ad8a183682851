"""Benchmark: `septum report` (HTML + Markdown + SBOM + MDS2) on a generated ~3,000-element model.

Prints figures, asserts nothing. Usage: .venv/bin/python benchmarks/report_scale.py [--elements N]
For comparison (from the issue): pytm 1.4.0's markdown report does not finish at 50 assets; 1.3.1
takes ~15 s at 3,000. Goal here: <= 3 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from septum.cli import cli


def generate(n_elements: int) -> str:
    """A layered device: groups of (network partition, guard, worker, safety) with interfaces, channels,
    roles, actions and components, about ``n_elements`` elements in all."""
    groups = max(1, n_elements // 15)
    lines = ["septum: 1", "device: {name: bench device, version: '1', manufacturer: bench, profile: production}",
             "interfaces:"]
    for g in range(groups):
        lines.append(f"  net{g}: {{kind: network, external: true, protocol: https, port: {1024 + g % 60000}, "
                     "authentication: mutual-tls, encryption: tls1.3, carries: [phi, commands]}")
        lines.append(f"  act{g}: {{kind: actuator}}")
    lines.append("partitions:")
    lines.append("  audit: {service: audit, criticality: high}")
    for g in range(groups):
        lines.append(f"  n{g}: {{criticality: none, owns: [net{g}], allow: {{net: true}}}}")
        lines.append(f"  a{g}: {{criticality: high, mitigation: [authenticating]}}")
        lines.append(f"  w{g}: {{criticality: low}}")
        lines.append(f"  s{g}: {{criticality: safety, owns: [act{g}], heartbeat_ms: 50, restart: fail-safe}}")
    lines += ["messages:", "  Msg: {v: {type: int, min: 0, max: 100}, s: {type: str, max_len: 32}}", "channels:"]
    for g in range(groups):
        for a, b in ((f"n{g}", f"a{g}"), (f"a{g}", f"s{g}"), (f"s{g}", f"w{g}"), (f"w{g}", f"n{g}"),
                     (f"n{g}", "audit"), (f"s{g}", "audit")):
            lines.append(f"  - {{name: {a}_{b}, from: {a}, to: {b}, message: Msg, rate: 10/s}}")
    lines += ["roles:"]
    for g in range(groups):
        lines.append(f"  srv{g}: {{kind: machine, authenticates_with: [mutual-tls], via: [net{g}]}}")
    lines += ["actions:"]
    for g in range(groups):
        lines.append(f"  do{g}: {{handled_by: s{g}, allowed: [srv{g}], safety: true}}")
    lines += ["components:"]
    for g in range(groups):
        lines.append(f"  n{g}:")
        lines.append(f"    - {{name: lib{g}, version: '1.{g}', purl: 'pkg:pypi/lib{g}@1.{g}', supplier: x}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--elements", type=int, default=3000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.yaml"
        model.write_text(generate(args.elements))
        from septum.model import load

        m, _ = load(model)
        count = (len(m.interfaces) + len(m.partitions) + len(m.channels) + len(m.roles) + len(m.actions)
                 + sum(len(c) for c in m.components.values()))
        t0 = time.perf_counter()
        r = CliRunner().invoke(cli, ["report", str(model), "-o", str(Path(tmp) / "out")])
        dt = time.perf_counter() - t0
        if r.exit_code != 0:
            print(r.output)
            raise SystemExit(r.exit_code)
        sizes = {p.name: p.stat().st_size for p in (Path(tmp) / "out").iterdir()}
        print(f"elements: {count} (interfaces {len(m.interfaces)}, partitions {len(m.partitions)}, "
              f"channels {len(m.channels)}, roles {len(m.roles)}, actions {len(m.actions)})")
        print(f"septum report (html+md+sbom+mds2, load + check + threats + views): {dt:.2f} s")
        print("output bytes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(sizes.items())))
        print(r.output.strip())


if __name__ == "__main__":
    main()
