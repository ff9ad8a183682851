"""Loader limits: alias bombs, node count, depth, file size and kind, and every bad tag value are refused
with a located error (exit 2 from `septum check`), never a traceback, a hang or an out-of-memory."""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from septum.cli import cli
from septum.model import ModelError, load, loads
from septum.model import loader as loader_mod

HEADER = 'septum: 1\ndevice: {name: d, version: "1", manufacturer: m}\n'
LOCATED = re.compile(r"^\S+:\d+:\d+: error: .+")


def errors(text: str) -> list[str]:
    with pytest.raises(ModelError) as exc:
        loads(text, "m.yaml")
    return [str(i) for i in exc.value.issues]


def check_cli(path: Path | str) -> tuple[int, str]:
    """Run `septum check` in-process; a traceback (any exception but SystemExit) fails the test."""
    result = CliRunner().invoke(cli, ["check", str(path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback from septum check: {result.exception!r}") from result.exception
    return result.exit_code, result.stderr


def bomb(levels: int = 9, width: int = 10) -> str:
    """Billion laughs: width**levels leaves from a few hundred bytes, under a key the model does not use."""
    lines = ["unused:", "  a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return HEADER + "\n".join(lines) + "\n"


def test_alias_bomb_under_unused_key_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "bomb.yaml"
    f.write_text(bomb())
    code, err = check_cli(f)
    assert code == 2
    # the first level whose expansion passes the limit: a6 has 10**7 leaves (> 2,000,000), a5 has 10**6
    assert f"{f}:10:7: error: YAML aliases expand this value to more than 2,000,000 nodes" in err


def test_alias_expansion_below_the_limit_loads() -> None:
    # legitimate reuse: a shared value referenced from many places is fine
    text = HEADER + "unused:\n  base: &r [1, 2, 3]\n  uses: [" + ", ".join(["*r"] * 100) + "]\n"
    errs = errors(text)
    assert errs == ["m.yaml:3:1: error: unknown top-level section 'unused'"]


def test_recursive_alias_is_located() -> None:
    (e,) = errors(HEADER + "extra: &a [1, *a]\n")
    assert e.startswith("m.yaml:3:8: error:") and "recursive alias" in e


def test_node_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader_mod, "MAX_NODES", 50)
    (e,) = errors(HEADER + "extra: [" + ", ".join(["x"] * 60) + "]\n")
    assert e == "m.yaml:3:8: error: the model has more than 50 nodes"
    assert errors(HEADER + "extra: [" + ", ".join(["x"] * 30) + "]\n") == [
        "m.yaml:3:1: error: unknown top-level section 'extra'"]


def test_depth_limit() -> None:
    depth = loader_mod.MAX_DEPTH + 5
    (e,) = errors(HEADER + "extra: " + "[" * depth + "]" * depth + "\n")
    assert e.startswith("m.yaml:3:") and f"nested deeper than {loader_mod.MAX_DEPTH} levels" in e


BAD_VALUES = [
    ("!!int x", "'x' is not a valid !!int value"),
    ("!!float x", "'x' is not a valid !!float value"),
    ("!!timestamp x", "'x' is not a valid !!timestamp value"),
    ("!!timestamp 2026-13-45", "'2026-13-45' is not a valid !!timestamp value"),
    ("2026-13-45", "'2026-13-45' is not a valid !!timestamp value"),  # implicitly a date
    ("!!bool x", "'x' is not a valid !!bool value"),
    ("!!int 0x", "'0x' is not a valid !!int value"),
    ("!!int", "'' is not a valid !!int value"),  # found by the fuzz test: an IndexError in PyYAML
    ("0b_", "'0b_' is not a valid !!int value"),  # implicitly an int
    ("!!float .", "'.' is not a valid !!float value"),
    ("!!binary aGk=", "the tag !!binary is not supported on a scalar"),
    ("!!map x", "the tag !!map is not supported on a scalar"),
    ("!custom x", "the tag !custom is not supported on a scalar"),
    ("!!set {a: null}", "the tag !!set is not supported here"),
    ("!!omap [{a: 1}]", "the tag !!omap is not supported here"),
    ("!!str [1]", "the tag !!str is not supported here"),
    ("9" * 100_000, "integer literal of 100000 characters is too large"),
    (str(2**64), "integer out of range"),
    (str(-(2**63) - 1), "integer out of range"),
]


@pytest.mark.parametrize(("value", "message"), BAD_VALUES)
def test_bad_tag_values_are_located(tmp_path: Path, value: str, message: str) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(HEADER + f"device_notes:\n  here: {value}\n")
    code, err = check_cli(f)
    assert code == 2
    assert f"{f}:4:9: error: YAML value: {message}" in err
    assert all(LOCATED.match(line) for line in err.splitlines())


def test_bad_tag_on_a_key_is_located() -> None:
    assert any(e.startswith("m.yaml:3:1: error: YAML value: 'x' is not a valid !!int value")
               for e in errors(HEADER + "!!int x: 1\n"))


def test_every_bad_value_reported_together() -> None:
    errs = errors(HEADER + "extra:\n  a: !!int x\n  b: !!float y\n")
    assert [e.split(" error: ")[0] for e in errs if "YAML value" in e] == ["m.yaml:4:6:", "m.yaml:5:6:"]


def test_valid_tags_still_load() -> None:
    text = HEADER.replace("septum: 1", "septum: !!int 1").replace("name: d", "name: !!str 0x10") \
        + "partitions:\n  p: {resources: {memory_mb: !!int 0x40}}\n"
    model, _ = loads(text)
    assert model.septum == 1 and model.device.name == "0x10"
    assert model.partitions["p"].resources.memory_mb == 64


# --------------------------------------------------------------------------- what is read


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "model.yaml"
    os.mkfifo(fifo)
    out: dict[str, object] = {}
    # run in a thread so a regression (a blocking open) fails the test instead of hanging the run
    t = threading.Thread(target=lambda: out.update(r=check_cli(fifo)), daemon=True)
    t.start()
    t.join(timeout=60)
    if t.is_alive():
        # unblock the reader so the thread ends, then fail
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("septum check blocked on a FIFO")
    code, err = out["r"]  # type: ignore[misc]
    assert code == 2 and f"{fifo}:1:1: error: cannot read the model: it is a FIFO" in err


@pytest.mark.parametrize("dev", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused(dev: str) -> None:
    code, err = check_cli(dev)
    assert code == 2 and f"{dev}:1:1: error: cannot read the model: it is a device" in err


def test_directory_and_socket_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="it is a directory"):
        load(tmp_path)
    sock_path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(ModelError, match="cannot read the model"):
            load(sock_path)


def test_nul_in_the_file_name_is_refused() -> None:
    with pytest.raises(ModelError, match="NUL byte"):
        load("model\x00.yaml")


def test_symlink_to_regular_file_loads(tmp_path: Path) -> None:
    real = Path(__file__).parents[2] / "examples" / "infusion_pump" / "model.yaml"
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    model, _ = load(link)
    assert "safety_monitor" in model.partitions


def test_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:  # sparse: the size is what counts, nothing is written or read
        fh.truncate(loader_mod.MAX_MODEL_BYTES + 1)
    code, err = check_cli(big)
    assert code == 2 and f"{big}:1:1: error: the model is larger than the limit of 8 MiB" in err
    # a file of exactly the limit is read; one byte more is refused
    monkeypatch.setattr(loader_mod, "MAX_MODEL_BYTES", 40)
    ok = tmp_path / "ok.yaml"
    ok.write_text("septum: 1\ndevice: {name: d}\n" + "#" * (40 - 28))
    assert ok.stat().st_size == 40
    assert load(ok)[0].device.name == "d"
    ok.write_text(ok.read_text() + "#")
    with pytest.raises(ModelError, match="larger than the limit"):
        load(ok)
