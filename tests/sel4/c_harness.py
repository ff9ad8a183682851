"""A host-side C test harness for the generated channel headers, driven over stdin/stdout from Python.

The harness is generated for a model: for every message type it can decode a payload (and print the decoded
struct field by field, so a consistent offset slip in both pack and unpack cannot hide) and re-encode it; for
every channel it owns one region of exactly the channel's size (so AddressSanitizer catches any access past
it) with a sender and a receiver state, and commands to send, receive, poke and peek the region, and to
rewrite part of it between the receiver's copy and its sequence re-check (a deterministic torn read).

Protocol: one command per line, one answer line per command.
  DEC <Message> <hex>            -> OK <hex re-encoded> <field dump> | REFUSED <code>
  TXINIT|RXINIT <ch>             -> OK
  SEND <ch> <hex payload>        -> SENT <why> <notified id or ->   (payload decoded first; REFUSED if invalid)
  RECV <ch>                      -> RECV <0|1> <hex or -> <received dropped torn refused bad_header resync last>
  POKE <ch> <offset> <hex>       -> OK
  PEEK <ch> <offset> <len>       -> <hex>
  TEAR <ch> <offset> <hex>       -> OK  (written into the region by the next receiver copy of this channel)
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path
from typing import Any

from septum.gen.layout import c_ident
from septum.sel4 import c_channels
from septum.sel4.wire import FieldLayout, MessageLayout

HOST_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def _dump_value(kind: str, f: FieldLayout, expr: str) -> list[str]:
    if kind == "int":
        return [f'printf("i%lld", (long long){expr});']
    if kind == "float":
        return [f"{{ uint64_t u; memcpy(&u, &{expr}, 8); printf(\"f%016llx\", (unsigned long long)u); }}"]
    if kind in ("bool", "enum"):
        return [f'printf("u%u", (unsigned){expr});']
    # str and bytes: hex of the content; a str must also be NUL-terminated after its length
    lines = [f'printf("x"); hex((const uint8_t *){expr}.data, {expr}.len);']
    if kind == "str":
        lines.append(f'if ({expr}.data[{expr}.len] != 0) printf("!NUL");')
    return lines


def _dump_field(f: FieldLayout) -> list[str]:
    member = c_channels.member_ident(f.name)
    out = [f'printf(" {member}=");']
    body: list[str]
    if f.type == "list":
        body = [f'printf("L%u:", (unsigned)m->{member}.count);',
                f"for (uint32_t i = 0; i < m->{member}.count; i++) {{",
                'if (i) printf(",");',
                *_dump_value(f.item or "", f, f"m->{member}.items[i]"), "}"]
    else:
        body = _dump_value(f.type, f, f"m->{member}")
    if f.optional:
        out += [f'if (!m->has_{member}) printf("-"); else {{', *body, "}"]
    else:
        out += body
    return out


def harness_source(model: Any) -> str:
    layouts = c_channels.layouts(model)
    plan_channels = list(model.channels)
    lines = [
        "#define _POSIX_C_SOURCE 200809L",
        "#include <stdio.h>",
        "#include <stdlib.h>",
        "#include <string.h>",
        "#include <stdint.h>",
        "static int notified = -1;",
        "#define SEPTUM_NOTIFY(ch) (notified = (int)(ch))",
        "static void tear_hook(const volatile uint8_t *slot);",
        "#define SEPTUM_AFTER_COPY_HOOK(slot) tear_hook(slot)",
    ]
    lines += [f'#include "{c_channels.channel_header_name(ch.name)}"' for ch in plan_channels]
    lines += [
        "static void hex(const uint8_t *p, uint32_t n) { for (uint32_t i = 0; i < n; i++) printf(\"%02x\", p[i]); }",
        "static size_t unhex(const char *s, uint8_t *out, size_t cap) {",
        "  size_t n = 0; while (s[0] && s[1] && n < cap) { unsigned b; sscanf(s, \"%2x\", &b); out[n++] = (uint8_t)b;"
        " s += 2; } return n; }",
        "static uint8_t *tear_region; static size_t tear_off, tear_len; static uint8_t tear_bytes[64];",
        "static void tear_hook(const volatile uint8_t *slot) { (void)slot;",
        "  if (tear_region) { memcpy(tear_region + tear_off, tear_bytes, tear_len); tear_region = NULL; } }",
        "static uint8_t *inbuf;",
        "#define INCAP (4u << 20)",
    ]
    for name, layout in layouts.items():
        mid = c_channels.message_ident(name)
        lines += [f"static septum_{mid}_t m_{mid};", f"static uint8_t enc_{mid}[{max(layout.size, 1)}];",
                  f"static void dump_{mid}(const septum_{mid}_t *m) {{"]
        for f in layout.fields:
            lines += _dump_field(f)
        lines += ["(void)m; }",
                  f"static void dec_{mid}(const uint8_t *w, uint32_t n) {{",
                  f"  int why = septum_{mid}_decode(w, n, &m_{mid});",
                  '  if (why) { printf("REFUSED %d\\n", why); return; }',
                  f"  why = septum_{mid}_encode(&m_{mid}, enc_{mid});",
                  '  if (why) { printf("REENCODE-REFUSED %d\\n", why); return; }',
                  f'  printf("OK "); hex(enc_{mid}, {layout.size}u); dump_{mid}(&m_{mid}); printf("\\n"); }}']
    for ch in plan_channels:
        cid = c_channels.channel_ident(ch.name)
        lines += [f"static septum_ch_{cid}_tx_t tx_{cid};", f"static septum_ch_{cid}_rx_t rx_{cid};",
                  f"static uint8_t *region_{cid};"]
    lines += ["static int handle(char *cmd, char *name, char *rest) {"]
    for name in layouts:
        mid = c_channels.message_ident(name)
        lines += [f'  if (!strcmp(cmd, "DEC") && !strcmp(name, "{name}")) {{',
                  "    size_t n = unhex(rest, inbuf, INCAP);",
                  f"    dec_{mid}(inbuf, (uint32_t)n); return 1; }}"]
    for ch in plan_channels:
        cid = c_channels.channel_ident(ch.name)
        mid = c_channels.message_ident(ch.message)
        p = f"SEPTUM_RING_{c_ident(ch.name)}"
        lines += [
            f'  if (!strcmp(name, "{ch.name}")) {{',
            f'    if (!strcmp(cmd, "TXINIT")) {{ septum_ch_{cid}_tx_init(&tx_{cid}, region_{cid}); puts("OK"); '
            "return 1; }",
            f'    if (!strcmp(cmd, "RXINIT")) {{ septum_ch_{cid}_rx_init(&rx_{cid}, region_{cid}); puts("OK"); '
            "return 1; }",
            '    if (!strcmp(cmd, "SEND")) {',
            "      size_t n = unhex(rest, inbuf, INCAP);",
            f"      int why = septum_{mid}_decode(inbuf, (uint32_t)n, &m_{mid});",
            '      if (why) { printf("REFUSED %d\\n", why); return 1; }',
            f"      notified = -1; why = septum_ch_{cid}_send(&tx_{cid}, &m_{mid});",
            '      printf("SENT %d %d\\n", why, notified); return 1; }',
            '    if (!strcmp(cmd, "RECV")) {',
            f"      int got = septum_ch_{cid}_recv(&rx_{cid}, &m_{mid});",
            '      printf("RECV %d ", got);',
            f"      if (got) {{ septum_{mid}_encode(&m_{mid}, enc_{mid}); hex(enc_{mid}, {p}_PAYLOAD_SIZE); }}"
            ' else printf("-");',
            f"      septum_rx_stats_t *s = &rx_{cid}.stats;",
            '      printf(" %llu %llu %llu %llu %llu %llu %u\\n", (unsigned long long)s->received, '
            "(unsigned long long)s->dropped, (unsigned long long)s->torn, (unsigned long long)s->refused, "
            "(unsigned long long)s->bad_header, (unsigned long long)s->resync, (unsigned)s->last_refusal);",
            "      return 1; }",
            '    if (!strcmp(cmd, "POKE") || !strcmp(cmd, "TEAR")) {',
            "      char *sp = strchr(rest, ' '); if (!sp) return 0; *sp = 0;",
            "      size_t off = strtoul(rest, NULL, 10);",
            "      size_t n = unhex(sp + 1, inbuf, INCAP);",
            f"      if (off + n > {p}_REGION_SIZE) return 0;",
            f"      if (cmd[0] == 'P') memcpy(region_{cid} + off, inbuf, n);",
            f"      else {{ if (n > sizeof tear_bytes) return 0; tear_region = region_{cid}; tear_off = off; "
            "tear_len = n; memcpy(tear_bytes, inbuf, n); }",
            '      puts("OK"); return 1; }',
            '    if (!strcmp(cmd, "PEEK")) {',
            "      size_t off, n; if (sscanf(rest, \"%zu %zu\", &off, &n) != 2) return 0;",
            f"      if (off + n > {p}_REGION_SIZE) return 0;",
            f'      hex(region_{cid} + off, (uint32_t)n); printf("\\n"); return 1; }}',
            "  }",
        ]
    lines += ["  return 0; }", "int main(void) {", "  inbuf = malloc(INCAP);",
              "  size_t cap = 2 * INCAP + 256; char *line = malloc(cap);"]
    for ch in plan_channels:
        cid = c_channels.channel_ident(ch.name)
        p = f"SEPTUM_RING_{c_ident(ch.name)}"
        lines.append(f"  region_{cid} = aligned_alloc(4096, {p}_REGION_SIZE); memset(region_{cid}, 0, "
                     f"{p}_REGION_SIZE);")
    lines += [
        "  while (fgets(line, (int)cap, stdin)) {",
        "    line[strcspn(line, \"\\n\")] = 0;",
        "    char *cmd = strtok(line, \" \"); char *name = strtok(NULL, \" \"); char *rest = strtok(NULL, \"\");",
        "    if (!cmd || !name) { puts(\"BAD\"); fflush(stdout); continue; }",
        "    if (!handle(cmd, name, rest ? rest : (char *)\"\")) puts(\"BAD\");",
        "    fflush(stdout);",
        "  }",
        "  return 0; }",
    ]
    return "\n".join(lines) + "\n"


def build(model: Any, out: Path, *, sanitize: bool = True, extra: list[str] | None = None) -> Path:
    """Generate the headers and the harness into ``out`` and compile them with the host gcc."""
    out.mkdir(parents=True, exist_ok=True)
    for rel, text in c_channels.generate(model).items():
        (out / rel).write_text(text)
    (out / "harness.c").write_text(harness_source(model))
    exe = out / ("harness-asan" if sanitize else "harness")
    cmd = ["gcc", *HOST_FLAGS, *(SANITIZE if sanitize else []), *(extra or []), f"-I{out}", str(out / "harness.c"),
           "-o", str(exe)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode:
        raise AssertionError(f"harness does not compile: {' '.join(cmd)}\n{done.stderr[-4000:]}")
    return exe


class Harness:
    """One running harness process; ``ask`` sends a command and returns its answer line."""

    def __init__(self, exe: Path) -> None:
        env = dict(os.environ, ASAN_OPTIONS="abort_on_error=0:detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1")
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the harness died on {line[:200]!r}:\n{err[-4000:]}")
        return answer.rstrip("\n")

    def close(self) -> str:
        """Stop the harness; returns its stderr (sanitizer reports land there)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        assert self.proc.returncode == 0, f"harness exited {self.proc.returncode}:\n{err[-4000:]}"
        return err


# -- reading the field dump back -------------------------------------------------------------------------------
def _parse_value(kind: str, f: FieldLayout, tok: str) -> Any:
    if kind == "int":
        assert tok[0] == "i"
        return int(tok[1:])
    if kind == "float":
        assert tok[0] == "f"
        return struct.unpack("<d", struct.pack("<Q", int(tok[1:], 16)))[0]
    if kind == "bool":
        assert tok[0] == "u"
        return bool(int(tok[1:]))
    if kind == "enum":
        assert tok[0] == "u"
        return f.values[int(tok[1:])]
    assert tok[0] == "x" and "!NUL" not in tok, tok
    raw = bytes.fromhex(tok[1:])
    return raw.decode("utf-8") if kind == "str" else raw


def parse_dump(layout: MessageLayout, tokens: list[str]) -> dict[str, Any]:
    """The decoded C struct, as the values dict ``septum.sel4.wire.decode`` returns."""
    by_member = dict(t.split("=", 1) for t in tokens)
    out: dict[str, Any] = {}
    for f in layout.fields:
        tok = by_member[c_channels.member_ident(f.name)]
        if f.optional and tok == "-":
            out[f.name] = None
        elif f.type == "list":
            assert tok.startswith("L"), tok
            count, _, items = tok[1:].partition(":")
            parts = items.split(",") if int(count) else []
            assert len(parts) == int(count)
            out[f.name] = [_parse_value(f.item or "", f, p) for p in parts]
        else:
            out[f.name] = _parse_value(f.type, f, tok)
    return out
