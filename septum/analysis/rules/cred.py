"""CRED — literal secrets in the model or in a partition's configuration."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec

from ..context import Context, P
from ..finding import ElementRef, Finding
from ..registry import rule

_SECRET_KEY = re.compile(r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|pin|credential)s?$",
                         re.I)
_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----|AKIA[0-9A-Z]{16}|\bgh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}"
)

# literal fragments of the patterns above: a substring test on the whole model is far faster than the regex
_SECRET_TOKENS = ("PRIVATE KEY-----", "AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xoxa-", "xoxb-", "xoxp-",
                  "xoxr-")


def _walk(obj: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, (*path, str(i)))
    else:
        yield path, obj


@rule(
    "CRED001", "Literal secret in the model or a partition's configuration", "error",
    rationale="""A password, key or token written into the model ships in every device and in every copy
    of the repository: a hard-coded credential, the classic medical-device finding.""",
    fix="""Provision secrets per device at installation (the auth service's provisioning), and refer to them
    by name, never by value.""",
    cwe=(798,), precision="high",
)
def cred001(ctx: Context) -> Iterator[Finding]:
    for pname, part in ctx.model.partitions.items():
        for key, value in part.config.items():
            if _SECRET_KEY.search(key) and isinstance(value, str | int) and str(value).strip() \
                    and not str(value).startswith(("provisioned:", "env:", "file:")):
                yield ctx.finding("CRED001", f"partition '{pname}' config '{key}' holds a literal secret",
                                  P(pname))
    # One regex pass over the encoded model; walk it element by element only if something matched.
    blob = msgspec.json.encode(ctx.model).decode()
    if not any(tok in blob for tok in _SECRET_TOKENS) or not _SECRET_VALUE.search(blob):
        return
    data = msgspec.to_builtins(ctx.model)
    for path, value in _walk(data, ()):
        if isinstance(value, str) and _SECRET_VALUE.search(value):
            section = path[0] if path else "model"
            name = path[1] if len(path) > 1 else section
            yield ctx.finding("CRED001", f"a secret-looking value at {'.'.join(path)}",
                              ElementRef(section.rstrip("s") if section != "shared" else "shared", name))
