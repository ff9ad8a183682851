"""CRYPTO — cryptography on external interfaces that carry patient data or commands."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..context import Context, I
from ..finding import Finding
from ..registry import rule

_DEPRECATED = re.compile(r"^(ssl.*|tls ?1\.[01]|tls1[01]?|des|3des|rc4|wep|wpa1?|md5|sha1|none|)$", re.I)
_CLEARTEXT_PROTOCOLS = frozenset({"http", "telnet", "ftp", "tftp", "snmpv1", "snmpv2c", "mllp"})
_SENSITIVE = frozenset({"phi", "commands", "credentials"})


@rule(
    "CRYPTO001", "Sensitive data or commands on an unencrypted or weakly encrypted interface", "error",
    rationale="""Patient data and commands on an external interface without current encryption can be read
    or altered by anyone on the path; FDA guidance expects current cryptography on every such path.""",
    fix="""Set `encryption: tls1.3` (or tls1.2) and a protocol that uses it (https, mllp over TLS).""",
    cwe=(319, 327), precision="very-high",
)
def crypto001(ctx: Context) -> Iterator[Finding]:
    for name, iface in ctx.model.interfaces.items():
        carried = _SENSITIVE.intersection(iface.carries)
        if not (iface.external and iface.enabled and carried):
            continue
        enc = (iface.encryption or "").strip()
        what = ", ".join(sorted(carried))
        if not enc or enc.lower() == "none":
            yield ctx.finding("CRYPTO001", f"interface '{name}' carries {what} without encryption", I(name))
        elif _DEPRECATED.match(enc):
            yield ctx.finding("CRYPTO001", f"interface '{name}' carries {what} over deprecated '{enc}'", I(name))
        if iface.protocol and iface.protocol.lower() in _CLEARTEXT_PROTOCOLS and (not enc or enc == "none"):
            yield ctx.finding("CRYPTO001", f"interface '{name}' uses cleartext protocol '{iface.protocol}'",
                              I(name), severity="warning")
