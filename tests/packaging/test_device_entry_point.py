"""``septum attack`` and the demo find the reference pump through the ``septum.devices`` entry point.

`make` installs ``septum-pump`` (examples/infusion_pump) editable, so here the entry point is the checkout's
code; without it both commands say how to install it and exit 2, without a traceback.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from septum import demo
from septum.cli import cli
from septum.device_packages import GROUP, REFERENCE_PUMP, device_package
from septum.errors import SeptumError

ROOT = Path(__file__).resolve().parents[2]


def _only(eps: list[importlib.metadata.EntryPoint]):
    real = importlib.metadata.entry_points

    def fake(**kw):
        return importlib.metadata.EntryPoints(eps) if kw.get("group") == GROUP else real(**kw)

    return fake


def test_the_installed_pump_is_found_by_entry_point() -> None:
    found = [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.name == REFERENCE_PUMP]
    assert [ep.value for ep in found] == ["septum_pump.device_info"], "run `make` to install septum-pump"
    mod = device_package()
    assert mod.__name__ == "septum_pump.device_info"
    # in a checkout, the package data are the files one edits (links), not copies beside the code
    assert mod.model_path() == (ROOT / "examples" / "infusion_pump" / "model.yaml").resolve()
    assert mod.drug_library_path() == (ROOT / "examples" / "infusion_pump" / "drug_library.yaml").resolve()


def test_attack_says_the_pump_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", _only([]))
    res = CliRunner().invoke(cli, ["attack", "--list"])
    assert res.exit_code == 2, res.output
    assert "the reference pump is not installed" in res.output
    assert "pip install" in res.output and "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_demo_says_the_pump_is_not_installed(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", _only([]))
    monkeypatch.setattr(demo, "STEPS", [])  # nothing may run before the check
    assert demo.main() == 2
    out = capsys.readouterr().out
    assert "the reference pump is not installed" in out and "pip install" in out


def test_a_registered_but_missing_module_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = importlib.metadata.EntryPoint(REFERENCE_PUMP, "septum_pump_not_here.device_info", GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", _only([broken]))
    with pytest.raises(SeptumError, match=r"registered .*septum_pump_not_here.* cannot be imported"):
        device_package()
    res = CliRunner().invoke(cli, ["attack", "--list"])
    assert res.exit_code == 2 and "cannot be imported" in res.output, res.output


def test_two_packages_claiming_the_pump_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [importlib.metadata.EntryPoint(REFERENCE_PUMP, v, GROUP) for v in ("a.device", "b.device")]
    monkeypatch.setattr(importlib.metadata, "entry_points", _only(eps))
    with pytest.raises(SeptumError, match="registered more than once"):
        device_package()


def test_septum_pump_command_prints_the_model_path(capsys) -> None:
    from septum_pump.device_info import main

    assert main(["model"]) == 0
    assert Path(capsys.readouterr().out.strip()) == (ROOT / "examples" / "infusion_pump" / "model.yaml").resolve()
    assert main(["nonsense"]) == 2
    assert "usage: septum-pump" in capsys.readouterr().err
