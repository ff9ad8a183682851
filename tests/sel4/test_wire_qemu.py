"""The wire round trip under seL4: encode in Python, decode in C in a PD under QEMU, and back.

A two-PD system is generated from a small model whose channels carry the pump's message types: ``wire_tx``
holds payloads encoded here (compiled in as byte arrays), decodes each with the generated C and sends it
through the real ring in the channel's shared region (mapped rw in wire_tx, r in wire_rx, with a
notification); ``wire_rx`` receives it, encodes it again and prints it on the serial line, where this test
decodes it with ``septum.sel4.wire`` and compares it with what it sent. On one channel wire_tx also publishes a
payload outside the model's bounds straight into the ring (bypassing send, as a hostile sender would): the
receiver must refuse and count it and go on with the next message.
"""

from __future__ import annotations

import random
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from septum.gen import microkit
from septum.gen.layout import c_ident
from septum.model import Model, load
from septum.model.schema import Channel, Device, Partition, Resources
from septum.sel4 import c_channels, wire
from septum.sel4.qemu import Boot, find_qemu
from septum.sel4.wire import FieldLayout, MessageLayout

from .test_c_channels import CROSS, PD_FLAGS, PUMP, _run, canon

MAX_PAYLOAD = 8192  # DrugLibrary and UpdateChunk (64-128 KiB of hex on a debug UART) stay on the host tests
TEXT = "aZ09 -/\u00b5\u2013\u00dc\u20ac\U0001d11e"  # 1-, 2-, 3- and 4-byte UTF-8


def _value(kind: str, f: FieldLayout, rng: random.Random) -> Any:
    if kind == "int":
        return rng.choice([f.int_lo, f.int_hi, rng.randint(f.int_lo, f.int_hi)])
    if kind == "float":
        lo = f.float_lo if f.float_lo is not None else -1e300
        hi = f.float_hi if f.float_hi is not None else 1e300
        return rng.choice([lo, hi, rng.uniform(lo, hi)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "enum":
        return rng.choice(f.values)
    if kind == "str":
        return "".join(rng.choice(TEXT) for _ in range(rng.randint(0, f.max_len)))
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, min(f.max_len, 64))))


def sample(layout: MessageLayout, rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in layout.fields:
        if f.optional and rng.random() < 0.3:
            out[f.name] = None
        elif f.type == "list":
            out[f.name] = [_value(f.item or "", f, rng) for _ in range(rng.randint(0, f.max_items))]
        else:
            out[f.name] = _value(f.type, f, rng)
    return out


def wire_model(pump: Model) -> Model:
    messages = [m for m in sorted({ch.message for ch in pump.channels})
                if wire.message_layout(m, pump.message_fields(m)).size <= MAX_PAYLOAD]
    channels = tuple(Channel(name=f"w_{m}", src="wire_tx", dst="wire_rx", message=m, queue=4) for m in messages)
    return Model(septum=1, device=Device(name="wire round trip"),
                 partitions={"wire_tx": Partition(resources=Resources(priority=100)),
                             "wire_rx": Partition(resources=Resources(priority=200))},
                 messages={m: pump.message_fields(m) for m in messages if m not in ("Heartbeat", "Raw")},
                 channels=channels)


def _c_bytes(name: str, data: bytes) -> str:
    body = ",".join(str(b) for b in data) or "0"
    return f"static const uint8_t {name}[{max(len(data), 1)}] = {{{body}}};"


def tx_source(model: Model, payloads: dict[str, bytes], hostile: tuple[str, bytes]) -> str:
    out = ["#include <microkit.h>"]
    out += [f'#include "{c_channels.channel_header_name(ch.name)}"' for ch in model.channels]
    init: list[str] = []
    for i, ch in enumerate(model.channels):
        cid, mid, p = c_channels.channel_ident(ch.name), c_channels.message_ident(ch.message), c_ident(ch.name)
        out += [_c_bytes(f"in_{i}", payloads[ch.name]), f"static septum_ch_{cid}_tx_t tx_{i};",
                f"static septum_{mid}_t m_{i};"]
        init += [f"    septum_ch_{cid}_tx_init(&tx_{i}, (void *)SEPTUM_RING_{p}_SRC_VADDR);",
                 f"    if (septum_{mid}_decode(in_{i}, sizeof in_{i}, &m_{i}) != 0 "
                 f"|| septum_ch_{cid}_send(&tx_{i}, &m_{i}) != 0) {{",
                 f'        microkit_dbg_puts("SEPTUM-WIRE-TX {ch.name} refused\\n");',
                 "    }"]
        if ch.name == hostile[0]:
            out.append(_c_bytes("bad", hostile[1]))
            init += [f"    septum_ring_put(tx_{i}.region, SEPTUM_RING_{p}_SLOT_SIZE, SEPTUM_RING_{p}_SLOTS, "
                     f"tx_{i}.next++, bad, sizeof bad); /* as a hostile sender would */",
                     f"    microkit_notify(SEPTUM_RING_{p}_SRC_ID);",
                     f"    (void)septum_ch_{cid}_send(&tx_{i}, &m_{i}); /* and the ring goes on */"]
    out += ["void init(void)", "{", *init, '    microkit_dbg_puts("SEPTUM-WIRE-TX done\\n");', "}",
            "void notified(microkit_channel ch)", "{", "    (void)ch;", "}"]
    return "\n".join(out) + "\n"


def rx_source(model: Model, expected: int) -> str:
    out = ["#include <microkit.h>"]
    out += [f'#include "{c_channels.channel_header_name(ch.name)}"' for ch in model.channels]
    out += ["static uint64_t total;",
            "static void put_u64(uint64_t v)",
            "{",
            "    char buf[21];",
            "    int i = 20;",
            "    buf[i] = 0;",
            "    do {",
            "        buf[--i] = (char)('0' + v % 10u);",
            "        v /= 10u;",
            "    } while (v);",
            "    microkit_dbg_puts(buf + i);",
            "}"]
    drains, cases = [], []
    for i, ch in enumerate(model.channels):
        cid, mid, p = c_channels.channel_ident(ch.name), c_channels.message_ident(ch.message), c_ident(ch.name)
        out += [f"static septum_ch_{cid}_rx_t rx_{i};", f"static septum_{mid}_t m_{i};",
                f"static uint8_t out_{i}[SEPTUM_RING_{p}_PAYLOAD_SIZE];",
                f"static void drain_{i}(void)",
                "{",
                f"    while (septum_ch_{cid}_recv(&rx_{i}, &m_{i})) {{",
                f"        int why = septum_{mid}_encode(&m_{i}, out_{i});",
                f'        septum_print_wire(microkit_dbg_puts, "{ch.name}", why, out_{i}, sizeof out_{i});',
                "        total++;",
                "    }",
                f"    if (rx_{i}.stats.refused) {{",
                f'        microkit_dbg_puts("SEPTUM-WIRE-STATS {ch.name} received=");',
                f"        put_u64(rx_{i}.stats.received);",
                '        microkit_dbg_puts(" refused=");',
                f"        put_u64(rx_{i}.stats.refused);",
                '        microkit_dbg_puts(" last=");',
                f"        put_u64(rx_{i}.stats.last_refusal);",
                '        microkit_dbg_puts("\\n");',
                "    }",
                "}"]
        drains.append(f"    septum_ch_{cid}_rx_init(&rx_{i}, (const void *)SEPTUM_RING_{p}_DST_VADDR);")
        cases.append(f"    if (ch == SEPTUM_RING_{p}_DST_ID) {{\n        drain_{i}();\n    }}")
    out += ["void init(void)", "{", *drains, "}", "void notified(microkit_channel ch)", "{", *cases,
            f"    if (total == {expected}u) {{",
            '        microkit_dbg_puts("SEPTUM-WIRE-RX done\\n");',
            "        total++;",
            "    }", "}"]
    return "\n".join(out) + "\n"


def test_python_to_c_under_qemu_and_back(sdk: Any, tmp_path: Path) -> None:
    if find_qemu() is None:
        pytest.skip("qemu-system-aarch64 is not installed (Debian package qemu-system-arm; `make sel4` installs it)")
    model = wire_model(load(PUMP)[0])
    layouts = c_channels.layouts(model)
    rng = random.Random(14)
    values = {ch.name: sample(layouts[ch.message], rng) for ch in model.channels}
    payloads = {name: wire.encode(layouts[ch.message], values[name])
                for name, ch in ((c.name, c) for c in model.channels)}
    target = next(ch for ch in model.channels if ch.message == "MotorCommand")
    motor = layouts["MotorCommand"]
    rate = next(f for f in motor.fields if f.name == "rate_ml_h")
    bad = bytearray(payloads[target.name])
    struct.pack_into("<d", bad, rate.value_offset, (rate.float_hi or 0.0) + 1.0)
    assert wire.refusal(motor, bytes(bad)) == "FLOAT_RANGE"

    gen = tmp_path / "gen"
    gen.mkdir()
    for rel, text in {**c_channels.generate(model), **microkit.generate(model, dialect="1.2").files}.items():
        (gen / rel).parent.mkdir(parents=True, exist_ok=True)
        (gen / rel).write_text(text)
    expected = len(model.channels) + 1  # the target channel carries its message twice around the hostile one
    (gen / "wire_tx.c").write_text(tx_source(model, payloads, (target.name, bytes(bad))))
    (gen / "wire_rx.c").write_text(rx_source(model, expected))
    config = "debug"  # only the debug kernel prints
    for pd in ("wire_tx", "wire_rx"):
        _run([CROSS, "-O2", "-std=gnu11", *PD_FLAGS[1:], "-isystem", str(sdk.include(config)), f"-I{gen}", "-c",
              str(gen / f"{pd}.c"), "-o", str(gen / f"{pd}.o")])
        _run(["aarch64-linux-gnu-ld", f"-L{sdk.lib(config)}", str(gen / f"{pd}.o"), "-lmicrokit",
              f"-T{sdk.linker_script(config)}", "-o", str(gen / f"{pd}.elf")])
    image = tmp_path / "loader.img"
    tool = sdk.run_tool(gen / "device.system", gen, config, image, tmp_path / "report.txt")
    assert tool.ok, tool.output

    with Boot(image) as boot:
        boot.wait_for("SEPTUM-WIRE-RX done", timeout=180)
        lines = [ln.text for ln in boot.lines]
    assert not [ln for ln in lines if ln.startswith("SEPTUM-WIRE-TX ") and "done" not in ln], lines
    echoed: dict[str, list[bytes]] = {}
    for text in lines:
        m = re.match(r"SEPTUM-WIRE (\S+) OK ([0-9a-f]*)$", text)
        if m:
            echoed.setdefault(m.group(1), []).append(bytes.fromhex(m.group(2)))
        assert not re.match(r"SEPTUM-WIRE \S+ REFUSED", text), text
    for ch in model.channels:
        layout = layouts[ch.message]
        want = 2 if ch.name == target.name else 1
        assert len(echoed.get(ch.name, [])) == want, (ch.name, echoed.get(ch.name))
        for got in echoed[ch.name]:
            assert got == payloads[ch.name]  # the bytes Python encoded came back unchanged through C
            assert canon(wire.decode(layout, got)) == canon(values[ch.name])
    stats = [t for t in lines if t.startswith(f"SEPTUM-WIRE-STATS {target.name} ")]
    assert stats and stats[-1].endswith(f"received=2 refused=1 last={wire.REFUSALS['FLOAT_RANGE']}"), stats
