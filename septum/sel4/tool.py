"""Running the real Microkit tool: PD programs from C, and the tool as an external validator of a system file.

The 1.2.6 tool checks a system description only while building an image, and building needs an ELF for every
``program_image``. To use it as a validator, :func:`validate_system` builds one trivial placeholder PD (it
defines ``init``, ``notified`` and ``protected`` and does nothing) with the SDK's compiler flags and links a
copy under each program_image name, then runs the tool: what it accepts it really lays out as an image.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

from septum.sel4.sdk import CROSS_PREFIX, Sdk, SdkError, ToolRun

__all__ = ["PLACEHOLDER_C", "build_pd_elf", "placeholder_elf", "program_images", "validate_system"]

# A PD that does nothing: enough for the tool to place it, with every entry point a pp="true" PD may need.
PLACEHOLDER_C = """\
#include <stdint.h>
#include <microkit.h>

void init(void) {}
void notified(microkit_channel ch) { (void)ch; }
microkit_msginfo protected(microkit_channel ch, microkit_msginfo msginfo) { (void)ch; return msginfo; }
"""

_CFLAGS = ("-mcpu=cortex-a53", "-mstrict-align", "-nostdlib", "-ffreestanding", "-O2", "-Wall", "-Werror",
          "-Wno-unused-function")  # microkit.h defines static helpers a PD need not use


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    if proc.returncode != 0:
        raise SdkError(f"{what} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-2000:]}")


def build_pd_elf(sdk: Sdk, config: str, sources: list[Path], out: Path, *,
                 include: list[Path] | None = None) -> Path:
    """Compile and link C sources into a PD program for ``config`` (the flags docs/sel4.md gives for this board)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="septum-pd-") as tmp:
        objects = []
        for i, src in enumerate(sources):
            obj = Path(tmp) / f"{i}-{src.stem}.o"
            incs = [f"-I{p}" for p in (include or [])]
            _run([f"{CROSS_PREFIX}gcc", "-c", *_CFLAGS, f"-I{sdk.include(config)}", *incs, str(src), "-o", str(obj)],
                 f"compiling {src}")
            objects.append(str(obj))
        _run([f"{CROSS_PREFIX}ld", f"-L{sdk.lib(config)}", *objects, "-lmicrokit", f"-T{sdk.linker_script(config)}",
              "-o", str(out)], f"linking {out.name}")
    return out


def placeholder_elf(sdk: Sdk, config: str, out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="septum-placeholder-") as tmp:
        src = Path(tmp) / "placeholder.c"
        src.write_text(PLACEHOLDER_C)
        return build_pd_elf(sdk, config, [src], out)


def program_images(system_file: Path) -> list[str]:
    """The program_image paths a system file names (empty when it is not well-formed XML: the tool says why)."""
    try:
        root = ET.parse(system_file).getroot()  # noqa: S314 (our own and the tool's fixtures, parsed locally)
    except (ET.ParseError, OSError):
        return []
    return sorted({el.get("path", "") for el in root.iter("program_image") if el.get("path")})


def validate_system(sdk: Sdk, system_file: Path, *, config: str = "debug", workdir: Path | None = None,
                    placeholder: Path | None = None) -> ToolRun:
    """Run the real tool on ``system_file`` with a placeholder ELF under every program_image name.

    ``placeholder`` is an ELF from :func:`placeholder_elf` to reuse (one compile for many files).
    """
    with tempfile.TemporaryDirectory(prefix="septum-validate-") as tmp:
        work = workdir or Path(tmp)
        elfs = work / "elf"
        elfs.mkdir(parents=True, exist_ok=True)
        placeholder = placeholder or placeholder_elf(sdk, config, work / "placeholder.elf")
        for name in program_images(system_file):
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts:
                continue  # left for the tool to refuse or find as written
            dest = elfs / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(placeholder, dest)
        return sdk.run_tool(system_file, [elfs], config, work / "loader.img", work / "report.txt")
