"""A Microkit 1.2.6 SDK for board qemu_virt_aarch64, built from seL4 and Microkit sources or taken as given.

Where the SDK comes from, first match wins:
  MICROKIT_SDK=<folder>   an existing SDK (prebuilt or built earlier); used as is, never written to.
  SEL4_SRC=…, MICROKIT_SRC=…  source trees, each a ``.tar.gz`` archive or a folder.
  otherwise               the upstream archives in SEPTUM_VENDOR (default ``<repo>/../shared/vendor``).

A built SDK is cached under ``<repo>/build/sel4/sdk-<key>`` where the key hashes both sources (sha256 of an
archive, or the git commit / content hash of a folder), the cross compiler's version and this recipe's
version, so a second run only re-hashes the sources. The build happens in a temporary folder that is renamed
into place only once complete, and a file lock serialises concurrent builds, so an interrupted or parallel
build is never taken for a cached one.

Upstream's ``build_sdk.py`` hard-codes the ``aarch64-none-elf-`` toolchain and packs the tool with pyoxidizer;
neither is available here. This recipe follows it otherwise (same kernel options, same make variables, same
SDK layout), uses Debian's ``aarch64-linux-gnu-`` compiler, and ships the tool as its Python source in
``<sdk>/tool`` (it needs only the standard library), run as ``python -m microkit``.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from septum.errors import InvariantBroken, SeptumError

__all__ = [
    "BOARD",
    "CONFIGS",
    "CROSS_PREFIX",
    "Sdk",
    "SdkError",
    "SdkSources",
    "ToolRun",
    "ensure_sdk",
    "sdk_unavailable_reason",
]

BOARD = "qemu_virt_aarch64"
CONFIGS = ("debug", "release")
CROSS_PREFIX = "aarch64-linux-gnu-"
MICROKIT_VERSION = "1.2.6"
# Bump when the recipe below changes what ends up in the SDK: the cache key includes it.
RECIPE_VERSION = "1"

_GCC_CPU = "cortex-a53"
_LOADER_LINK_ADDRESS = 0x70000000
# From build_sdk.py (Microkit 1.2.6) for qemu_virt_aarch64, and per config.
_BOARD_KERNEL_OPTIONS: dict[str, bool | str] = {
    "KernelPlatform": "qemu-arm-virt",
    "KernelIsMCS": True,
    "KernelArmExportPCNTUser": True,
    "QEMU_MEMORY": "2048",
}
_CONFIG_KERNEL_OPTIONS: dict[str, dict[str, bool | str]] = {
    "release": {},
    "debug": {"KernelDebugBuild": True, "KernelPrinting": True, "KernelVerificationBuild": False},
}
# The kernel's cmake build runs Python code generators that import these (module names, pip names).
_KERNEL_BUILD_MODULES = {"ply": "ply", "jinja2": "jinja2", "yaml": "pyyaml", "pyfdt": "pyfdt",
                         "lxml": "lxml", "six": "six", "future": "future"}
_HOST_TOOLS = ("cmake", "ninja", "make")
_MARKER = ".septum-sdk.json"
_REPO = Path(__file__).resolve().parents[2]


class SdkError(SeptumError):
    """The SDK cannot be found or built: missing sources, compiler or build tools, or a failed build step."""


@dataclass(frozen=True)
class ToolRun:
    """One run of the Microkit tool: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


@dataclass(frozen=True)
class Sdk:
    """A Microkit SDK folder with board ``qemu_virt_aarch64`` in configs debug and release."""

    root: Path
    board: str = BOARD
    # True when this SDK was built by ensure_sdk() during this call (False: cached or given).
    built_now: bool = False

    def board_dir(self, config: str) -> Path:
        if config not in CONFIGS:
            raise SdkError(f"unknown Microkit config {config!r}: choose one of {', '.join(CONFIGS)}")
        return self.root / "board" / self.board / config

    def include(self, config: str) -> Path:
        return self.board_dir(config) / "include"

    def lib(self, config: str) -> Path:
        return self.board_dir(config) / "lib"

    def linker_script(self, config: str) -> Path:
        return self.lib(config) / "microkit.ld"

    def elf(self, config: str) -> Path:
        return self.board_dir(config) / "elf"

    @property
    def tool_dir(self) -> Path:
        """Folder holding the Python tool package ``microkit`` (put it on PYTHONPATH)."""
        return self.root / "tool"

    def tool_command(self) -> list[str]:
        if (self.tool_dir / "microkit" / "__main__.py").is_file():
            return [sys.executable, "-m", "microkit"]
        binary = self.root / "bin" / "microkit"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
        raise SdkError(f"the SDK at {self.root} has neither tool/microkit (Python tool) nor bin/microkit")

    def run_tool(self, system_file: Path, search_path: Sequence[Path] | Path, config: str, out_img: Path,
                 report: Path, *, timeout: float = 300.0) -> ToolRun:
        """Run the SDK's Microkit tool on ``system_file``; it writes ``out_img`` and ``report`` on success.

        A non-zero exit is returned (the tool's message is in the result), not raised: callers that use the
        tool as a validator need the refusal itself.
        """
        self.board_dir(config)
        paths = [search_path] if isinstance(search_path, Path | str) else list(search_path)
        env = dict(os.environ, MICROKIT_SDK=str(self.root))
        env["PYTHONPATH"] = os.pathsep.join([str(self.tool_dir), *filter(None, [env.get("PYTHONPATH")])])
        cmd = [*self.tool_command(), str(system_file), "--board", self.board, "--config", config,
               "-o", str(out_img), "-r", str(report)]
        if paths:
            cmd += ["--search-path", *map(str, paths)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SdkError(f"the Microkit tool did not finish within {timeout:.0f} s on {system_file}") from exc
        return ToolRun(proc.returncode, proc.stdout, proc.stderr)


@dataclass(frozen=True)
class SdkSources:
    """Where the seL4 and Microkit sources are (each an archive or a folder)."""

    sel4: Path
    microkit: Path


def vendor_dir() -> Path:
    """The folder of upstream archives: $SEPTUM_VENDOR, else <repo>/../shared/vendor (absolute)."""
    env = os.environ.get("SEPTUM_VENDOR")
    return Path(env).resolve() if env else (_REPO.parent / "shared" / "vendor").resolve()


def cache_root() -> Path:
    return _REPO / "build" / "sel4"


def _vendor_archive(pattern: str) -> Path | None:
    folder = vendor_dir()
    found = sorted(folder.glob(pattern)) if folder.is_dir() else []
    return found[-1] if found else None


def find_sources() -> SdkSources:
    """The sources from SEL4_SRC / MICROKIT_SRC, else the vendored archives; SdkError when either is missing."""
    sel4 = os.environ.get("SEL4_SRC")
    microkit = os.environ.get("MICROKIT_SRC")
    sel4_path = Path(sel4).expanduser() if sel4 else _vendor_archive("seL4-*.tar.gz")
    microkit_path = Path(microkit).expanduser() if microkit else _vendor_archive("microkit-1.2*.tar.gz")
    for what, var, path in (("seL4", "SEL4_SRC", sel4_path), ("Microkit", "MICROKIT_SRC", microkit_path)):
        if path is None:
            raise SdkError(f"no {what} source: set {var}=<archive.tar.gz or folder>, MICROKIT_SDK=<sdk folder>, "
                           f"or put the upstream archive in {vendor_dir()} (SEPTUM_VENDOR)")
        if not path.exists():
            raise SdkError(f"{var}: {path} does not exist")
        if not (path.is_dir() or path.name.endswith((".tar.gz", ".tgz"))):
            raise SdkError(f"{var}: {path} is neither a folder nor a .tar.gz archive")
    if sel4_path is None or microkit_path is None:
        raise InvariantBroken("internal invariant broken: sel4_path is not None and microkit_path is not None")
    return SdkSources(sel4_path.resolve(), microkit_path.resolve())


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_folder(path: Path) -> str:
    # A git checkout is named by its commit plus any uncommitted change; anything else by its content.
    if (path / ".git").exists() and shutil.which("git"):
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=False)
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain"], capture_output=True, text=True,
                               check=False)
        if head.returncode == 0 and dirty.returncode == 0 and not dirty.stdout.strip():
            return "git:" + head.stdout.strip()
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.relative_to(path).parts):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + _hash_file(file).encode() + b"\0")
    return "tree:" + digest.hexdigest()


def source_id(path: Path) -> str:
    return _hash_folder(path) if path.is_dir() else "sha256:" + _hash_file(path)


def _compiler_version() -> str:
    gcc = shutil.which(CROSS_PREFIX + "gcc")
    if gcc is None:
        raise SdkError(f"the cross compiler {CROSS_PREFIX}gcc is not installed: apt-get install gcc-aarch64-linux-gnu "
                       "(or give a prebuilt SDK with MICROKIT_SDK=<folder>)")
    proc = subprocess.run([gcc, "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.splitlines()[0] if proc.stdout else "unknown"


def cache_key(sources: SdkSources) -> str:
    parts = {"recipe": RECIPE_VERSION, "board": BOARD, "sel4": source_id(sources.sel4),
             "microkit": source_id(sources.microkit), "cc": _compiler_version()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _check_sdk_folder(root: Path) -> Sdk:
    if not root.is_dir():
        raise SdkError(f"MICROKIT_SDK: {root} is not a folder")
    sdk = Sdk(root.resolve())
    missing = [str(p) for c in CONFIGS
               for p in (sdk.elf(c) / "sel4.elf", sdk.elf(c) / "loader.elf", sdk.elf(c) / "monitor.elf",
                         sdk.lib(c) / "libmicrokit.a", sdk.linker_script(c), sdk.include(c) / "microkit.h")
               if not p.is_file()]
    if missing:
        raise SdkError(f"{root} is not a complete Microkit SDK for {BOARD} (debug and release); missing: "
                       + ", ".join(missing[:4]) + (" …" if len(missing) > 4 else ""))
    sdk.tool_command()
    return sdk


def _missing_build_prerequisites() -> list[str]:
    problems = []
    if shutil.which(CROSS_PREFIX + "gcc") is None:
        problems.append(f"the cross compiler {CROSS_PREFIX}gcc (apt-get install gcc-aarch64-linux-gnu)")
    for tool in _HOST_TOOLS:
        if shutil.which(tool) is None:
            problems.append(f"{tool} (apt-get install {'ninja-build' if tool == 'ninja' else tool})")
    missing_mods = [pip for mod, pip in _KERNEL_BUILD_MODULES.items() if importlib.util.find_spec(mod) is None]
    if missing_mods:
        problems.append(f"Python packages {' '.join(missing_mods)} in {sys.executable} (pip install -e '.[sel4]')")
    return problems


def sdk_unavailable_reason() -> str | None:
    """Why ensure_sdk() cannot succeed here, or None when it can (a usable SDK, or what it takes to build one).

    Cheap: never builds and never hashes sources.
    """
    given = os.environ.get("MICROKIT_SDK")
    if given:
        try:
            _check_sdk_folder(Path(given).expanduser())
        except SdkError as exc:
            return str(exc)
        return None
    try:
        find_sources()
    except SdkError as exc:
        return str(exc)
    problems = _missing_build_prerequisites()
    if problems:
        return "cannot build the Microkit SDK: missing " + "; ".join(problems)
    return None


def ensure_sdk(*, log: Path | None = None) -> Sdk:
    """A complete SDK: the given one, the cached one for these sources, or one built now (minutes, once)."""
    given = os.environ.get("MICROKIT_SDK")
    if given:
        return _check_sdk_folder(Path(given).expanduser())
    sources = find_sources()
    problems = _missing_build_prerequisites()
    if problems:
        raise SdkError("cannot build the Microkit SDK: missing " + "; ".join(problems))
    key = cache_key(sources)
    final = cache_root() / f"sdk-{key}"
    if (final / _MARKER).is_file():
        return Sdk(final)
    cache_root().mkdir(parents=True, exist_ok=True)
    with _lock(cache_root() / ".lock"):
        if (final / _MARKER).is_file():  # another process finished it while we waited
            return Sdk(final)
        for stale in cache_root().glob(".tmp-sdk-*"):  # left by a killed build; nobody else builds (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        _build(sources, key, final, log)
    return Sdk(final, built_now=True)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_member(source: Path, into: Path, member: tarfile.TarInfo) -> None:
    root = into.resolve()
    target = (root / member.name).resolve()
    link = (target.parent / member.linkname).resolve() if member.issym() or member.islnk() else target
    if member.isdev() or not target.is_relative_to(root) or not link.is_relative_to(root):
        raise SdkError(f"{source}: refusing unsafe archive member {member.name!r}")


def _extract(source: Path, into: Path) -> Path:
    """A folder with the source tree: the folder itself, or the archive's single top folder."""
    if source.is_dir():
        return source
    into.mkdir(parents=True)
    try:
        with tarfile.open(source, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # Python < 3.11.4: refuse by hand what the "data" filter would
                for member in tar.getmembers():
                    _check_member(source, into, member)
                tar.extractall(into)  # noqa: S202 (members checked above)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SdkError(f"{source} is not a readable .tar.gz archive: {exc}") from exc
    entries = [p for p in into.iterdir()]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else into


class _Runner:
    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path

    def __call__(self, cmd: list[str], cwd: Path | None = None, what: str = "") -> None:
        with self.log_path.open("a") as log:
            log.write(f"\n$ {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.run(["nice", "-n", "10", *cmd], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                  check=False)
        if proc.returncode != 0:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
            raise SdkError(f"building the Microkit SDK failed at {what or cmd[0]} (exit {proc.returncode}); "
                           f"full log: {self.log_path}\n{tail}")


def _copy_tree_files(src: Path, dest: Path) -> None:
    for p in src.rglob("*"):
        if p.is_file():
            target = dest / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)


def _check_source_trees(sel4: Path, microkit: Path) -> None:
    if not (sel4 / "CMakeLists.txt").is_file() or not (sel4 / "libsel4").is_dir():
        raise SdkError(f"{sel4} does not look like an seL4 source tree (no CMakeLists.txt / libsel4)")
    for part in ("loader", "monitor", "libmicrokit", "tool/microkit"):
        if not (microkit / part).is_dir():
            raise SdkError(f"{microkit} does not look like a Microkit {MICROKIT_VERSION} source tree (no {part}/)")


def _build(sources: SdkSources, key: str, final: Path, log: Path | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-sdk-{key}-", dir=cache_root()))
    log_path = log or cache_root() / f"build-{key}.log"
    log_path.write_text(f"Microkit SDK build, key {key}, sources {sources}\n")
    run = _Runner(log_path)
    try:
        work = tmp / "work"
        sel4 = _extract(sources.sel4, work / "sel4-src")
        microkit = _extract(sources.microkit, work / "microkit-src")
        _check_source_trees(sel4, microkit)
        sdk_root = tmp / "sdk"
        for config in CONFIGS:
            _build_config(run, sel4, microkit, sdk_root, work / config, config)
        shutil.copytree(microkit / "tool" / "microkit", sdk_root / "tool" / "microkit",
                        ignore=shutil.ignore_patterns("__pycache__"))
        if (microkit / "tool" / "test").is_dir():  # the tool's own SDF fixtures: an external reference
            shutil.copytree(microkit / "tool" / "test", sdk_root / "tool" / "test")
        for name in ("LICENSE.md", "LICENSES"):
            src = microkit / name
            if src.is_dir():
                shutil.copytree(src, sdk_root / name)
            elif src.is_file():
                shutil.copy2(src, sdk_root / name)
        (sdk_root / _MARKER).write_text(json.dumps({
            "key": key, "microkit": MICROKIT_VERSION, "board": BOARD, "configs": list(CONFIGS),
            "sel4_source": str(sources.sel4), "microkit_source": str(sources.microkit),
            "sel4_id": source_id(sources.sel4), "microkit_id": source_id(sources.microkit),
        }, indent=2) + "\n")
        _check_sdk_folder(sdk_root)
        if final.exists():  # a stale, incomplete folder of the same key (no marker): replace it
            shutil.rmtree(final)
        os.rename(sdk_root, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_config(run: _Runner, sel4: Path, microkit: Path, sdk_root: Path, work: Path, config: str) -> None:
    board_dir = sdk_root / "board" / BOARD / config
    for sub in ("include", "lib", "elf"):
        (board_dir / sub).mkdir(parents=True, exist_ok=True)
    install = work / "sel4-install"
    build = work / "sel4-build"
    options = {**_BOARD_KERNEL_OPTIONS, **_CONFIG_KERNEL_OPTIONS[config]}
    defs = [f"-D{k}={('ON' if v else 'OFF') if isinstance(v, bool) else v}" for k, v in sorted(options.items())]
    run(["cmake", "-GNinja", f"-DCMAKE_INSTALL_PREFIX={install}", f"-DPYTHON3={sys.executable}",
         f"-DCROSS_COMPILER_PREFIX={CROSS_PREFIX}", *defs, "-S", str(sel4), "-B", str(build)],
        what=f"configuring seL4 ({config})")
    run(["cmake", "--build", str(build), "-j", "2"], what=f"building seL4 ({config})")
    run(["cmake", "--install", str(build)], what=f"installing seL4 ({config})")
    shutil.copy2(install / "bin" / "kernel.elf", board_dir / "elf" / "sel4.elf")
    for part in ("kernel_Config", "libsel4", "libsel4/sel4_Config", "libsel4/autoconf"):
        _copy_tree_files(install / part / "include", board_dir / "include")
    common = [f"TOOLCHAIN={CROSS_PREFIX}", f"GCC_CPU={_GCC_CPU}", f"SEL4_SDK={board_dir}"]
    for component, extra in (("loader", [f"BOARD={BOARD}", f"LINK_ADDRESS={_LOADER_LINK_ADDRESS:#x}"]),
                             ("monitor", [f"BOARD={BOARD}"]), ("libmicrokit", [])):
        out = work / component
        out.mkdir(parents=True, exist_ok=True)
        run(["make", "-j", "2", "-C", component, f"BUILD_DIR={out}", *common, *extra], cwd=microkit,
            what=f"building {component} ({config})")
        if component == "libmicrokit":
            shutil.copy2(out / "libmicrokit.a", board_dir / "lib" / "libmicrokit.a")
            shutil.copy2(microkit / "libmicrokit" / "microkit.ld", board_dir / "lib" / "microkit.ld")
            _copy_tree_files(microkit / "libmicrokit" / "include", board_dir / "include")
        else:
            shutil.copy2(out / f"{component}.elf", board_dir / "elf" / f"{component}.elf")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m septum.sel4.sdk``: make sure an SDK exists and print its folder (used by ``make sel4``)."""
    import time

    del argv
    start = time.monotonic()
    try:
        sdk = ensure_sdk()
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    how = "built" if sdk.built_now else "ready"
    print(f"Microkit {MICROKIT_VERSION} SDK {how} in {time.monotonic() - start:.1f} s: {sdk.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
