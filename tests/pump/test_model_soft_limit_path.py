"""The model side of the soft-limit approval: only auth feeds the safety monitor's override channel.

The runtime gives the sending end of ``soft_limit_approvals`` to auth alone (the channel's ``from``); the
analysis (MED005) refuses a model in which the partition the monitor watches could reach that channel
other than through auth. These tests pin both facts on the shipped model.
"""

from __future__ import annotations

from pathlib import Path

from septum.analysis.engine import check
from septum.model.loader import loads

MODEL = Path(__file__).resolve().parents[2] / "examples" / "infusion_pump" / "model.yaml"
CHANNEL = "  - {name: soft_limit_approvals, from: auth, to: safety_monitor, message: SoftLimitApproval, rate: 2/s,"


def test_the_approval_channel_is_auths_and_an_override_into_the_monitor() -> None:
    model, _ = loads(MODEL.read_text(), str(MODEL))
    ch = model.channel("soft_limit_approvals")
    assert (ch.src, ch.dst, ch.purpose) == ("auth", "safety_monitor", "override")
    act = model.actions["approve_soft_limit"]
    assert act.handled_by == "safety_monitor" and list(act.allowed) == ["clinician"] and list(act.via) == ["keypad"]
    assert not [f for f in check(model).findings if f.blocking]


def test_an_approval_channel_from_pump_control_is_refused_by_the_analysis() -> None:
    text = MODEL.read_text()
    assert text.count(CHANNEL) == 1
    bad, _ = loads(text.replace(CHANNEL, CHANNEL.replace("from: auth", "from: pump_control")), "variant.yaml")
    found = [f for f in check(bad).findings if f.rule == "MED005"]
    assert found and "soft_limit_approvals" in found[0].message, [f.message for f in check(bad).findings]
