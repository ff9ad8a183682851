"""Rule MED002 and the runtime agree: a model in which an action's handler is reachable around auth is
refused by the runtime's analysis gate, and in a model without such a channel a partition cannot send the
handler anything except through auth (it holds no channel end to do it with)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import yaml
from e2e_helpers import MODELS, require_root, running, tmpdir

from septum.model import loads
from septum.runtime.gate import RefusedToRun
from septum.runtime.supervisor import Supervisor, remove_state_dir
from septum.services.provisioning import provision_device

sys.path.insert(0, str(MODELS))
from svc_parts.board import Board


def test_bypass_channel_is_flagged_by_med002_and_refused_by_the_runtime() -> None:
    raw = yaml.safe_load((MODELS / "auth_device.yaml").read_text())
    raw["channels"].append({"name": "ui_direct", "from": "ui", "to": "pump_control", "message": "Command",
                            "purpose": "command"})
    model, source = loads(yaml.safe_dump(raw), "bypass.yaml")
    state = tmpdir("septum-gate-")
    try:
        sup = Supervisor(model, source, model_dir=MODELS, state_dir=state)
        with pytest.raises(RefusedToRun) as refused:
            sup.start()
        rules = {getattr(f, "rule", "") for f in refused.value.findings}
        assert "MED002" in rules
        assert sup.outcome == "new" and sup.partition_pids() == {}  # nothing was started
    finally:
        remove_state_dir(state)


def test_the_unmodified_model_passes_med002() -> None:
    from septum.analysis import check

    model, source = loads((MODELS / "auth_device.yaml").read_text(), "auth_device.yaml")
    assert not [f for f in check(model, source).findings if f.rule == "MED002"]


@pytest.fixture
def board() -> Iterator[Board]:
    b = Board()
    yield b
    b.close()


def test_a_request_that_skips_auth_has_no_channel_to_travel_on(board: Board) -> None:
    require_root()
    out = tmpdir("septum-prov-")
    prov = provision_device(MODELS / "auth_device.yaml", out / "dev")
    with running("auth_device.yaml", hardware=board, check=False, provision=prov.folders) as sup:
        after = sup.events.last_seq
        board.send("keypad", "commands", request_id=1, action="start_infusion", principal="x", role="clinician",
                   drug="", dose_rate=1.0, order_id="")
        ev = sup.events.wait_for(lambda e: e.kind == "relay_refused" and e.partition == "ui", 10, after=after)
        assert ev is not None and "may not send on 'commands'" in ev.fields["error"]
        assert not [e for e in sup.events.history if e.kind == "received" and e.partition == "pump_control"]
    remove_state_dir(out)
