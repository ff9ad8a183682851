"""`service: health` is refused when the model loads, with its location (issue 18): the model cannot pass
`septum check` and then fail at `septum run`. Liveness is heartbeat supervision and the partition-side
liveness probes (septum.runtime.liveness), not a partition."""

from __future__ import annotations

import re
from pathlib import Path

MODELS = Path(__file__).with_name("models")


def test_health_service_is_refused_with_location(run, tmp_path: Path) -> None:
    text = (MODELS / "clean.yaml").read_text()
    text = text.replace("partitions:\n", "partitions:\n  health:\n    service: health\n    criticality: high\n", 1)
    path = tmp_path / "health.yaml"
    path.write_text(text)
    line = text.splitlines().index("    service: health") + 1
    for args in (("check", str(path)), ("run", "--explain", str(path))):
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert re.search(rf"health\.yaml:{line}:\d+: error: partition 'health': service 'health' is not a "
                         "partition Septum can run", r.output), r.output
        assert "Traceback" not in r.output
