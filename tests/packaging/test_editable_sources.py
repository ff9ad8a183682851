"""A device package installed editable (``pip install -e``) imports inside its partitions' sandboxes.

`make` installs septum-pump and septum-hospital-client editable: their import hooks in site-packages point at
the checkout's source folders, which are on no ``sys.path``. The planner must list those folders as readable,
or a partition that imports them fails with EACCES under Landlock. Before this was fixed, ``septum attack
credential-search`` run from a checkout failed to start the device ("network: entry point could not be
imported ... Permission denied: .../examples/hospital_client/hospital_client/__init__.py"); the suite did not
see it because pytest puts the checkout itself on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from septum.runtime.plan import editable_sources

ROOT = Path(__file__).resolve().parents[2]


def test_editable_installs_list_their_package_folders_only() -> None:
    found = [Path(p).resolve() for p in editable_sources()]
    client = (ROOT / "examples" / "hospital_client" / "hospital_client").resolve()
    pump = (ROOT / "examples" / "infusion_pump" / "septum_pump").resolve()
    assert client in found and pump in found, "run `make` to install the example packages editable"
    # the package folders, not the projects holding them (their tests, build output, .git)
    assert ROOT.resolve() not in found and client.parent not in found


def _dist(where: Path, name: str, direct_url: str, top_level: str | None) -> None:
    info = where / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "direct_url.json").write_text(direct_url)
    if top_level is not None:
        (info / "top_level.txt").write_text(top_level)


def test_broken_or_foreign_install_records_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "my project"  # a space: the URL is percent-encoded
    project.mkdir()
    _dist(tmp_path / "site", "broken_json", "{not json", "x")
    _dist(tmp_path / "site", "not_editable", json.dumps({"url": project.as_uri(), "dir_info": {}}), "x")
    _dist(tmp_path / "site", "list_json", "[1, 2]", None)
    _dist(tmp_path / "site", "odd_dir_info", json.dumps({"url": project.as_uri(), "dir_info": "editable"}), None)
    _dist(tmp_path / "site", "no_top_level", json.dumps({"url": project.as_uri(), "dir_info": {"editable": True}}),
          None)
    _dist(tmp_path / "site", "binary_top_level", json.dumps({"url": project.as_uri(), "dir_info": {"editable": True}}),
          None)
    (tmp_path / "site" / "binary_top_level-0.1.dist-info" / "top_level.txt").write_bytes(b"\xff\xfe\x00junk")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = editable_sources()
    assert found.count(str(project)) == 1, found  # only the editable one without top_level.txt, by its folder


def test_septum_attack_from_the_checkout_starts_the_device(tmp_path: Path) -> None:
    """The user's command, from the checkout's venv, run outside the checkout with nothing added to the path."""
    if os.geteuid() != 0:
        pytest.skip("the attack suite runs partitions under their own uids and needs root")
    septum = Path(sys.executable).parent / "septum"
    if not septum.is_file():
        pytest.skip(f"no septum command beside {sys.executable}: run `make`")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    res = subprocess.run([str(septum), "attack", "--json", "credential-search"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=240, check=False)
    assert "could not be started" not in res.stdout + res.stderr, res.stdout[-3000:] + res.stderr[-3000:]
    result = json.loads(res.stdout.splitlines()[0])
    assert result["id"] == "credential-search" and result["ok"], result
