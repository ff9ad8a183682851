"""The wheel-install check: the built wheels work in a fresh venv outside the checkout.

Builds the wheels of septum, septum-hospital-client and septum-pump from a copy of their sources (so the
checkout gets no build/ or egg-info folders), installs them into a new venv in a temporary folder with pip's
ordinary index (their dependencies come from the registry or pip's cache), and runs the ``septum`` commands a
user would from a folder outside the checkout, the model found through the installed package
(``septum-pump model``). Nothing from the checkout is on the path: the environment is cleared of PYTHONPATH
and the commands run from the fresh venv's bin/. As root, one attack scenario then runs the installed pump
under the real sandbox (its partitions import septum_pump from the venv's site-packages). About a minute and a
half on a quiet machine, most of it pip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# the first test's setup builds and installs everything: on a cold pip cache that can outlast the suite's 300 s
pytestmark = pytest.mark.timeout(1500)

ROOT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 600  # generous: a cold pip cache downloads cryptography, pydantic, ...
CMD_TIMEOUT = 120

# what each distribution's build needs from the checkout (copied; links followed, so the package data are files)
SOURCES = {
    ".": ["pyproject.toml", "README.md", "septum"],
    "examples/hospital_client": ["pyproject.toml", "README.md", "hospital_client"],
    "examples/infusion_pump": ["pyproject.toml", "septum_pump"],
}


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, f"{res.args}: exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


@pytest.fixture(scope="module")
def fresh() -> Iterator[dict]:
    # not pytest's tmp_path (private to root): the partitions, under their own uids, read the installed code
    base = Path(tempfile.mkdtemp(prefix="septum-wheel-install-"))
    os.chmod(base, 0o755)  # the venv must be readable by the partitions' uids
    assert not base.resolve().is_relative_to(ROOT), "the check must run outside the checkout"
    try:
        yield _install(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _install(base: Path) -> dict:
    src = base / "src"
    for sub, names in SOURCES.items():
        for name in names:
            frm, to = ROOT / sub / name, src / sub / name
            if frm.is_dir():
                shutil.copytree(frm, to, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
            else:
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(frm, to)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    wheels = base / "wheels"
    _ok(_run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src),
              str(src / "examples" / "hospital_client"), str(src / "examples" / "infusion_pump")],
             base, env, PIP_TIMEOUT))
    built = {p.name.split("-")[0]: p for p in wheels.glob("*.whl")}
    assert sorted(built) == ["septum", "septum_hospital_client", "septum_pump"], sorted(built)
    venv = base / "venv"
    _ok(_run([sys.executable, "-m", "venv", str(venv)], base, env))
    # septum's compliance extra: `septum report` writes the SBOM with cyclonedx (the pump needs the hospital one)
    _ok(_run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
              f"septum[compliance] @ {built['septum'].as_uri()}", str(built["septum_hospital_client"]),
              str(built["septum_pump"])], base, env, PIP_TIMEOUT))
    work = base / "elsewhere"
    work.mkdir()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {"venv": venv, "work": work, "env": env, "bin": venv / "bin"}


def septum(fresh: dict, *args: str) -> subprocess.CompletedProcess:
    return _run([str(fresh["bin"] / "septum"), *args], fresh["work"], fresh["env"])


def test_the_fresh_venv_imports_installed_code_only(fresh: dict) -> None:
    out = _ok(_run([str(fresh["bin"] / "python"), "-c", "import septum, septum_pump, hospital_client\n"
                    "for m in (septum, septum_pump, hospital_client): print(m.__file__)"],
                   fresh["work"], fresh["env"]))
    for line in out.split():
        assert Path(line).is_relative_to(fresh["venv"]) and not Path(line).is_relative_to(ROOT), line


def test_septum_commands_from_outside_the_checkout(fresh: dict) -> None:
    model = Path(_ok(_run([str(fresh["bin"] / "septum-pump"), "model"], fresh["work"], fresh["env"])).strip())
    assert model.is_file() and model.is_relative_to(fresh["venv"]), model
    assert "partitions:" in model.read_text()  # the model itself, not a link back into the checkout

    out = _ok(septum(fresh, "check", str(model)))
    assert "PASS: 0 errors" in out, out

    _ok(septum(fresh, "gen", "microkit", str(model), "-o", "mk"))
    assert "<system>" in (fresh["work"] / "mk" / "device.system").read_text()

    _ok(septum(fresh, "report", str(model), "-o", "report"))
    assert (fresh["work"] / "report" / "report.html").stat().st_size > 0

    out = _ok(septum(fresh, "run", "--explain", str(model)))
    assert "partition pump_control" in out and "runs septum_pump.pump_control:main" in out, out

    out = _ok(septum(fresh, "attack", "--list"))
    assert "net-channels" in out and "stopped by:" in out, out


def test_an_attack_runs_against_the_installed_pump(fresh: dict) -> None:
    """The partitions import septum_pump from the fresh venv's site-packages, inside the real sandbox."""
    if os.geteuid() != 0:
        pytest.skip("the attack suite runs partitions under their own uids and needs root")
    res = septum(fresh, "attack", "--json", "credential-search")
    assert res.returncode == 0, f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    result = json.loads(res.stdout.splitlines()[0])
    assert result["id"] == "credential-search" and result["ok"] and result["audit_ok"], result
    # the device that ran is the installed one: the attack searched the venv's copy of the model
    assert any("site-packages/septum_pump/data/model.yaml" in t for t in result["tried"]), result["tried"]


def test_attack_without_the_pump_says_how_to_install_it(fresh: dict) -> None:
    """Last in this file: it uninstalls septum-pump from the module's venv."""
    _ok(_run([str(fresh["bin"] / "python"), "-m", "pip", "uninstall", "-q", "-y", "septum-pump"],
             fresh["work"], fresh["env"]))
    res = septum(fresh, "attack", "--list")
    assert res.returncode == 2, res
    assert "the reference pump is not installed" in res.stderr and "pip install" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
