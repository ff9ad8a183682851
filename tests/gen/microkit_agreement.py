"""How ``septum validate-sdf`` agrees with current Microkit on Microkit's own SDF fixtures and examples.

Reads the vendored archive (``microkit-2.3-dev-*-sdf-fixtures.tar.gz`` in the vendor folder, never copied into
the project): ``tool/microkit/tests/test.rs`` names, per fixture, the kernel configuration, and whether the
tool must accept it (``check_success``) or refuse it with a given message (``check_error``, ``check_missing``).
Each case is run here with the same configuration (a ``Target``) and classified; the table in docs/sel4.md is
this module's output:

    .venv/bin/python -m tests.gen.microkit_agreement
"""

from __future__ import annotations

import re
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from septum.gen.sdf_model import Target
from septum.gen.sdf_validate import errors, validate_file
from septum.sel4.sdk import vendor_dir

ARCHIVE_GLOB = "microkit-2.3-dev-*-sdf-fixtures.tar.gz"

# The three kernel configurations of test.rs, as Targets (all else in them is the same for SDF checks).
CONFIGS = {
    "DEFAULT_AARCH64_KERNEL_CONFIG": Target(),
    "SMP_AARCH64_KERNEL_CONFIG": Target(cores=4),
    "DEFAULT_X86_64_KERNEL_CONFIG": Target(arch="x86_64"),
}
_ARCH = {"Aarch64": "aarch64", "Riscv64": "riscv64", "X86_64": "x86_64"}

# Microkit's error message (its start) -> the Septum rule(s) that name the same mistake. Most specific first.
SAME_ERROR: list[tuple[str, set[str]]] = [
    (r"Error: invalid attribute 'priority' on element 'virtual_machine'", {"vm_priority_x86"}),
    (r"Error: invalid attribute 'id' on element 'protection_domain'", {"unknown_attribute"}),
    (r"Error: Missing required attribute 'domain' on element 'protection_domain'", {"pd_missing_domain"}),
    (r"Error: Missing required attribute|Error: size must be specified", {"missing_attribute"}),
    (r"Error: invalid attribute", {"unknown_attribute"}),
    (r"Error: invalid XML element", {"unknown_element"}),
    (r"Error: io address space requires seL4 to be built with IOMMU", {"iommu_unavailable"}),
    (r"Error: failed to parse device peripheral_id .*IOMMU device identifiers are not supported", {"iommu_arch"}),
    (r"Error: failed to parse device peripheral_id", {"bad_pci_address"}),
    (r"Error: iovaddr .* must be less than", {"iovaddr_too_high"}),
    (r"Error: iomap for .* exceeds valid address space", {"iovaddr_range_too_high"}),
    (r"Error: iomap for .* overflows", {"iovaddr_overflow"}),
    (r"Error: perms for io mapped memory", {"iomap_perms"}),
    (r"Error: currently seL4 does not have large page support for the IOMMU", {"iomap_large_page"}),
    (r"Error: duplicate name .*", {"duplicate_io_space"}),
    (r"Error: duplicate device peripheral_id", {"duplicate_io_device"}),
    (r"Error: reusing a domain id is forbidden", {"duplicate_io_domain_id"}),
    (r"Error: failed to parse integer|Error: (id|ioapic|pin|handle) must be >= 0", {"bad_number"}),
    (r"Error: page size .* not supported", {"page_size_unsupported"}),
    (r"Error: size is not a multiple", {"mr_size_not_multiple_of_page_size"}),
    (r"Error: phys_addr is not aligned", {"phys_addr_alignment"}),
    (r"Error: memory region .* overlaps with another", {"phys_overlap"}),
    (r"Error: prefill file .* is empty", {"prefill_empty"}),
    (r"Error: unable to find prefill file", {"prefill_not_found"}),
    (r"Error: 'setvar_prefill_size' used for MR without", {"prefill_size_without_prefill"}),
    (r"Error: missing 'program_image'", {"missing_program_image"}),
    (r"Error: setvar on symbol .* already exists", {"duplicate_setvar"}),
    (r"Error: setvar with 'region_paddr' for MR without", {"setvar_paddr_x86"}),
    (r"Error: program_image must only be specified once", {"duplicate_program_image"}),
    (r"Error: budget .* must be less than", {"budget_gt_period"}),
    (r"Error: id must be < 62", {"id_range"}),
    (r"Error: perms must not be 'w'", {"write_only_map"}),
    (r"Error: trigger must be", {"bad_trigger"}),
    (r"Error: x86 (I/O APIC|MSI) IRQ isn't supported|Error: ARM and RISC-V IRQs are not supported", {"irq_arch"}),
    (r"Error: polarity must be", {"bad_polarity"}),
    (r"Error: vector must be within", {"irq_vector_range", "bad_number"}),
    (r"Error: PCI (bus|device|function) must be within|Error: expected PCI address", {"bad_pci_address",
                                                                                       "bad_number"}),
    (r"Error: duplicate id: \d+ (clashes|in protection domain)", {"duplicate_child_id"}),
    (r"Error: stack size must be between", {"stack_size_range"}),
    (r"Error: stack size must be aligned", {"stack_size_alignment"}),
    (r"Error: map for .* which overlaps with map", {"overlapping_maps"}),
    (r"Error: I/O port id: .* overlaps", {"ioport_overlap"}),
    (r"Error: size must be > 0 on element 'ioport'", {"ioport_size"}),
    (r"Error: cpu core must be less than|Error: cpu must be less than", {"cpu_range"}),
    (r"Error: virtual machine must be a child", {"vm_not_child"}),
    (r"Error: duplicate virtual machine name", {"duplicate_vm_name"}),
    (r"Error: missing 'vcpu' element", {"vm_missing_vcpu"}),
    (r"Error: It is not possible to PPC to PD", {"ppcall_to_vmm"}),
    (r"Error: It is not possible for PD .* to have children", {"vmm_children_x86"}),
    (r"Error: invalid memory region name", {"map_unknown_mr"}),
    (r"Error: invalid PD name", {"channel_unknown_pd"}),
    (r"Error: exactly two end elements", {"channel_end_count"}),
    (r"Error: (pp|notify|fpu) must be 'true' or 'false'", {"bad_bool"}),
    (r"Error: cannot ppc bidirectionally", {"pp_both_ends"}),
    (r"Error: PPCs must be to protection domains of strictly higher", {"ppcall_priority"}),
    (r"Error: The domain scheduler is not supported in multicore", {"domains_smp"}),
    (r"Error: Number of domains exceeds", {"too_many_domains"}),
    (r"Error: domain .* not declared in <domains>", {"pd_unknown_domain"}),
    (r"Error: The duration .* must be in either", {"bad_duration"}),
    (r"Error: Specifying a domain .* without declaring a domain schedule", {"domain_without_domains"}),
    (r"Error: schedule_start_index", {"schedule_start_index"}),
    (r"Error: schedule_index_shift", {"schedule_too_long"}),
    (r"Error: duplicate protection domain name", {"duplicate_pd_name"}),
    (r"Error: duplicate memory region name", {"duplicate_mr_name"}),
    (r"Error: duplicate irq:", {"duplicate_irq_number"}),
    (r"Error: duplicate channel id", {"duplicate_id"}),
    (r"Error: at least one protection domain", {"no_pds"}),
    (r"Error: unexpected text found", {"text_content"}),
    (r"Error: invalid vaddr alignment", {"map_vaddr_alignment"}),
    (r"Error: vaddr .* must be less than", {"map_vaddr_too_high"}),
    (r"Error: map for .* exceeds valid address space", {"map_range_too_high"}),
    (r"Error: too many protection domains", {"too_many_pds"}),
]
UNSUPPORTED_RULES = {"unsupported_element", "unsupported_attribute"}
# Example systems built for x86_64 (the others are AArch64, Microkit's default board family).
X86_EXAMPLES = {"x86_64_ioport", "x86_64_iommu_dma_test", "bootinfo"}


@dataclass(frozen=True)
class Case:
    kind: str  # "success" or "error"
    config: str  # the configuration as test.rs writes it
    target: Target
    fixture: str
    expected: str  # Microkit's message (start), "" for a success case


@dataclass(frozen=True)
class Outcome:
    case: Case
    verdict: str  # see VERDICTS
    rules: tuple[str, ...]  # Septum's error rules


VERDICTS = {
    "agree": "agrees: same verdict, and for a refusal the same error",
    "other_error": "refused, but for another error than Microkit's",
    "unsupported": "refused as not supported by this validator",
    "false_accept": "accepted, Microkit refuses it",
    "false_reject": "refused, Microkit accepts it",
}


def find_archive() -> Path | None:
    folder = vendor_dir()
    found = sorted(folder.glob(ARCHIVE_GLOB)) if folder.is_dir() else []
    return found[-1] if found else None


def extract(archive: Path, into: Path) -> Path:
    with tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # an older Python 3.11: the archive is the vendored upstream one
            tar.extractall(into)
    (root,) = into.iterdir()
    return root


def target_of(config: str) -> Target:
    """test.rs's configuration expression -> Target; an override we do not model fails loudly."""
    name = config.lstrip("&").strip()
    if name in CONFIGS:
        return CONFIGS[name]
    m = re.fullmatch(r"sel4::Config\s*\{(.*?)\.\.(\w+)\s*,?\s*\}", name, re.S)
    if m is None or m.group(2) not in CONFIGS:
        raise ValueError(f"unknown kernel configuration in test.rs: {config!r}")
    fields = dict(CONFIGS[m.group(2)].__dict__)
    for key, value in re.findall(r"(\w+)\s*:\s*([\w:]+)\s*,", m.group(1)):
        if key == "iommu":
            fields["iommu"] = value == "true"
        elif key == "arch":
            fields["arch"] = _ARCH[value.rsplit("::", 1)[-1]]
        elif key == "num_cores":
            fields["cores"] = int(value)
        else:
            raise ValueError(f"kernel configuration field {key!r} in test.rs is not modelled by Target")
    return Target(**fields)


def _arguments(text: str, start: int) -> list[str]:
    """The top-level arguments of the call whose '(' is at ``start``: strings decoded, the rest stripped."""
    args: list[str] = []
    current: list[str] = []
    depth, i = 0, start + 1
    while True:
        ch = text[i]
        if text.startswith('r#"', i):
            end = text.index('"#', i + 3)
            current.append(text[i + 3:end])
            i = end + 2
            continue
        if ch == '"':
            m = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S).match(text, i)
            if m is None:
                raise ValueError(f"unterminated string in test.rs at {i}")
            current.append(re.sub(r"\\\n\s*", "", m.group(1)))  # Rust's backslash-newline continuation
            i = m.end()
            continue
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            if depth == 0:
                args.append("".join(current).strip())
                return [a for a in args if a]
            depth -= 1
        elif ch == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1


def cases(root: Path) -> list[Case]:
    text = (root / "tool" / "microkit" / "tests" / "test.rs").read_text()
    out = []
    for m in re.finditer(r"\bcheck_(success|error|missing)\(", text):
        if text[:m.start()].rstrip().endswith("fn"):
            continue  # the helpers' own definitions
        config, fixture, *rest = _arguments(text, m.end() - 1)
        if config == "kernel_config":
            continue  # check_missing's own call of check_error
        kind = m.group(1)
        if kind == "missing":
            expected = f"Error: Missing required attribute '{rest[0]}' on element '{rest[1]}'"
        else:
            expected = rest[0] if rest else ""
        config = re.sub(r"\s+", " ", config)
        out.append(Case("success" if kind == "success" else "error", config, target_of(config), fixture, expected))
    return out


def same_error_rules(message: str) -> set[str]:
    for pattern, rules in SAME_ERROR:
        if re.match(pattern, message):
            return rules
    return set()


def judge(root: Path, case: Case) -> Outcome:
    tests = root / "tool" / "microkit" / "tests"
    diags = validate_file(tests / "sdf" / case.fixture, target=case.target, prefill_dirs=(tests / "prefills",))[1]
    rules = tuple(sorted({d.rule for d in errors(diags)}))
    if case.kind == "success":
        verdict = "agree" if not rules else "unsupported" if set(rules) <= UNSUPPORTED_RULES else "false_reject"
    elif not rules:
        verdict = "false_accept"
    elif same_error_rules(case.expected) & set(rules):
        verdict = "agree"
    elif set(rules) <= UNSUPPORTED_RULES:
        verdict = "unsupported"
    else:
        verdict = "other_error"
    return Outcome(case, verdict, rules)


def examples(root: Path) -> list[tuple[str, tuple[str, ...]]]:
    """Every upstream example system and Septum's error rules for it (empty: accepted)."""
    out = []
    for path in sorted((root / "example").glob("*/*.system")):
        target = Target(arch="x86_64") if path.stem in X86_EXAMPLES else Target()
        diags = validate_file(path, target=target)[1]
        out.append((path.stem, tuple(sorted({d.rule for d in errors(diags)}))))
    return out


def table(root: Path) -> str:
    outcomes = [judge(root, c) for c in cases(root)]
    lines = ["| Microkit expects | cases | " + " | ".join(VERDICTS) + " |",
             "|---|---|" + "---|" * len(VERDICTS)]
    for kind, label in (("error", "refusal (`check_error`, `check_missing`)"), ("success", "acceptance "
                                                                                           "(`check_success`)")):
        mine = [o for o in outcomes if o.case.kind == kind]
        count = Counter(o.verdict for o in mine)
        lines.append(f"| {label} | {len(mine)} | " + " | ".join(str(count[v]) for v in VERDICTS) + " |")
    lines += ["", "Columns: " + "; ".join(f"**{k}** {v}" for k, v in VERDICTS.items()) + ".", ""]
    odd = [o for o in outcomes if o.verdict != "agree"]
    if odd:
        lines += ["| fixture | configuration | Microkit | Septum | verdict |", "|---|---|---|---|---|"]
        for o in odd:
            micro = (" ".join(o.case.expected.split(" on element")[0].split()).replace("|", "\\|")
                     if o.case.kind == "error" else "accepts")
            lines.append(f"| `{o.case.fixture}` | {o.case.config.lstrip('&')} | {micro} | "
                         f"{', '.join(o.rules) or 'accepts'} | {o.verdict} |")
    ex = examples(root)
    accepted = [name for name, rules in ex if not rules]
    lines += ["", f"Upstream example systems accepted: **{len(accepted)} of {len(ex)}**.", "",
              "| example | Septum |", "|---|---|"]
    lines += [f"| `{name}` | {', '.join(rules) or 'accepted'} |" for name, rules in ex]
    return "\n".join(lines)


def main() -> int:
    import tempfile

    archive = find_archive()
    if archive is None:
        print(f"no {ARCHIVE_GLOB} in {vendor_dir()} (set SEPTUM_VENDOR)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        print(f"Measured against `{archive.name}`.\n")
        print(table(extract(archive, Path(tmp))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
