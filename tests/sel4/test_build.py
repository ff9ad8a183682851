"""The image build's own checks, without an SDK: the simulated-hardware extension grants nothing to a model PD."""

from __future__ import annotations

import re

import pytest

from septum.sel4.build import (
    PUMP_MODEL,
    PUMP_SEL4,
    BuildError,
    HwSpec,
    add_simulated_hardware,
    analyse,
    check_extension,
    load_manifest,
    system_description_12,
)
from septum.sel4.serial import parse_event, parse_faults


@pytest.fixture(scope="module")
def pump() -> tuple[str, object, HwSpec]:
    model, source = analyse(PUMP_MODEL)
    files, plan, _notes = system_description_12(model, source, "model.yaml")
    hw = load_manifest(PUMP_SEL4).hw
    assert hw is not None
    return files["device.system"], plan, hw


def test_extension_adds_only_the_hw_pd_and_turns_the_device_interrupts_into_its_signals(pump) -> None:  # type: ignore[no-untyped-def]
    base, plan, hw = pump
    extended, header = add_simulated_hardware(base, plan, hw)
    assert check_extension(base, extended, hw) == []
    monitor = re.search(r'<protection_domain name="safety_monitor".*?</protection_domain>', extended, re.S)
    assert monitor is not None and "<irq" not in monitor.group(0)  # motor/sensors irqs replaced ...
    ids = {i.id for i in plan.pd("safety_monitor").irqs}
    for ident in ids:  # ... by channels from hw with the same ids
        assert re.search(rf'<end pd="hw" id="\d+" />\s*<end pd="safety_monitor" id="{ident}" />', extended)
    for region in ("dev_motor", "dev_sensors"):
        assert re.search(rf'<memory_region name="{region}" size="0x1000" />', extended)  # no phys_addr
        assert len(re.findall(rf'<map mr="{region}"', extended)) == 2  # the monitor and hw, nobody else
    assert "HW_MOTOR_VADDR" in header and "HW_SENSORS_CH" in header


def test_a_widened_grant_is_caught(pump) -> None:  # type: ignore[no-untyped-def]
    base, plan, hw = pump
    extended, _ = add_simulated_hardware(base, plan, hw)
    widened = extended.replace('<map mr="ch_order_replies" vaddr="0x', '<map mr="dev_motor" vaddr="0x3f000000" '
                               'perms="rw" cached="false" /><map mr="ch_order_replies" vaddr="0x', 1)
    assert any("network: maps changed" in p for p in check_extension(base, widened, hw))
    image = '<program_image path="ui.elf" />'
    irq = extended.replace(image, image + '<irq irq="99" id="40" />', 1)
    assert any("ui: interrupts added" in p for p in check_extension(base, irq, hw))


def test_extension_refuses_an_interface_the_model_does_not_give_a_partition(pump) -> None:  # type: ignore[no-untyped-def]
    base, plan, _hw = pump
    with pytest.raises(BuildError, match="service_port"):
        add_simulated_hardware(base, plan, HwSpec("hw", ["service_port"], [], 254, 500, 1000))


def test_serial_parsing() -> None:
    ev = parse_event("\x1b[0mseptum: hw motor rate=20.000 seq=2 frame=32 cmd_frame=32 why=command t_us=443802")
    assert ev is not None and ev.pd == "hw" and ev.num("rate") == 20.0 and ev.int("frame") == 32
    assert parse_event("septum: broken line with spaces in=a value") is None
    faults = parse_faults(enumerate(["faulting PD: network", "VMFault: ip=0x10  fault_addr=0x20474000  fsr=0x9",
                                     "   dfsc = permission fault, level 3 (0x0000000f) -- write not read"]))
    assert len(faults) == 1 and faults[0].fault_addr == 0x20474000 and faults[0].kind == "permission fault"
    assert faults[0].access == "write"
