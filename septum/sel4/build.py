"""Build a bootable seL4 image from the device MODEL: analysis gate, system description, C, compile, Microkit tool.

    built = build_image("examples/infusion_pump/model.yaml", Path("build/sel4/images/therapy"))
    built.image, built.sizes   # loader.img, {pd: PdSize}

The order matters and is the point of this module: the model is analysed first and a model whose analysis
has blocking findings is refused before anything is generated, compiled or written (``ModelRefused``, no
output folder is created). Then, all from the same model:

1. the Microkit 1.2.6 system description (``septum gen microkit --microkit 1.2``) and the per-PD headers;
2. the build-time extension for QEMU (``add_simulated_hardware``): the ``hw`` PD that plays the motor and
   sensor boards, see below;
3. the typed channel C (``septum.sel4.c_channels``) and the drug table (``septum_pump.sel4_drug_table``);
4. each PD compiled with Debian's cross compiler and linked against libmicrokit (the flags docs/sel4.md lists);
5. the Microkit tool, which writes ``loader.img`` and its report.

Which C files make which PD is the PD folder's ``build.yaml`` (``examples/infusion_pump/sel4/pds``). A scenario
is a ``Variant``: extra ``-D`` macros for some PDs (a scripted hardware fault, a hostile network build).

The simulated hardware. The generated system gives the model's device interfaces fixed physical addresses
(placeholders unless an address plan gives the board's). QEMU's virt board has no motor, so for the listed
interfaces the extension (i) drops the region's ``phys_addr`` (the region becomes ordinary memory),
(ii) maps it, uncached like the owner's map, into one extra PD ``hw``, and (iii) replaces the owner's
``<irq>`` for it by a channel from ``hw`` to the owner with the same id, so the owner's generated header is
unchanged. Nothing is granted to any model partition: ``check_extension`` proves that every model PD keeps
exactly the maps it had and loses only the replaced interrupts, before the tool runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from septum.errors import InvariantBroken, SeptumError
from septum.model import Model, ModelError, SourceMap, load

ROOT = Path(__file__).resolve().parents[2]
PUMP_MODEL = ROOT / "examples" / "infusion_pump" / "model.yaml"
PUMP_SEL4 = ROOT / "examples" / "infusion_pump" / "sel4"
MANIFEST = "pds/build.yaml"
RUNTIME = Path(__file__).resolve().parents[1] / "data" / "sel4"  # septum_pd.h + septum_rt.c, in every PD
HW_PD = "hw"
CC = "aarch64-linux-gnu-gcc"
LD = "aarch64-linux-gnu-ld"
# the documented flags (docs/sel4.md), warnings as errors, no loop-to-memcpy rewriting (septum_rt.c *is* memcpy)
CFLAGS = ["-std=gnu11", "-O2", "-g", "-mcpu=cortex-a53", "-mstrict-align", "-nostdlib", "-ffreestanding",
          "-fno-tree-loop-distribute-patterns", "-ffp-contract=off",
          "-Wall", "-Werror", "-Wno-unused-function"]
DEVICE_VADDR_BASE = 0x3000_0000
PAGE = 0x1000


class BuildError(SeptumError, RuntimeError):
    """The image cannot be built: a missing source or tool, a compile or link error, the Microkit tool's refusal."""


class ModelRefused(BuildError):
    """The model's analysis has blocking findings (or the model does not load): nothing was built."""

    def __init__(self, message: str, findings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.findings = list(findings)


@dataclass(frozen=True)
class Variant:
    """A scenario build: ``defines[pd]`` are extra ``-D`` macros for that PD's sources."""

    name: str = "default"
    defines: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class PdSize:
    elf_bytes: int   # the ELF file
    load_bytes: int  # what the loader places in memory: the PT_LOAD segments' memory size (code, data, bss)


@dataclass
class BuiltImage:
    variant: str
    folder: Path
    image: Path
    report: Path
    system: Path
    elfs: dict[str, Path]
    sizes: dict[str, PdSize]
    image_bytes: int
    standins: list[str]
    notes: list[str]


@dataclass(frozen=True)
class PdSpec:
    name: str
    sources: list[Path]
    generated: list[str]  # generated sources (file names in the build's gen folder)
    standin: bool


@dataclass(frozen=True)
class HwSpec:
    name: str
    interfaces: list[str]
    sources: list[Path]
    priority: int
    budget_us: int
    period_us: int


@dataclass(frozen=True)
class Manifest:
    root: Path
    common: list[Path]
    include: list[Path]
    pds: dict[str, PdSpec]
    hw: HwSpec | None


# ---------------------------------------------------------------------------------------------- manifest
def load_manifest(sel4_dir: Path = PUMP_SEL4) -> Manifest:
    path = sel4_dir / MANIFEST
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BuildError(f"{path}: cannot read the PD manifest: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise BuildError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("pds"), dict):
        raise BuildError(f"{path}: expected a mapping with a 'pds' mapping")

    def paths(items: object, what: str) -> list[Path]:
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise BuildError(f"{path}: {what}: expected a list of file names")
        return [sel4_dir / i for i in items]

    pds = {}
    for name, spec in raw["pds"].items():
        if not isinstance(spec, dict):
            raise BuildError(f"{path}: pds.{name}: expected a mapping")
        pds[name] = PdSpec(name, paths(spec.get("sources", []), f"pds.{name}.sources"),
                           [str(g) for g in spec.get("generated", [])], bool(spec.get("standin", False)))
    hw = None
    if raw.get("simulated_hardware"):
        h = raw["simulated_hardware"]
        hw = HwSpec(str(h.get("pd", HW_PD)), [str(i) for i in h.get("interfaces", [])],
                    paths(h.get("sources", []), "simulated_hardware.sources"), int(h.get("priority", 254)),
                    int(h.get("budget_us", 500)), int(h.get("period_us", 1000)))
    return Manifest(sel4_dir, paths(raw.get("common", []), "common"), paths(raw.get("include", []), "include"),
                    pds, hw)


# ---------------------------------------------------------------------------------------------- the gate
def analyse(model_path: Path) -> tuple[Model, SourceMap]:
    """Load and analyse; ModelRefused (with the findings) when the model does not load or has blocking findings."""
    from septum.analysis import check

    try:
        model, source = load(model_path)
    except ModelError as exc:
        raise ModelRefused(f"{model_path}: the model does not load; nothing was built\n{exc}") from None
    except OSError as exc:
        raise ModelRefused(f"{model_path}: cannot read the model: {exc.strerror or exc}") from None
    blocking = check(model, source).blocking
    if blocking:
        lines = [f"{f.rule}: {f.message} ({', '.join(str(e) for e in f.elements)})" for f in blocking]
        raise ModelRefused(f"{model_path}: refusing to build: the analysis has {len(blocking)} blocking "
                           "finding(s); nothing was built\n" + "\n".join(f"  error: {line}" for line in lines),
                           lines)
    return model, source


# ---------------------------------------------------------------------------------------------- system description
def system_description_12(model: Model, source: SourceMap, model_file: str) -> tuple[dict[str, str], object, list[str]]:
    """The Microkit 1.2.6 system description and headers: (files, plan, notes)."""
    from septum.gen import microkit

    try:
        generated = microkit.generate(model, source, model_file=model_file, dialect="1.2")
    except TypeError:
        # the generator without the 1.2 dialect: remove what 1.2.6 does not know (domains, notify)
        generated = microkit.generate(model, source, model_file=model_file)
        sdf = generated.files[microkit.SDF_NAME]
        sdf = re.sub(r"\s*<domains>.*?</domains>\n", "\n", sdf, flags=re.S)
        sdf = re.sub(r' (domain|notify)="[^"]*"', "", sdf)
        generated.files[microkit.SDF_NAME] = sdf
    return dict(generated.files), generated.plan, list(generated.notes)


def add_simulated_hardware(sdf: str, plan: object, hw: HwSpec) -> tuple[str, str]:
    """The extension described in the module docstring: (new SDF text, the hw PD's C header)."""
    from septum.gen.layout import SystemPlan, c_ident

    if not isinstance(plan, SystemPlan):
        raise InvariantBroken("internal invariant broken: isinstance(plan, SystemPlan)")
    if any(pd.name == hw.name for pd in plan.pds):
        raise BuildError(f"the model has a partition named {hw.name!r}, the name of the simulated hardware PD")
    devices = {d.interface: d for d in plan.devices}
    missing = [i for i in hw.interfaces if i not in devices]
    if missing:
        raise BuildError(f"simulated interface(s) {', '.join(missing)} are not enabled, owned interfaces of the "
                         "model: the generated system has no device region for them")
    # our own generator's output, not outside input (septum.gen.sdf_parse is the hardened reader for that)
    root = ET.fromstring(sdf, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))  # noqa: S314
    regions = {el.get("name"): el for el in root.iter("memory_region")}
    pds = {el.get("name"): el for el in root.iter("protection_domain")}
    hw_el = ET.Element("protection_domain", {"name": hw.name, "priority": str(hw.priority),
                                             "budget": str(hw.budget_us), "period": str(hw.period_us)})
    ET.SubElement(hw_el, "program_image", {"path": f"{hw.name}.elf"})
    header = [f"/* Generated by septum/sel4/build.py: where the simulated devices are in the '{hw.name}' PD. */",
              "#ifndef SEPTUM_HW_LAYOUT_H", "#define SEPTUM_HW_LAYOUT_H"]
    channels = []
    for k, interface in enumerate(hw.interfaces):
        dev = devices[interface]
        region = regions[dev.region]
        region.attrib.pop("phys_addr", None)
        owner = pds[dev.owner]
        irq = next(i for i in plan.pd(dev.owner).irqs if i.interface == interface)
        irq_el = next(el for el in owner.findall("irq") if el.get("id") == str(irq.id))
        owner.remove(irq_el)
        vaddr = DEVICE_VADDR_BASE + k * 2 * PAGE  # each followed by an unmapped guard page
        ET.SubElement(hw_el, "map", {"mr": dev.region, "vaddr": hex(vaddr), "perms": "rw", "cached": "false"})
        ch = ET.Element("channel")
        ET.SubElement(ch, "end", {"pd": hw.name, "id": str(k)})
        ET.SubElement(ch, "end", {"pd": dev.owner, "id": str(irq.id)})
        channels.append(ch)
        name = c_ident(interface)
        header += [f"#define HW_{name}_VADDR {vaddr:#x}ul /* {dev.region}, owned by {dev.owner} */",
                   f"#define HW_{name}_CH {k}u /* signals {dev.owner} (its irq id {irq.id}) */"]
    header += ["#endif", ""]
    children = list(root)
    last_pd = max(i for i, el in enumerate(children) if el.tag == "protection_domain")
    root.insert(last_pd + 1, hw_el)
    root.insert(last_pd + 1, ET.Comment(
        f" build-time extension (septum/sel4/build.py), not the model: '{hw.name}' simulates "
        f"{', '.join(hw.interfaces)} for QEMU; their regions are plain memory shared with their owner only, "
        "and each interrupt became a signal from hw "))
    for ch in channels:
        root.append(ch)
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n", \
        "\n".join(header)


def device_addresses(plan: object) -> str:
    """The address plan's physical device addresses as C macros (what the hostile network build aims at)."""
    from septum.gen.layout import SystemPlan, c_ident

    if not isinstance(plan, SystemPlan):
        raise InvariantBroken("internal invariant broken: isinstance(plan, SystemPlan)")
    out = ["/* Generated by septum/sel4/build.py: physical device addresses of the model's address plan. */",
           "#ifndef SEPTUM_DEVICE_ADDRESSES_H", "#define SEPTUM_DEVICE_ADDRESSES_H"]
    regions = {r.name: r for r in plan.regions}
    for dev in plan.devices:
        paddr = regions[dev.region].phys_addr
        if paddr is not None:
            name = c_ident(dev.interface)
            out.append(f"#define SEPTUM_PADDR_{name} {paddr:#x}ul /* {dev.interface} ({dev.owner}) */")
    return "\n".join([*out, "#endif", ""])


def _grants(sdf: str) -> dict[str, tuple[set[tuple[str, str, str]], set[str]]]:
    """Per PD: its maps (region, vaddr, perms) and its irq numbers."""
    root = ET.fromstring(sdf)  # noqa: S314 -- generated here (see add_simulated_hardware)
    out = {}
    for pd in root.iter("protection_domain"):
        maps = {(m.get("mr", ""), m.get("vaddr", ""), m.get("perms", "rw")) for m in pd.findall("map")}
        out[pd.get("name", "")] = (maps, {i.get("irq", "") for i in pd.findall("irq")})
    return out


def check_extension(base: str, extended: str, hw: HwSpec) -> list[str]:
    """What the extension changed for the model's PDs that it must not: [] when only the documented changes."""
    before, after = _grants(base), _grants(extended)
    problems = []
    if set(after) - set(before) != {hw.name}:
        problems.append(f"PDs added: {sorted(set(after) - set(before))}, expected only {hw.name!r}")
    for name, (maps, irqs) in before.items():
        if name not in after:
            problems.append(f"PD {name} disappeared")
            continue
        if after[name][0] != maps:
            problems.append(f"PD {name}: maps changed: {sorted(after[name][0] ^ maps)}")
        if not after[name][1] <= irqs:
            problems.append(f"PD {name}: interrupts added: {sorted(after[name][1] - irqs)}")
    return problems


# ---------------------------------------------------------------------------------------------- generated C
def generated_sources(model: Model, source: SourceMap, model_path: Path, gen_dir: Path, wanted: set[str]) -> None:
    """The typed channel headers (septum.sel4.c_channels), every PD's channel plumbing and generic stand-in
    (septum.sel4.pd_channels) and, when a PD asks for it, the drug table (septum_pump.sel4_drug_table)."""
    from septum.sel4 import c_channels

    from . import pd_channels

    for rel, text in c_channels.generate(model, source, model_file=model_path.name).items():
        _write(gen_dir / "channels" / rel, text)
    for rel, text in pd_channels.generate(model, model_path.name).items():
        _write(gen_dir / "channels" / rel, text)
    for name in sorted(wanted):
        maker = GENERATED.get(name)
        if maker is None:
            raise BuildError(f"no generator for the source {name!r} named in {MANIFEST}")
        _write(gen_dir / name, maker(model_path))
    _write(gen_dir / "drug_library_version.h", _library_version(model_path))


def _library_version(model_path: Path) -> str:
    """drug_library.yaml's version for the update stand-in's announcement (0 when the model has no library)."""
    library = model_path.parent / "drug_library.yaml"
    try:
        raw = yaml.safe_load(library.read_text(encoding="utf-8")) if library.is_file() else {}
    except (OSError, yaml.YAMLError) as exc:
        raise BuildError(f"{library}: cannot read the drug library: {exc}") from None
    version = raw.get("version", 0) if isinstance(raw, dict) else 0
    if not isinstance(version, int) or version < 0:
        raise BuildError(f"{library}: 'version' is not a non-negative integer")
    return f"#define SEPTUM_DRUG_LIBRARY_VERSION {version}u /* {library.name} */\n"


def _drug_table(model_path: Path) -> str:
    """The C drug table from the drug library next to the model (the one the Python partitions load)."""
    library = model_path.parent / "drug_library.yaml"
    try:  # the table is rendered by the pump's own library code (package septum-pump, installed by `make`)
        from septum_pump import sel4_drug_table
        from septum_pump.therapy.drug_library import load_drug_library
    except ImportError as exc:
        raise BuildError(f"{library}: the drug table is rendered by the reference pump's code, which is not "
                         f"installed ({exc}): pip install examples/hospital_client examples/infusion_pump") from None

    try:
        return sel4_drug_table.render(load_drug_library(library.read_bytes()), library.name)
    except OSError as exc:
        raise BuildError(f"{library}: cannot read the drug library: {exc.strerror or exc}") from None
    except Exception as exc:  # the library's own refusal (TherapyError, TableError): say which and why
        raise BuildError(f"{library}: the drug library cannot be turned into the C table: {exc}") from None


GENERATED: dict[str, Callable[[Path], str]] = {"drug_table.c": _drug_table}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------- compile
def _run(cmd: list[str], what: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    full = ["nice", "-n", "10", *cmd] if shutil.which("nice") else cmd
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} not found (Debian: apt-get install gcc-aarch64-linux-gnu)") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what}: did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr).strip()}")
    return proc


def _tree_hash(dirs: Sequence[Path]) -> str:
    """A hash of every header a compile may include: an object is reused only when none of them changed."""
    h = hashlib.sha256()
    for d in dirs:
        for p in sorted(d.rglob("*")) if d.is_dir() else []:
            if p.is_file() and p.suffix in (".h", ".c", ".inc"):
                h.update(str(p).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def compile_pd(name: str, sources: Sequence[Path], defines: Mapping[str, str], include: Sequence[Path],
               out_dir: Path, cache_dir: Path, tree: str, sdk_include: Path, sdk_lib: Path) -> Path:
    flags = [*CFLAGS, f"-DSEPTUM_PD_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}=1",
             *(f"-D{k}={v}" for k, v in sorted(defines.items())), *(f"-I{d}" for d in include), f"-I{sdk_include}"]
    objects = []
    cache_dir.mkdir(parents=True, exist_ok=True)
    for src in sources:
        if not src.is_file():
            raise BuildError(f"PD {name}: source {src} does not exist")
        key = hashlib.sha256("\0".join([tree, str(src), src.read_text(encoding="utf-8"), *flags]).encode())
        obj = cache_dir / f"{src.stem}-{key.hexdigest()[:20]}.o"
        if not obj.is_file():
            tmp = obj.with_suffix(f".{os.getpid()}.tmp")
            _run([CC, "-c", *flags, str(src), "-o", str(tmp)], f"compiling {src.name} for PD {name}")
            tmp.replace(obj)
        objects.append(obj)
    elf = out_dir / f"{name}.elf"
    _run([LD, f"-L{sdk_lib}", *map(str, objects), "-lmicrokit", "-Tmicrokit.ld", "-o", str(elf)],
         f"linking PD {name}")
    return elf


def elf_size(path: Path) -> PdSize:
    """File size and the memory size of the PT_LOAD segments (an ELF64 little-endian file, as the linker writes)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise BuildError(f"{path}: not an ELF64 file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    load = 0
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD
            memsz, = struct.unpack_from("<Q", data, phoff + i * phentsize + 0x28)
            load += memsz
    return PdSize(len(data), load)


# ---------------------------------------------------------------------------------------------- the build
def build_image(model_path: Path | str = PUMP_MODEL, out_dir: Path | str | None = None, *,
                variant: Variant | None = None, sdk: object | None = None, sel4_dir: Path | None = None,
                config: str = "debug", log: Callable[[str], None] | None = None,
                weaken: Callable[[str], str] | None = None) -> BuiltImage:
    """Everything in the module docstring, in that order. Raises ModelRefused before writing anything.

    ``weaken`` is for tests only: it rewrites the final system description after every check, to switch a
    kernel defence off and show that a scenario then fails (tests/sel4/test_scenarios.py).
    """
    variant = variant or Variant()
    model_path = Path(model_path)
    say = log or (lambda _line: None)
    model, source = analyse(model_path)  # first: a refused model leaves no trace
    # the PD sources of the model's own folder (<model dir>/sel4/pds/build.yaml), else generic stand-ins only
    sel4_dir = sel4_dir if sel4_dir is not None else model_path.resolve().parent / "sel4"
    manifest = load_manifest(sel4_dir) if (sel4_dir / MANIFEST).is_file() else Manifest(sel4_dir, [], [], {}, None)
    unknown = sorted(set(variant.defines) - set(model.partitions) - ({manifest.hw.name} if manifest.hw else set()))
    if unknown:
        raise BuildError(f"variant {variant.name}: defines for PDs that are not built: {', '.join(unknown)}")
    generic = [p for p in model.partitions if p not in manifest.pds]  # get the generated stand-in
    extra = sorted(set(manifest.pds) - set(model.partitions))
    if extra:
        raise BuildError(f"{sel4_dir / MANIFEST}: PDs that are not partitions of the model: {', '.join(extra)}")
    if sdk is None:
        from septum.sel4.sdk import ensure_sdk

        sdk = ensure_sdk()
    folder = Path(out_dir) if out_dir is not None else ROOT / "build" / "sel4" / "images" / variant.name
    gen_dir = folder.parent / "gen"  # shared by every variant of one model: the same model gives the same files
    elf_dir = folder / "elf"
    elf_dir.mkdir(parents=True, exist_ok=True)

    files, plan, notes = system_description_12(model, source, model_path.name)
    for rel, text in files.items():
        _write(gen_dir / rel, text)
    base_sdf = files["device.system"]
    sdf = base_sdf
    if manifest.hw is not None:
        sdf, hw_header = add_simulated_hardware(base_sdf, plan, manifest.hw)
        problems = check_extension(base_sdf, sdf, manifest.hw)
        if problems:  # a bug here would widen what a partition may do: never build it
            raise BuildError("the simulated-hardware extension changed a model PD's grants:\n" + "\n".join(problems))
        _write(gen_dir / "hw" / "hw_layout.h", hw_header)
    _write(gen_dir / "hw" / "device_addresses.h", device_addresses(plan))
    if weaken is not None:
        sdf = weaken(sdf)
    system = folder / "device.system"
    _write(system, sdf)
    wanted = {g for spec in manifest.pds.values() for g in spec.generated}
    generated_sources(model, source, model_path, gen_dir, wanted)
    if generic:
        notes.append(f"generic stand-in PD(s) (no C in {MANIFEST}): {', '.join(generic)}")

    include = [gen_dir / "include", gen_dir / "channels", gen_dir / "hw", gen_dir, RUNTIME, *manifest.include]
    tree = _tree_hash(include)
    cache = folder.parent / "obj-cache"
    common = [RUNTIME / "septum_rt.c", *manifest.common]
    specs: list[tuple[str, list[Path]]] = [
        (name, [*common, *spec.sources, *(gen_dir / g for g in spec.generated)])
        for name, spec in manifest.pds.items() if name in model.partitions]
    specs += [(name, [*common, gen_dir / "channels" / f"standin_{name}.c"]) for name in generic]
    if manifest.hw is not None:
        specs.append((manifest.hw.name, [*common, *manifest.hw.sources]))
    elfs = {}
    for name, sources in specs:
        say(f"compile {name}")
        elfs[name] = compile_pd(name, sources, variant.defines.get(name, {}), include, elf_dir, cache, tree,
                                sdk.include(config), sdk.lib(config))  # type: ignore[attr-defined]
    image, report = folder / "loader.img", folder / "report.txt"
    say("microkit tool")
    run = sdk.run_tool(system, elf_dir, config, image, report)  # type: ignore[attr-defined]
    if not run.ok:
        raise BuildError(f"the Microkit tool refused {system}:\n{run.output}")
    return BuiltImage(variant.name, folder, image, report, system, elfs, {n: elf_size(p) for n, p in elfs.items()},
                      image.stat().st_size,
                      sorted([*(n for n, s in manifest.pds.items() if s.standin), *generic]), notes)
