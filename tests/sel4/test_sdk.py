"""The Microkit SDK: built once from sources, then reused; clear refusals for missing or broken inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from septum.sel4 import sdk as sdk_mod
from septum.sel4.sdk import CONFIGS, Sdk, SdkError, ensure_sdk, sdk_unavailable_reason
from septum.sel4.tool import validate_system

REPO = Path(__file__).resolve().parents[2]


def _can_build() -> str | None:
    missing = sdk_mod._missing_build_prerequisites()
    return "; ".join(missing) if missing else None


needs_build_tools = pytest.mark.skipif(_can_build() is not None, reason=f"cannot build an SDK here: {_can_build()}")


@pytest.fixture
def no_sdk_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("MICROKIT_SDK", "SEL4_SRC", "MICROKIT_SRC"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_sdk_has_every_part_for_both_configs(sdk: Sdk) -> None:
    for config in CONFIGS:
        for part in ("sel4.elf", "loader.elf", "monitor.elf"):
            assert (sdk.elf(config) / part).stat().st_size > 0
        assert (sdk.lib(config) / "libmicrokit.a").is_file()
        assert sdk.linker_script(config).is_file()
        assert (sdk.include(config) / "microkit.h").is_file()
        assert (sdk.include(config) / "sel4" / "sel4.h").is_file()
    assert (sdk.tool_dir / "microkit" / "__main__.py").is_file()


def test_second_call_reuses_the_cached_sdk_without_building(sdk: Sdk, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get("MICROKIT_SDK"):
        pytest.skip("MICROKIT_SDK is given: nothing is built or cached")

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("ensure_sdk() rebuilt an SDK that is cached")

    monkeypatch.setattr(sdk_mod, "_build", no_build)
    again = ensure_sdk()
    assert again.root == sdk.root
    assert not again.built_now
    marker = json.loads((again.root / ".septum-sdk.json").read_text())
    assert again.root.name == f"sdk-{marker['key']}"


def test_the_tool_in_the_sdk_runs_and_builds_an_image(sdk: Sdk, tmp_path: Path) -> None:
    system = tmp_path / "one.system"
    system.write_text('<?xml version="1.0"?>\n<system><protection_domain name="one" priority="100">'
                      '<program_image path="one.elf"/></protection_domain></system>\n')
    run = validate_system(sdk, system, workdir=tmp_path / "work")
    assert run.ok, run.output
    assert (tmp_path / "work" / "loader.img").stat().st_size > 0
    assert "one" in (tmp_path / "work" / "report.txt").read_text()


def test_the_tool_refuses_a_bad_system(sdk: Sdk, tmp_path: Path) -> None:
    system = tmp_path / "bad.system"
    system.write_text('<?xml version="1.0"?>\n<system><protection_domain name="one" priority="300">'
                      '<program_image path="one.elf"/></protection_domain></system>\n')
    run = validate_system(sdk, system)
    assert not run.ok
    assert "priority" in run.output


def test_a_missing_source_is_named(no_sdk_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_sdk_env.setenv("SEL4_SRC", str(tmp_path / "nowhere.tar.gz"))
    reason = sdk_unavailable_reason()
    assert reason is not None and "SEL4_SRC" in reason and "does not exist" in reason
    with pytest.raises(SdkError, match="does not exist"):
        ensure_sdk()


def test_no_sources_at_all_point_to_the_variables(no_sdk_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_sdk_env.setenv("SEPTUM_VENDOR", str(tmp_path / "empty-vendor"))
    reason = sdk_unavailable_reason()
    assert reason is not None and "SEL4_SRC" in reason and "MICROKIT_SDK" in reason


def test_a_missing_cross_compiler_is_named(no_sdk_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    no_sdk_env.setenv("PATH", str(tmp_path / "bin"))
    for var, pattern in (("SEL4_SRC", "seL4-*.tar.gz"), ("MICROKIT_SRC", "microkit-1.2*.tar.gz")):
        fake = tmp_path / pattern.replace("*", "x")
        fake.write_bytes(b"")
        no_sdk_env.setenv(var, str(fake))
    reason = sdk_unavailable_reason()
    assert reason is not None and "aarch64-linux-gnu-gcc" in reason
    with pytest.raises(SdkError, match="aarch64-linux-gnu-gcc"):
        ensure_sdk()


@needs_build_tools
def test_a_corrupt_archive_is_refused_and_nothing_is_cached(no_sdk_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_sdk_env.setattr(sdk_mod, "cache_root", lambda: tmp_path / "cache")
    corrupt = tmp_path / "seL4-corrupt.tar.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00 this is not gzip data " * 40)
    no_sdk_env.setenv("SEL4_SRC", str(corrupt))
    with pytest.raises(SdkError, match=r"not a readable \.tar\.gz archive"):
        ensure_sdk()
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert leftovers == []


@needs_build_tools
def test_a_folder_that_is_not_a_source_tree_is_refused(no_sdk_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_sdk_env.setattr(sdk_mod, "cache_root", lambda: tmp_path / "cache")
    empty = tmp_path / "not-sel4"
    empty.mkdir()
    (empty / "README").write_text("nothing here\n")
    no_sdk_env.setenv("SEL4_SRC", str(empty))
    with pytest.raises(SdkError, match="does not look like an seL4 source tree"):
        ensure_sdk()


@needs_build_tools
def test_an_interrupted_build_is_never_taken_as_cached(no_sdk_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_sdk_env.setattr(sdk_mod, "cache_root", lambda: tmp_path / "cache")
    sources = sdk_mod.find_sources()
    calls: list[str] = []

    def interrupted(*args: object, **kwargs: object) -> None:
        calls.append("config")
        raise KeyboardInterrupt

    no_sdk_env.setattr(sdk_mod, "_build_config", interrupted)
    killed = tmp_path / "cache" / ".tmp-sdk-0123456789abcdef-killed"  # what a SIGKILLed build leaves behind
    (killed / "sdk" / "board").mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt):
        ensure_sdk()
    assert not killed.exists()
    key = sdk_mod.cache_key(sources)
    assert not (tmp_path / "cache" / f"sdk-{key}").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == []
    # A folder of the right name but without the completion marker (e.g. copied half-way) is not used either.
    (tmp_path / "cache" / f"sdk-{key}" / "board").mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt):
        ensure_sdk()
    assert calls == ["config", "config"]


def test_a_folder_source_is_keyed_by_its_content(tmp_path: Path) -> None:
    tree = tmp_path / "src"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.c").write_text("int a;\n")
    first = sdk_mod.source_id(tree)
    assert sdk_mod.source_id(tree) == first
    (tree / "sub" / "a.c").write_text("int b;\n")
    assert sdk_mod.source_id(tree) != first


def test_an_incomplete_given_sdk_is_refused(no_sdk_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "board" / "qemu_virt_aarch64" / "debug" / "elf").mkdir(parents=True)
    no_sdk_env.setenv("MICROKIT_SDK", str(tmp_path))
    reason = sdk_unavailable_reason()
    assert reason is not None and "not a complete Microkit SDK" in reason and "sel4.elf" in reason
    with pytest.raises(SdkError, match="not a complete Microkit SDK"):
        ensure_sdk()


def test_a_given_sdk_is_used_as_is(sdk: Sdk, no_sdk_env: pytest.MonkeyPatch) -> None:
    no_sdk_env.setenv("MICROKIT_SDK", str(sdk.root))
    no_sdk_env.setenv("SEL4_SRC", "/nonexistent")  # a given SDK wins over sources
    assert sdk_unavailable_reason() is None
    assert ensure_sdk().root == sdk.root


def test_the_command_reports_a_missing_source_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MICROKIT_SDK", "MICROKIT_SRC")}
    env["SEL4_SRC"] = str(tmp_path / "missing.tar.gz")
    proc = subprocess.run([sys.executable, "-m", "septum.sel4.sdk"], env=env, capture_output=True, text=True,
                          cwd=REPO, check=False, timeout=120)
    assert proc.returncode == 2
    assert "SEL4_SRC" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_sources_the_sel4_tests_skip_with_a_printed_reason(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MICROKIT_SDK", "MICROKIT_SRC", "SEL4_SRC")}
    env["SEPTUM_VENDOR"] = str(tmp_path / "no-vendor")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"{Path(__file__)}::test_sdk_has_every_part_for_both_configs"],
                          env=env, capture_output=True, text=True, cwd=REPO, check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 skipped" in out
    assert "SKIPPED" in out and "no Microkit SDK" in out and "SEL4_SRC" in out
