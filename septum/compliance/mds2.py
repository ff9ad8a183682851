"""MDS2 answers derived from the model.

Every answer has a basis: ``derived`` (the model decides it), ``needs confirmation`` (the model suggests
an answer a person must confirm, e.g. because it depends on code the model does not describe) or
``manual`` (organisational; the model cannot know). ``derived_from`` names the model elements used.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

from septum.knowledge.shipped import shipped
from septum.model import schema as s

from .registrar import registrar

WEAK = {"", "none", "ssl2", "ssl3", "tls1", "tls1.0", "tls1.1"}


@dataclass(frozen=True)
class Answer:
    id: str
    section: str
    question: str
    answer: str  # Yes | No | N/A | See note, or the text itself for a DOC item
    basis: str  # derived | needs confirmation | manual
    derived_from: tuple[str, ...]
    note: str


Derived = tuple[str, list[str], str, str]  # answer, derived_from, note, basis
Derivation = Callable[[s.Model], Derived]

# ``derive:`` names in septum/data/mds2.yaml -> the function that answers; filled by @derives so that a
# function's name can change without breaking the link (tests/compliance/test_registries.py checks both ways).
DERIVE: dict[str, Derivation] = {}


derives = registrar(DERIVE, "MDS2 derivation")
"""``@derives(name)``: register the decorated function as the answer for ``derive: name`` items of the form."""


def _yn(cond: bool, refs: list[str], yes: str, no: str, basis: str = "derived") -> Derived:
    return ("Yes" if cond else "No"), refs, (yes if cond else no), basis


def _ifaces(m: s.Model, pred: Callable[[s.Interface], bool]) -> list[str]:
    return [f"interface:{n}" for n, i in m.interfaces.items() if i.enabled and pred(i)]


def _parts(m: s.Model, pred: Callable[[s.Partition], bool]) -> list[str]:
    return [f"partition:{n}" for n, p in m.partitions.items() if pred(p)]


def _audit_parts(m: s.Model) -> set[str]:
    return {n for n, p in m.partitions.items() if p.service == "audit"}


def _auth_parts(m: s.Model) -> list[str]:
    return [n for n, p in m.partitions.items() if p.service == "auth"]


def _external_network(m: s.Model) -> list[str]:
    return [n for n, i in m.interfaces.items() if i.enabled and i.external and i.kind in s.NETWORK_KINDS]


def _network_owners(m: s.Model) -> list[str]:
    return sorted({o for n in _external_network(m) if (o := m.owner_of(n)) is not None})


def _login_roles(m: s.Model) -> list[str]:
    return [n for n, r in m.roles.items() if r.kind == "human" and r.authenticates_with]


def _auth_config(m: s.Model, key: str, default: float) -> float:
    auth = _auth_parts(m)
    value = m.partitions[auth[0]].config.get(key, default) if auth else default
    try:
        return float(value)
    except ValueError:  # the runtime refuses such a config; the MDS2 shows the service's default
        return default


# The last model's audit channels by sender. Models are immutable, so the index stays right for as long as
# the same object is asked about; without it every answer that asks "does this partition audit?" rescans
# all channels per partition, quadratic on a large device (2,400 calls for one report at 3,000 elements).
_AUDIT_INDEX: tuple[s.Model, dict[str, list[str]]] | None = None


def _audited(m: s.Model, partition: str) -> list[str]:
    global _AUDIT_INDEX
    if _AUDIT_INDEX is None or _AUDIT_INDEX[0] is not m:
        audit = _audit_parts(m)
        by_src: dict[str, list[str]] = {}
        for c in m.channels:
            if c.dst in audit:
                by_src.setdefault(c.src, []).append(f"channel:{c.name}")
        _AUDIT_INDEX = (m, by_src)
    return list(_AUDIT_INDEX[1].get(partition, ()))


# ---------------------------------------------------------------------------------------------- DOC


def _text(value: str, ref: str, what: str) -> Derived:
    value = " ".join(value.split())
    if value:
        return value, [ref], f"from the model's {what}", "derived"
    return "See note", [ref], f"the model gives no {what}", "needs confirmation"


@derives("manufacturer")
def d_manufacturer(m: s.Model) -> Derived:
    return _text(m.device.manufacturer, "device", "device.manufacturer")


@derives("device_description")
def d_device_description(m: s.Model) -> Derived:
    return _text(m.device.description, "device", "device.description")


@derives("device_model")
def d_device_model(m: s.Model) -> Derived:
    return f"{m.device.name} {m.device.version}", ["device"], "device.name and device.version", "derived"


@derives("diagram")
def d_diagram(m: s.Model) -> Derived:
    return ("Yes", ["partitions", "channels", "interfaces"],
            "`septum report`: Global System view and per-path tables (protocol, port, authentication, "
            "cryptography) drawn from the model", "derived")


@derives("software_only")
def d_software_only(m: s.Model) -> Derived:
    hw = [f"interface:{n}" for n, i in m.interfaces.items() if i.kind in ("actuator", "sensor")]
    if hw:
        return "No", hw, "the device drives its own hardware: " + ", ".join(hw), "derived"
    return ("See note", ["interfaces"], "no actuator or sensor in the model: state whether it ships with hardware",
            "needs confirmation")


@derives("samd_details")
def d_samd_details(m: s.Model) -> Derived:
    """DOC-11.1 to 11.4 ask how software-only products are hosted: they apply only to SaMD."""
    ans, refs, note, basis = d_software_only(m)
    if ans == "No":
        return "N/A", refs, "not software only (" + note + ")", basis
    return "See note", refs, "the model cannot tell whether the product is software only: " + note, \
        "needs confirmation"


# ---------------------------------------------------------------------------------------------- MPII


@derives("handles_phi")
def d_handles_phi(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: "phi" in i.carries)
    return _yn(bool(refs), refs or ["interfaces"], "interfaces carrying PHI: " + ", ".join(refs),
               "no interface carries phi", "derived" if refs else "needs confirmation")


def _phi_holders(m: s.Model) -> dict[str, list[str]]:
    """partition -> the PHI-carrying interfaces it owns: where patient data enters and is held."""
    out: dict[str, list[str]] = {}
    for n, i in m.interfaces.items():
        owner = m.owner_of(n)
        if i.enabled and "phi" in i.carries and owner is not None:
            out.setdefault(owner, []).append(n)
    return out


@derives("phi_in_memory")
def d_phi_in_memory(m: s.Model) -> Derived:
    holders = _phi_holders(m)
    if not holders:
        return "No", ["interfaces"], "no enabled interface owned by a partition carries phi", "needs confirmation"
    refs = [f"partition:{p}" for p in sorted(holders)]
    # the model marks interfaces, not message fields, as carrying phi: what the holders pass on may carry it
    onward = sorted(set(_reachable_from(m, sorted(holders), set())) - set(holders) - _audit_parts(m))
    return ("Yes", refs, "held in the memory of the partitions that own a PHI-carrying interface: " + "; ".join(
        f"{p} ({', '.join(holders[p])})" for p in sorted(holders))
        + (f"; reached by channels from there, so possibly holding it too: {', '.join(onward)}" if onward else ""),
        "derived")


@derives("phi_persistent")
def d_phi_persistent(m: s.Model) -> Derived:
    holders = _phi_holders(m)
    if not holders:
        return "No", ["interfaces"], "no enabled interface owned by a partition carries phi", "needs confirmation"
    # the model gives each partition a data folder, but not what the code writes into it
    refs = [f"partition:{p}" for p in sorted(holders)]
    return ("See note", refs, "partitions holding patient data, each with its own data folder: " + ", ".join(
        f"{p} ({m.partitions[p].resources.disk_mb} MB)" for p in sorted(holders))
        + "; the model does not say whether their code writes patient data there", "needs confirmation")


@derives("transmits_phi")
def d_transmits_phi(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: "phi" in i.carries and i.external)
    return _yn(bool(refs), refs or ["interfaces"], "sent over " + ", ".join(refs), "no external interface carries phi")


@derives("displays_phi")
def d_displays_phi(m: s.Model) -> Derived:
    shown = _ifaces(m, lambda i: i.kind == "display" and "phi" in i.carries)
    if shown:
        return "Yes", shown, "displays carrying phi: " + ", ".join(shown), "derived"
    displays = _ifaces(m, lambda i: i.kind == "display")
    if displays:
        return ("No", displays, "no display declares phi in `carries`: confirm the screen never shows patient data",
                "needs confirmation")
    return "No", ["interfaces"], "no display in the model", "derived"


def _phi_over(m: s.Model, kinds: set[str], what: str) -> Derived:
    refs = _ifaces(m, lambda i: i.kind in kinds and "phi" in i.carries)
    return _yn(bool(refs), refs or ["interfaces"], "carrying phi: " + ", ".join(refs),
               f"no enabled {what} interface carries phi")


@derives("phi_removable_media")
def d_phi_removable_media(m: s.Model) -> Derived:
    return _phi_over(m, {"storage", "usb"}, "storage or USB")


@derives("phi_cable")
def d_phi_cable(m: s.Model) -> Derived:
    return _phi_over(m, {"serial", "usb"}, "serial or USB")


@derives("phi_wired")
def d_phi_wired(m: s.Model) -> Derived:
    return _phi_over(m, {"network"}, "wired network")


@derives("phi_wireless")
def d_phi_wireless(m: s.Model) -> Derived:
    return _phi_over(m, {"wireless", "bluetooth"}, "wireless or Bluetooth")


# ---------------------------------------------------------------------------------------------- ALOF


@derives("session_timeout")
def d_session_timeout(m: s.Model) -> Derived:
    people = [f"role:{n}" for n in _login_roles(m)]
    if not people:
        return "N/A", [], "no role logs in", "derived"
    auth = _auth_parts(m)
    if not auth:
        return "See note", people, "no auth service: the model does not say when sessions end", "needs confirmation"
    t = _auth_config(m, "session_timeout_s", 300)
    return ("Yes", [f"partition:{auth[0]}", *people],
            f"the auth service ends a session after {t:g} s without use (config session_timeout_s)", "derived")


# ---------------------------------------------------------------------------------------------- AUDT


@derives("audit_log")
def d_audit_log(m: s.Model) -> Derived:
    refs = _parts(m, lambda p: p.service == "audit")
    return _yn(bool(refs), refs or ["partitions"], "Septum audit service (its own hash-chained log)",
               "no audit service")


@derives("audit_names_principal")
def d_audit_names_principal(m: s.Model) -> Derived:
    audit = _audit_parts(m)
    msgs = {c.message for c in m.channels if c.dst in audit}
    named = [x for x in msgs if x in m.messages and any(k in m.messages[x] for k in ("principal", "user", "actor"))]
    if named:
        return "Yes", [f"message:{x}" for x in named], "audit messages carry a principal field", "derived"
    return ("See note", [f"message:{x}" for x in sorted(msgs)] or ["channels"],
            "audit messages have no principal/user field; confirm that the detail text names the principal",
            "needs confirmation")


@derives("events_audited")
def d_events_audited(m: s.Model) -> Derived:
    audit = _audit_parts(m)
    if not audit:
        return "No", ["partitions"], "no audit service", "derived"
    refs = [r for n in m.partitions for r in _audited(m, n)]
    missing = [n for n in m.partitions if n not in audit and not _audited(m, n)]
    note = f"{len(m.partitions) - len(audit) - len(missing)} partition(s) send events to the audit service"
    if missing:  # a "Yes" would claim events the model cannot record: what these partitions do is not logged
        return ("See note", refs + [f"partition:{n}" for n in missing] or sorted(f"partition:{a}" for a in audit),
                note + "; without an audit channel: " + ", ".join(missing), "needs confirmation")
    return "Yes", refs or sorted(f"partition:{a}" for a in audit), note + ", every partition does", "derived"


@derives("login_audited")
def d_login_audited(m: s.Model) -> Derived:
    if not _login_roles(m):
        return "N/A", [], "no role logs in", "derived"
    auth = _auth_parts(m)
    refs = [r for a in auth for r in _audited(m, a)]
    return _yn(bool(auth) and bool(refs), refs or ["partitions"], "the auth service records auth.login, "
               "auth.login-failed and log-outs (auth.allowed, action logout) in the audit log",
               "the auth service has no audit channel" if auth else "no auth service")


@derives("network_audited")
def d_network_audited(m: s.Model) -> Derived:
    owners = _network_owners(m)
    if not owners:
        return "N/A", [], "no external network interface", "derived"
    refs = [r for o in owners for r in _audited(m, o)]
    missing = [o for o in owners if not _audited(m, o)]
    extra = "; the auth service records each request it decides (auth.allowed / auth.denied)" if _auth_parts(m) else ""
    return _yn(not missing, refs or [f"partition:{o}" for o in owners],
               "network-facing partitions send audit events: " + ", ".join(owners) + extra,
               "network-facing partitions without an audit channel: " + ", ".join(missing))


@derives("break_glass_audited")
def d_break_glass_audited(m: s.Model) -> Derived:
    acts = {n: a for n, a in m.actions.items() if a.break_glass}
    if not acts:
        return "N/A", [], "no break-glass action", "derived"
    refs = [r for a in acts.values() for r in _audited(m, a.handled_by)] or [f"action:{n}" for n in acts]
    ok = all(_audited(m, a.handled_by) for a in acts.values())
    return _yn(ok, refs, "each break-glass handler sends to the audit service (see also rule MED004)",
               "a break-glass handler has no audit channel")


@derives("update_audited")
def d_update_audited(m: s.Model) -> Derived:
    upd = _parts(m, lambda p: p.service == "update")
    if not upd:
        return "N/A", [], "no update service", "derived"
    missing = [r for r in upd if not _audited(m, r.split(":", 1)[1])]
    refs = [c for r in upd for c in _audited(m, r.split(":", 1)[1])]
    return _yn(not missing, refs or upd, "the update service audits every install outcome",
               "update service without an audit channel: " + ", ".join(missing))


@derives("removable_media_audited")
def d_removable_media_audited(m: s.Model) -> Derived:
    media = [n for n, i in m.interfaces.items() if i.enabled and i.kind in ("storage", "usb")]
    if not media:
        return "N/A", ["interfaces"], "no enabled removable-media (storage or USB) interface", "derived"
    owners = sorted({o for n in media if (o := m.owner_of(n)) is not None})
    missing = [o for o in owners if not _audited(m, o)]
    refs = [r for o in owners for r in _audited(m, o)] or [f"interface:{n}" for n in media]
    return _yn(bool(owners) and not missing, refs, "the partitions owning removable media send audit events: "
               + ", ".join(owners), "removable media owned by partitions without an audit channel: "
               + ", ".join(missing or media))


@derives("service_audited")
def d_service_audited(m: s.Model) -> Derived:
    ports = [n for n, i in m.interfaces.items() if i.enabled and i.kind == "debug"]
    if not ports:
        off = [f"interface:{n}" for n, i in m.interfaces.items() if i.kind == "debug"]
        return "N/A", off or ["interfaces"], "no service or debug interface is enabled in this build", "derived"
    handlers = sorted({a.handled_by for a in m.actions.values() if set(a.via) & set(ports)}
                      | {o for n in ports if (o := m.owner_of(n)) is not None})
    missing = [h for h in handlers if not _audited(m, h)]
    refs = [r for h in handlers for r in _audited(m, h)] or [f"interface:{n}" for n in ports]
    return _yn(bool(handlers) and not missing, refs, "service sessions are handled by partitions that audit: "
               + ", ".join(handlers), "service handled without an audit channel: " + ", ".join(missing or ports))


@derives("audit_timestamped")
def d_audit_timestamped(m: s.Model) -> Derived:
    audit = _audit_parts(m)
    msgs = sorted({c.message for c in m.channels if c.dst in audit})
    ok = bool(msgs) and all(x in m.messages and any(k.startswith("at") or "time" in k for k in m.messages[x])
                            for x in msgs)
    return _yn(ok, [f"message:{x}" for x in msgs] or ["channels"], "audit messages carry a time field",
               "no time field found")


@derives("audit_protected")
def d_audit_protected(m: s.Model) -> Derived:
    refs = _parts(m, lambda p: p.service == "audit")
    return _yn(bool(refs), refs or ["partitions"], "only the audit partition writes the log; its hash chain and "
               "signed checkpoints make any change or truncation detectable (`septum audit verify`)",
               "no audit service")


# ---------------------------------------------------------------------------------------------- AUTH


@derives("authorisation")
def d_authorisation(m: s.Model) -> Derived:
    auth = _parts(m, lambda p: p.service == "auth")
    return _yn(bool(auth), auth or ["partitions"],
               "every action is authorised by the auth service against the model's roles", "no auth service partition")


@derives("role_based")
def d_role_based(m: s.Model) -> Derived:
    refs = [f"role:{r}" for r in m.roles]
    return _yn(len(m.roles) > 1 and any(a.allowed for a in m.actions.values()), refs or ["roles"],
               f"{len(m.roles)} roles; each action lists the roles allowed to perform it", "no role-based actions")


@derives("api_authorised")
def d_api_authorised(m: s.Model) -> Derived:
    owners = _network_owners(m)
    if not owners:
        return "N/A", [], "no external network interface", "derived"
    auth = set(_auth_parts(m))
    audit = _audit_parts(m)
    out = [c for c in m.channels if c.src in owners]
    bypass = [c.name for c in out if c.dst not in auth | audit]
    return _yn(bool(auth) and not bypass, [f"channel:{c.name}" for c in out] or ["channels"],
               "every channel from the network-facing partition(s) goes to the auth service or the audit log",
               ("channels around the auth service: " + ", ".join(bypass)) if bypass and auth else "no auth service")


# ---------------------------------------------------------------------------------------------- CSUP


@derives("has_software")
def d_has_software(m: s.Model) -> Derived:
    refs = [f"partition:{p}" for p in m.components or m.partitions] or ["partitions"]
    return _yn(bool(m.components) or bool(m.partitions), refs, "software components are listed per partition",
               "no software components")


@derives("third_party_components")
def d_third_party_components(m: s.Model) -> Derived:
    own = m.device.manufacturer
    comps = sorted({c.name for cs in m.components.values() for c in cs if not own or c.supplier != own})
    if not comps:
        return "See note", ["components"], "the model lists no components", "needs confirmation"
    return "Yes", [f"partition:{p}" for p in m.components], f"{len(comps)} third-party components: " + ", ".join(
        comps), "derived"


def _reachable_from(m: s.Model, starts: list[str], prefer: set[str]) -> dict[str, list[str]]:
    """partition -> a channel path that reaches it from one of ``starts``, taking channels whose message is
    in ``prefer`` first."""
    paths: dict[str, list[str]] = {p: [] for p in starts}
    todo = list(starts)
    channels = sorted(m.channels, key=lambda c: c.message not in prefer)
    while todo:
        src = todo.pop(0)
        for c in channels:
            if c.src == src and c.dst not in paths:
                paths[c.dst] = [*paths[src], c.name]
                todo.append(c.dst)
    return paths


@derives("remote_update")
def d_remote_update(m: s.Model) -> Derived:
    upd = [n for n, p in m.partitions.items() if p.service == "update"]
    if not upd:
        return "No", ["partitions"], "no update service", "derived"
    paths = _reachable_from(m, _network_owners(m), {c.message for c in m.channels if c.dst in upd})
    hit = [u for u in upd if u in paths]
    refs = [f"channel:{c}" for u in hit for c in paths[u]]
    return _yn(bool(hit), refs or [f"partition:{u}" for u in upd],
               "signed bundles reach the update service from the network: "
               + "; ".join(" -> ".join(paths[u]) for u in hit),
               "no channel path from a network interface to the update service")


@derives("signed_updates")
def d_signed_updates(m: s.Model) -> Derived:
    refs = _parts(m, lambda p: p.service == "update" and "attesting" in p.mitigation)
    return _yn(bool(refs), refs or ["partitions"],
               "the update service verifies signatures (attesting) before installing", "no attesting update service")


@derives("unapproved_updates")
def d_unapproved_updates(m: s.Model) -> Derived:
    if not _parts(m, lambda p: p.service == "update"):
        return "N/A", [], "no update service", "derived"
    ans, refs, _note, basis = d_signed_updates(m)
    if ans == "Yes":
        return "No", refs, "only bundles signed with the manufacturer's key are installed", basis
    return ("See note", _parts(m, lambda p: p.service == "update"),
            "the update service does not attest: state who may approve updates", "needs confirmation")


# ---------------------------------------------------------------------------------------------- EMRG, MLDP


@derives("break_glass")
def d_break_glass(m: s.Model) -> Derived:
    refs = [f"action:{n}" for n, a in m.actions.items() if a.break_glass]
    return _yn(bool(refs), refs or ["actions"], "break-glass actions: " + ", ".join(refs), "no break-glass action")


@derives("hosts_software")
def d_hosts_software(m: s.Model) -> Derived:
    refs = [f"partition:{n}" for n in m.partitions]
    return _yn(bool(refs), refs or ["partitions"], f"{len(refs)} software partitions run on the device",
               "the model declares no partition")


@derives("compensating_controls")
def d_compensating_controls(m: s.Model) -> Derived:
    signed = _parts(m, lambda p: p.service == "update" and "attesting" in p.mitigation)
    refs = [f"partition:{n}" for n in m.partitions]
    note = ("partitions run only their declared entry points, each in its own sandbox that denies exec "
            "(Linux runtime) or as a fixed protection domain (seL4)")
    if signed:
        return "Yes", signed + refs, note + "; code changes only by bundles the update service verifies", "derived"
    return "See note", refs, note + "; no attesting update service: state how new code is approved", \
        "needs confirmation"


@derives("allowlisted")
def d_allowlisted(m: s.Model) -> Derived:
    refs = [f"partition:{n}" for n in m.partitions]
    return ("Yes", refs, "only the partitions declared in the model are started; updates must be signed",
            "needs confirmation")


# ---------------------------------------------------------------------------------------------- NAUT


@derives("node_auth")
def d_node_auth(m: s.Model) -> Derived:
    net = _external_network(m)
    weak = [n for n in net if "mutual" not in (m.interfaces[n].authentication or "").lower()]
    if not net:
        return "N/A", [], "no network interface", "derived"
    return _yn(not weak, [f"interface:{n}" for n in net], "mutual TLS on every network interface",
               "without mutual authentication: " + ", ".join(weak))


@derives("declared_ports")
def d_declared_ports(m: s.Model) -> Derived:
    net = [n for n, i in m.interfaces.items() if i.enabled and i.kind in s.NETWORK_KINDS]
    owners = {m.owner_of(n) for n in net}
    # a partition allowed the network without owning a network interface opens connections the model lists
    # nowhere: network access is then not limited to the declared ports
    extra = [f"partition:{n}" for n, p in m.partitions.items() if p.allow.net and n not in owners]
    if extra:
        return ("No", extra, "network access beyond the declared interfaces: " + ", ".join(extra)
                + " may use the network (allow.net) without owning a network interface", "derived")
    if not net:
        return "N/A", [], "no network interface, and no partition is allowed the network", "derived"
    vague = [n for n in net if not (m.interfaces[n].protocol and m.interfaces[n].port)]
    ports = ", ".join(f"{n}: {m.interfaces[n].protocol or '?'}/{m.interfaces[n].port or '?'}" for n in net)
    refs = [f"interface:{n}" for n in net]
    if vague:
        return ("See note", refs, f"no protocol or port in the model for {', '.join(vague)}; declared: {ports}",
                "needs confirmation")
    return ("Yes", refs, f"only declared ports are open ({ports}); no other partition is allowed the network",
            "derived")


@derives("cert_auth")
def d_cert_auth(m: s.Model) -> Derived:
    net = _external_network(m)
    if not net:
        return "N/A", [], "no network interface", "derived"
    weak = [n for n in net if not any(k in (m.interfaces[n].authentication or "").lower() for k in ("tls", "cert"))]
    return _yn(not weak, [f"interface:{n}" for n in net], "certificate (TLS) authentication on every network "
               "interface", "without certificate authentication: " + ", ".join(weak))


# ---------------------------------------------------------------------------------------------- CONN


@derives("has_connections")
def d_has_connections(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.external and i.kind in s.INPUT_KINDS - {"keypad", "button"})
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no external data connection")


@derives("wireless")
def d_wireless(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.kind in ("wireless", "bluetooth"))
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no enabled wireless interface in the model")


def _is_wifi(i: s.Interface) -> bool:
    return any(k in (i.protocol or "").lower() for k in ("wifi", "wi-fi", "802.11", "wlan"))


@derives("wifi")
def d_wifi(m: s.Model) -> Derived:
    radios = _ifaces(m, lambda i: i.kind == "wireless")
    wifi = _ifaces(m, lambda i: i.kind == "wireless" and _is_wifi(i))
    if wifi or not radios:
        return _yn(bool(wifi), wifi or ["interfaces"], ", ".join(wifi), "no enabled wireless interface in the model")
    return ("See note", radios, "wireless interfaces whose protocol does not say Wi-Fi: " + ", ".join(radios),
            "needs confirmation")


@derives("other_wireless")
def d_other_wireless(m: s.Model) -> Derived:
    other = _ifaces(m, lambda i: i.kind == "wireless" and not _is_wifi(i))
    if other:
        return ("See note", other, "wireless interfaces other than Wi-Fi: " + ", ".join(other) + " (state which)",
                "needs confirmation")
    return "No", ["interfaces"], "no enabled wireless interface other than Wi-Fi or Bluetooth", "derived"


@derives("bluetooth")
def d_bluetooth(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.kind == "bluetooth")
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no enabled Bluetooth interface in the model")


@derives("wired")
def d_wired(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.external and i.kind in ("network", "usb", "serial", "debug", "storage"))
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no enabled wired data connection")


@derives("ethernet")
def d_ethernet(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.external and i.kind == "network")
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no enabled wired network interface")


@derives("usb")
def d_usb(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.kind == "usb")
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no enabled USB interface in the model")


@derives("removable_storage")
def d_removable_storage(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.kind == "storage")
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no enabled storage interface in the model")


@derives("other_wired")
def d_other_wired(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.kind in ("serial", "debug"))
    off = [f"interface:{n}" for n, i in m.interfaces.items() if i.kind in ("serial", "debug") and not i.enabled]
    return _yn(bool(refs), refs + off or ["interfaces"], ", ".join(refs),
               "none enabled" + (f"; disabled in this build: {', '.join(off)}" if off else ""))


@derives("ruleset_documented")
def d_ruleset_documented(m: s.Model) -> Derived:
    """NAUT-2.1: the model's network interfaces (protocol, port) are the rule set the runtime enforces."""
    ans, refs, note, basis = d_declared_ports(m)
    if ans == "Yes":
        return "Yes", refs, "the rule set is the model's network interfaces (protocol, port), listed by " \
            "`septum report`; a partition may listen only on the ports of the interfaces it owns: " + note, basis
    return ans, refs, note, basis


@derives("ports_listed")
def d_ports_listed(m: s.Model) -> Derived:
    net = [n for n, i in m.interfaces.items() if i.enabled and i.kind in s.NETWORK_KINDS]
    if not net:
        return "N/A", [], "no network interface", "derived"
    vague = [n for n in net if not (m.interfaces[n].protocol and m.interfaces[n].port)]
    refs = [f"interface:{n}" for n in net]
    if vague:
        return "See note", refs, "no protocol or port in the model for: " + ", ".join(vague), "needs confirmation"
    return "Yes", refs, "the report's per-path tables list every interface's protocol and port", "derived"


@derives("hospital_network")
def d_hospital_network(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.external and i.kind in s.NETWORK_KINDS)
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no network interface")


@derives("api_calls")
def d_api_calls(m: s.Model) -> Derived:
    net = _external_network(m)
    if not net:
        return "No", ["interfaces"], "no network interface", "derived"
    cmd = [n for n in net if "commands" in m.interfaces[n].carries]
    if cmd:
        return "Yes", [f"interface:{n}" for n in cmd], "commands arrive over " + ", ".join(
            f"{n} ({m.interfaces[n].protocol or '?'})" for n in cmd), "derived"
    return ("See note", [f"interface:{n}" for n in net], "no network interface carries commands: state whether the "
            "device calls or serves an API", "needs confirmation")


@derives("tls")
def d_tls(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: "tls" in (i.encryption or "").lower())
    versions = sorted({m.interfaces[r.split(":", 1)[1]].encryption or "" for r in refs})
    return _yn(bool(refs), refs or ["interfaces"], "TLS versions: " + ", ".join(versions), "no interface declares TLS")


@derives("remote_operation")
def d_remote_operation(m: s.Model) -> Derived:
    net = {n for n, i in m.interfaces.items() if i.enabled and i.kind in s.NETWORK_KINDS}
    remote_roles = {n for n, r in m.roles.items() if net & set(r.via)}
    acts = sorted(n for n, a in m.actions.items() if (remote_roles & set(a.allowed)) or (net & set(a.via)))
    if not acts:
        return "No", ["actions"], "no action can be requested over a network interface", "derived"
    desc = [n + (f" (confirmed by a {m.actions[n].requires_confirmation_by} at the device)"
                 if m.actions[n].requires_confirmation_by else "") for n in acts]
    return ("See note", [f"action:{n}" for n in acts], "actions requested over the network: " + ", ".join(desc),
            "needs confirmation")


# ---------------------------------------------------------------------------------------------- PAUT


@derives("personal_login")
def d_personal_login(m: s.Model) -> Derived:
    humans = [n for n, r in m.roles.items() if r.kind == "human"]
    anonymous = [n for n in humans if not m.roles[n].authenticates_with]
    refs = [f"role:{n}" for n in humans]
    if anonymous:
        return ("See note", refs, "roles without login: " + ", ".join(anonymous) + " (presence-only inputs)",
                "needs confirmation")
    return "Yes", refs, "every human role authenticates", "needs confirmation"


def _human_login(m: s.Model) -> tuple[list[str], Derived | None]:
    """(refs, early answer): N/A when nobody logs in, a note when there is no auth service."""
    people = [f"role:{n}" for n in _login_roles(m)]
    if not people:
        return people, ("N/A", [], "no role logs in", "derived")
    auth = _auth_parts(m)
    if not auth:
        return people, ("See note", people, "no auth service: the model does not say how log-in works",
                        "needs confirmation")
    return [f"partition:{auth[0]}", *people], None


@derives("lockout")
def d_lockout(m: s.Model) -> Derived:
    refs, early = _human_login(m)
    if early:
        return early
    n, base, top = (_auth_config(m, k, d) for k, d in
                    (("lockout.free_attempts", 3), ("lockout.base_s", 30), ("lockout.max_s", 3600)))
    return ("Yes", refs, f"after {n:g} failures the auth service locks the name for {base:g} s, doubling up to "
            f"{top:g} s; kept across restarts (config lockout.*)", "derived")


@derives("multi_factor")
def d_multi_factor(m: s.Model) -> Derived:
    refs, early = _human_login(m)
    if early:
        return early
    return "No", refs, "the auth service accepts any one of a role's listed factors", "derived"


def _factor_roles(m: s.Model, words: tuple[str, ...]) -> list[str]:
    return [f"role:{n}" for n in _login_roles(m) if any(w in f.lower() for f in m.roles[n].authenticates_with
                                                        for w in words)]


@derives("biometric")
def d_biometric(m: s.Model) -> Derived:
    refs = _factor_roles(m, ("biometric", "fingerprint", "face", "iris"))
    return _yn(bool(refs), refs or ["roles"], "roles with a biometric factor: " + ", ".join(refs),
               "no role authenticates with a biometric factor")


@derives("token_login")
def d_token_login(m: s.Model) -> Derived:
    refs = _factor_roles(m, ("badge", "card", "token", "rfid", "nfc"))
    return _yn(bool(refs), refs or ["roles"], "roles with a badge or token: " + ", ".join(refs),
               "no role authenticates with a badge or token")


@derives("stores_credentials")
def d_stores_credentials(m: s.Model) -> Derived:
    refs, early = _human_login(m)
    if early:
        return early
    return "Yes", refs, "the auth service checks people against the per-device provisioned credential store", "derived"


@derives("credentials_hashed")
def d_credentials_hashed(m: s.Model) -> Derived:
    refs, early = _human_login(m)
    if early:
        return early
    return ("Yes", refs, "argon2id hashes with a random salt per entry, file mode 0600; no default credentials",
            "derived")


# ---------------------------------------------------------------------------------------------- RDMP, SBOM


@derives("support_known")
def d_support_known(m: s.Model) -> Derived:
    comps = [(p, c) for p, cs in m.components.items() for c in cs]
    unknown = sorted({c.name for _p, c in comps if c.support == "unknown"})
    refs = sorted({f"component:{p}/{c.name}" for p, c in comps})
    return _yn(bool(comps) and not unknown, refs or ["components"],
               "every component states its support level (the plan for its end of support is the manufacturer's)",
               "support level unknown for: " + ", ".join(unknown) if unknown else "no components",
               "needs confirmation")


@derives("sbom")
def d_sbom(m: s.Model) -> Derived:
    refs = [f"partition:{p}" for p in m.components] or ["components"]
    return _yn(bool(m.components), refs, "CycloneDX 1.6 JSON from `septum sbom`", "no components in the model")


def _all_components(m: s.Model, pred: Callable[[s.Component], bool], what: str) -> Derived:
    comps = [(p, c) for p, cs in m.components.items() for c in cs]
    bad = sorted({c.name for _p, c in comps if not pred(c)})
    refs = sorted({f"component:{p}/{c.name}" for p, c in comps})
    return _yn(bool(comps) and not bad, refs or ["components"], f"every component has {what}",
               f"without {what}: " + ", ".join(bad) if bad else "no components")


@derives("sbom_identifiers")
def d_sbom_identifiers(m: s.Model) -> Derived:
    return _all_components(m, lambda c: bool(c.purl), "a purl")


@derives("sbom_suppliers")
def d_sbom_suppliers(m: s.Model) -> Derived:
    return _all_components(m, lambda c: bool(c.supplier), "a supplier")


@derives("sbom_versions")
def d_sbom_versions(m: s.Model) -> Derived:
    return _all_components(m, lambda c: bool(c.version), "a version")


@derives("sbom_extras")
def d_sbom_extras(m: s.Model) -> Derived:
    comps = [c for cs in m.components.values() for c in cs]
    extras = [what for what, pred in (
        ("support level", lambda c: c.support != "unknown"), ("end of support", lambda c: bool(c.end_of_support)),
        ("licence", lambda c: bool(c.license)), ("dependencies", lambda c: bool(c.depends_on)))
        if any(pred(c) for c in comps)]
    return _yn(bool(comps), [f"partition:{p}" for p in m.components] or ["components"],
               "the partition-to-library dependency graph" + "".join(f", {e}" for e in extras),
               "no components in the model")


# ---------------------------------------------------------------------------------------------- SAHD


@derives("installed_verified")
def d_installed_verified(m: s.Model) -> Derived:
    refs = _parts(m, lambda p: p.service == "update" and "attesting" in p.mitigation)
    if refs:
        return ("Yes", refs, "updates are verified before they are installed; confirm that start-up verifies "
                "what is installed (boot chain, outside the model)", "needs confirmation")
    return "See note", ["partitions"], "no attesting update service", "needs confirmation"


@derives("debug_disabled")
def d_debug_disabled(m: s.Model) -> Derived:
    debug = [n for n, i in m.interfaces.items() if i.kind == "debug"]
    enabled = [n for n in debug if m.interfaces[n].enabled]
    return _yn(not enabled, [f"interface:{n}" for n in debug] or ["interfaces"],
               "debug interfaces disabled: " + (", ".join(debug) or "none present"),
               "enabled debug interfaces: " + ", ".join(enabled))


@derives("no_unauthorised_install")
def d_no_unauthorised_install(m: s.Model) -> Derived:
    ans, refs, note, _basis = d_signed_updates(m)
    return (("No" if ans == "Yes" else "Yes"), refs, "software: " + note + "; hardware: outside the model",
            "needs confirmation")


# ---------------------------------------------------------------------------------------------- TXCF, TXIG, RMOT


@derives("point_to_point")
def d_point_to_point(m: s.Model) -> Derived:
    net = _ifaces(m, lambda i: "phi" in i.carries and i.kind in s.NETWORK_KINDS)
    if not _ifaces(m, lambda i: "phi" in i.carries):
        return "N/A", [], "no interface carries phi", "derived"
    refs = net or _ifaces(m, lambda i: "phi" in i.carries)
    return ("No" if net else "Yes"), refs, ("sent over a network: " + ", ".join(net)) if net else "", "derived"


@derives("phi_encrypted")
def d_phi_encrypted(m: s.Model) -> Derived:
    phi = [n for n, i in m.interfaces.items() if i.enabled and i.external and "phi" in i.carries]
    if not phi:
        return "N/A", [], "no external interface carries phi", "derived"
    weak = [n for n in phi if (m.interfaces[n].encryption or "").lower() in WEAK]
    return _yn(not weak, [f"interface:{n}" for n in phi], "all encrypted: " + ", ".join(
        f"{n} ({m.interfaces[n].encryption})" for n in phi), "unencrypted or weak: " + ", ".join(weak))


@derives("encryption_by_default")
def d_encryption_by_default(m: s.Model) -> Derived:
    """TXCF-2.1 asks for configurable encryption where data is NOT encrypted by default."""
    ans, refs, note, basis = d_phi_encrypted(m)
    if ans == "Yes":
        return "N/A", refs, "encrypted by default, not an option: " + note, basis
    if ans == "N/A":
        return ans, refs, note, basis
    return "See note", refs, note + ": state whether the hospital can configure encryption", "needs confirmation"


@derives("transit_integrity")
def d_transit_integrity(m: s.Model) -> Derived:
    net = _external_network(m)
    if not net:
        return "N/A", [], "no network interface", "derived"
    weak = [n for n in net if (m.interfaces[n].encryption or "").lower() in WEAK]
    return _yn(not weak, [f"interface:{n}" for n in net], "authenticated encryption (TLS) on every network "
               "interface; channels inside the device are kernel-enforced", "unprotected: " + ", ".join(weak))


@derives("remote_service")
def d_remote_service(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: (i.protocol or "").lower() in ("ssh", "telnet", "rdp", "vnc")
                   or (i.kind == "debug" and i.external))
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs),
               "no remote-service protocol or enabled debug port in the model", "needs confirmation")


def answers(m: s.Model) -> list[Answer]:
    data = shipped("mds2.yaml")
    out: list[Answer] = []
    for item in data["items"]:
        qid = item["id"]
        section = qid.split("-", 1)[0]
        derive = item.get("derive")
        if derive is None:
            out.append(Answer(qid, section, item["q"], "See note", "manual", (),
                              "organisational or outside the model: answer by hand"))
            continue
        ans, refs, note, basis = DERIVE[derive](m)
        out.append(Answer(qid, section, item["q"], ans, basis, tuple(refs), note))
    return out


def sections() -> dict[str, str]:
    return dict(shipped("mds2.yaml")["sections"])


def to_csv(rows: list[Answer]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "id", "question (paraphrase)", "answer", "basis", "derived_from", "note"])
    for a in rows:
        w.writerow([a.section, a.id, a.question, a.answer, a.basis, " ".join(a.derived_from), a.note])
    return buf.getvalue()
