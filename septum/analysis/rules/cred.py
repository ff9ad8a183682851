"""CRED — literal secrets in the model or in a partition's configuration."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import msgspec

from ..context import Context, P
from ..finding import ElementRef, Finding
from ..registry import rule

# A key names a secret when its last word(s) do: `db_password`, `adminPassword`, `api-key`, `pin_code`.
# Words after the secret noun make it a policy setting, not a secret (`password_min_len`, `token_ttl_s`,
# `pin_attempts`), so only the end of the key counts.
_SECRET_WORDS = frozenset({
    "password", "passwd", "passphrase", "pwd", "pass", "secret", "secrets", "token", "tokens", "credential",
    "credentials", "apikey", "privatekey", "accesskey", "secretkey", "signingkey", "masterkey",
    "clientsecret", "authtoken", "accesstoken", "bearer", "psk", "passcode",
})
# two-word nouns: `api_key`, `private_key`, `signing_key`, `pin_code`...
_SECRET_PAIRS = frozenset({
    ("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("signing", "key"),
    ("master", "key"), ("encryption", "key"), ("client", "secret"), ("auth", "token"), ("access", "token"),
    ("shared", "key"), ("pre", "shared"),
})
_PIN_WORDS = frozenset({"pin", "pins", "pincode", "pinnumber"})
_PIN_PAIRS = frozenset({("pin", "code"), ("pin", "number"), ("pin", "no")})
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_NOT_LITERAL = ("provisioned:", "env:", "file:")
_PIN_LIKE = re.compile(r"[0-9]{4,12}")

_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|AKIA[0-9A-Z]{16}|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}"
)
# literal fragments of the patterns above: a substring test on the whole model is far faster than the regex
_SECRET_TOKENS = ("PRIVATE KEY", "AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xoxa-", "xoxb-", "xoxp-",
                  "xoxr-")
# A random-looking token: long, from a key/token alphabet, mixed case and digits, high entropy, and
# switching between upper case, lower case and digits as often as random text does (about 2 characters in
# 3) rather than once per word as an identifier does (`InfusionPumpController2026`: 1 in 4). Measured on
# 3,500 random base64/url-safe tokens of 24-64 characters: 97% found, no camel-case identifier flagged. Hex
# digests (certificate fingerprints, hashes) are lower-case hex and deliberately not matched: they are not
# secrets, and a hex secret under a secret-named key is found by its key.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9+/_\-]{24,}={0,2}")
_MIN_ENTROPY_BITS = 3.5
_MIN_CLASS_SWITCHES = 0.45


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(key)]


def _tail_is(words: list[str], singles: frozenset[str], pairs: frozenset[tuple[str, str]]) -> bool:
    if not words:
        return False
    if words[-1] in singles or "".join(words[-2:]) in singles:
        return True
    return len(words) >= 2 and (words[-2], words[-1]) in pairs


def _entropy(text: str) -> float:
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def _char_class(c: str) -> int:
    return 0 if c.isupper() else 1 if c.islower() else 2 if c.isdigit() else 3


def _random_token(value: str) -> bool:
    if not _TOKEN_SHAPE.fullmatch(value) or not (any(c.isupper() for c in value)
                                                 and any(c.islower() for c in value)
                                                 and any(c.isdigit() for c in value)):
        return False
    switches = sum(_char_class(a) != _char_class(b) for a, b in pairwise(value))
    return switches / (len(value) - 1) >= _MIN_CLASS_SWITCHES and _entropy(value) >= _MIN_ENTROPY_BITS


def _config_secret(key: str, value: Any) -> str | None:
    """Why the config value ``value`` under ``key`` is a literal secret, or None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text or text.startswith(_NOT_LITERAL):
        return None
    words = _words(key)
    if _tail_is(words, _SECRET_WORDS, _SECRET_PAIRS):
        return "holds a literal secret"
    if _tail_is(words, _PIN_WORDS, _PIN_PAIRS) and _PIN_LIKE.fullmatch(text):
        return "holds a literal PIN"
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        return "holds a private key or a known token format"
    if isinstance(value, str) and _random_token(text):
        return "holds a random-looking token (a key or password?)"
    return None


def _walk_config(obj: Any, key: str, path: str) -> Iterator[tuple[str, Any, str]]:
    """(path, value, nearest key) for every scalar inside a config value; a list item keeps its list's key,
    so ``{pins: ["1234"]}`` is judged by ``pins``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_config(v, str(k), f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _walk_config(v, key, f"{path}[{i}]")
    else:
        yield path, obj, key


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
    of the repository: a hard-coded credential, the classic medical-device finding. Every value of a
    partition's configuration is checked, however deeply nested in maps and lists: by its key (ending in
    password, passwd, secret, token, api_key, private_key, credential...; a key ending in pin or pin_code
    holding 4 to 12 digits) and by its shape (a PEM private key, a known token format, a long random-looking
    token). A PEM private key or known token anywhere else in the model is found too.""",
    fix="""Provision secrets per device at installation (the auth service's provisioning), and refer to them
    by name, never by value: a value starting with `provisioned:`, `env:` or `file:` is a reference.""",
    cwe=(798,), precision="high",
)
def cred001(ctx: Context) -> Iterator[Finding]:
    for pname, part in ctx.model.partitions.items():
        for path, value, key in _walk_config(part.config, "", ""):
            why = _config_secret(key, value)
            if why:
                yield ctx.finding("CRED001", f"partition '{pname}' config '{path}' {why}", P(pname))
    # One substring pass over the encoded model; walk it element by element only if something matched.
    blob = msgspec.json.encode(ctx.model).decode()
    if not any(tok in blob for tok in _SECRET_TOKENS) or not _SECRET_VALUE.search(blob):
        return
    data = msgspec.to_builtins(ctx.model)
    for where, value in _walk(data, ()):
        if len(where) >= 3 and where[0] == "partitions" and where[2] == "config":
            continue  # judged above, with its key
        if isinstance(value, str) and _SECRET_VALUE.search(value):
            section = where[0] if where else "model"
            name = where[1] if len(where) > 1 else section
            yield ctx.finding("CRED001", f"a secret-looking value at {'.'.join(where)}",
                              ElementRef(section.rstrip("s") if section != "shared" else "shared", name))
