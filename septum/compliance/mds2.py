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

from septum.model import schema as s

from .catalogues import shipped

WEAK = {"", "none", "ssl2", "ssl3", "tls1", "tls1.0", "tls1.1"}


@dataclass(frozen=True)
class Answer:
    id: str
    section: str
    question: str
    answer: str  # Yes | No | N/A | See note
    basis: str  # derived | needs confirmation | manual
    derived_from: tuple[str, ...]
    note: str


Derived = tuple[str, list[str], str, str]  # answer, derived_from, note, basis


def _yn(cond: bool, refs: list[str], yes: str, no: str, basis: str = "derived") -> Derived:
    return ("Yes" if cond else "No"), refs, (yes if cond else no), basis


def _ifaces(m: s.Model, pred: Callable[[s.Interface], bool]) -> list[str]:
    return [f"interface:{n}" for n, i in m.interfaces.items() if i.enabled and pred(i)]


def _parts(m: s.Model, pred: Callable[[s.Partition], bool]) -> list[str]:
    return [f"partition:{n}" for n, p in m.partitions.items() if pred(p)]


def _audit_parts(m: s.Model) -> set[str]:
    return {n for n, p in m.partitions.items() if p.service == "audit"}


def _audited(m: s.Model, partition: str) -> list[str]:
    audit = _audit_parts(m)
    return [f"channel:{c.name}" for c in m.channels if c.src == partition and c.dst in audit]


def d_handles_phi(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: "phi" in i.carries)
    return _yn(bool(refs), refs, "interfaces carrying PHI: " + ", ".join(refs), "no interface carries phi",
               "derived" if refs else "needs confirmation")


def d_transmits_phi(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: "phi" in i.carries and i.external)
    return _yn(bool(refs), refs, "sent over " + ", ".join(refs), "no external interface carries phi")


def d_transmits_phi_network(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: "phi" in i.carries and i.kind in s.NETWORK_KINDS)
    return _yn(bool(refs), refs, "network interfaces: " + ", ".join(refs), "no network interface carries phi")


def d_audit_log(m: s.Model) -> Derived:
    refs = _parts(m, lambda p: p.service == "audit")
    return _yn(bool(refs), refs, "Septum audit service (hash-chained, tamper-evident log)", "no audit service")


def d_audit_names_principal(m: s.Model) -> Derived:
    audit = _audit_parts(m)
    msgs = {c.message for c in m.channels if c.dst in audit}
    named = [x for x in msgs if x in m.messages and any(k in m.messages[x] for k in ("principal", "user", "actor"))]
    if named:
        return "Yes", [f"message:{x}" for x in named], "audit messages carry a principal field", "derived"
    return ("See note", [f"message:{x}" for x in sorted(msgs)],
            "audit messages have no principal/user field; confirm that the detail text names the principal",
            "needs confirmation")


def d_auth_audited(m: s.Model) -> Derived:
    auth = [n for n, p in m.partitions.items() if p.service == "auth"]
    refs = [r for a in auth for r in _audited(m, a)]
    return _yn(bool(auth) and bool(refs), refs, "the auth service sends its events to the audit service",
               "the auth service has no audit channel")


def d_all_partitions_audited(m: s.Model) -> Derived:
    audit = _audit_parts(m)
    missing = [n for n in m.partitions if n not in audit and not _audited(m, n)]
    refs = [r for n in m.partitions for r in _audited(m, n)]
    return _yn(bool(audit) and not missing, refs, "every partition has an audit channel",
               "partitions without an audit channel: " + ", ".join(missing))


def d_audit_timestamped(m: s.Model) -> Derived:
    audit = _audit_parts(m)
    msgs = sorted({c.message for c in m.channels if c.dst in audit})
    ok = bool(msgs) and all(x in m.messages and any(k.startswith("at") or "time" in k for k in m.messages[x])
                            for x in msgs)
    return _yn(ok, [f"message:{x}" for x in msgs], "audit messages carry a time field", "no time field found")


def d_authorisation(m: s.Model) -> Derived:
    auth = _parts(m, lambda p: p.service == "auth")
    return _yn(bool(auth), auth, "every action is authorised by the auth service against the model's roles",
               "no auth service partition")


def d_role_based(m: s.Model) -> Derived:
    refs = [f"role:{r}" for r in m.roles]
    return _yn(len(m.roles) > 1 and any(a.allowed for a in m.actions.values()), refs,
               f"{len(m.roles)} roles; each action lists the roles allowed to perform it", "no role-based actions")


def d_has_software(m: s.Model) -> Derived:
    refs = [f"partition:{p}" for p in m.components]
    return _yn(bool(m.components) or bool(m.partitions), refs, "software components are listed per partition",
               "no software components")


def d_updatable(m: s.Model) -> Derived:
    refs = _parts(m, lambda p: p.service == "update")
    return _yn(bool(refs), refs, "update service partition", "no update service: not updatable in the field")


def d_signed_updates(m: s.Model) -> Derived:
    refs = _parts(m, lambda p: p.service == "update" and "attesting" in p.mitigation)
    return _yn(bool(refs), refs, "the update service verifies signatures (attesting) before installing",
               "no attesting update service")


def d_break_glass(m: s.Model) -> Derived:
    refs = [f"action:{n}" for n, a in m.actions.items() if a.break_glass]
    return _yn(bool(refs), refs, "break-glass actions: " + ", ".join(refs), "no break-glass action")


def d_break_glass_audited(m: s.Model) -> Derived:
    acts = {n: a for n, a in m.actions.items() if a.break_glass}
    if not acts:
        return "N/A", [], "no break-glass action", "derived"
    refs = [r for a in acts.values() for r in _audited(m, a.handled_by)]
    ok = all(_audited(m, a.handled_by) for a in acts.values())
    return _yn(ok, refs, "each break-glass handler sends to the audit service (see also rule MED004)",
               "a break-glass handler has no audit channel")


def d_no_user_code(m: s.Model) -> Derived:
    refs = [f"partition:{n}" for n in m.partitions]
    return ("No", refs, "partitions run only their declared entry points; the runtime denies exec",
            "needs confirmation")


def d_allowlisted(m: s.Model) -> Derived:
    refs = [f"partition:{n}" for n in m.partitions]
    return ("Yes", refs, "only the partitions declared in the model are started; updates must be signed",
            "needs confirmation")


def d_node_auth(m: s.Model) -> Derived:
    net = [n for n, i in m.interfaces.items() if i.enabled and i.external and i.kind in s.NETWORK_KINDS]
    weak = [n for n in net if "mutual" not in (m.interfaces[n].authentication or "").lower()]
    if not net:
        return "N/A", [], "no network interface", "derived"
    return _yn(not weak, [f"interface:{n}" for n in net], "mutual TLS on every network interface",
               "without mutual authentication: " + ", ".join(weak))


def d_declared_ports(m: s.Model) -> Derived:
    net = [n for n, i in m.interfaces.items() if i.enabled and i.kind in s.NETWORK_KINDS]
    ports = ", ".join(f"{n}: {m.interfaces[n].protocol or '?'}/{m.interfaces[n].port or '?'}" for n in net)
    return ("Yes", [f"interface:{n}" for n in net], f"only declared ports are open ({ports}); other partitions "
            "have no network at all", "derived")


def d_has_connections(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.external and i.kind in s.INPUT_KINDS - {"keypad", "button"})
    return _yn(bool(refs), refs, ", ".join(refs), "no external data connection")


def d_wireless(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.kind in ("wireless", "bluetooth"))
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no enabled wireless interface in the model")


def d_bluetooth(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.kind == "bluetooth")
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no enabled Bluetooth interface in the model")


def d_usb(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.kind in ("usb", "storage"))
    return _yn(bool(refs), refs or ["interfaces"], ", ".join(refs), "no enabled USB or storage interface in the model")


def d_other_wired(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.kind in ("serial", "debug"))
    off = [f"interface:{n}" for n, i in m.interfaces.items() if i.kind in ("serial", "debug") and not i.enabled]
    return _yn(bool(refs), refs + off, ", ".join(refs),
               "none enabled" + (f"; disabled in this build: {', '.join(off)}" if off else ""))


def d_hospital_network(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: i.external and i.kind in s.NETWORK_KINDS)
    return _yn(bool(refs), refs, ", ".join(refs), "no network interface")


def d_tls(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: "tls" in (i.encryption or "").lower())
    versions = sorted({m.interfaces[r.split(":", 1)[1]].encryption or "" for r in refs})
    return _yn(bool(refs), refs, "TLS versions: " + ", ".join(versions), "no interface declares TLS")


def d_personal_login(m: s.Model) -> Derived:
    humans = [n for n, r in m.roles.items() if r.kind == "human"]
    anonymous = [n for n in humans if not m.roles[n].authenticates_with]
    refs = [f"role:{n}" for n in humans]
    if anonymous:
        return ("See note", refs, "roles without login: " + ", ".join(anonymous) + " (presence-only inputs)",
                "needs confirmation")
    return "Yes", refs, "every human role authenticates", "needs confirmation"


def d_support_known(m: s.Model) -> Derived:
    comps = [(p, c) for p, cs in m.components.items() for c in cs]
    unknown = sorted({c.name for _p, c in comps if c.support == "unknown"})
    refs = sorted({f"component:{p}/{c.name}" for p, c in comps})
    return _yn(bool(comps) and not unknown, refs, "every component states its support level",
               "support level unknown for: " + ", ".join(unknown) if unknown else "no components")


def d_sbom(m: s.Model) -> Derived:
    refs = [f"partition:{p}" for p in m.components]
    return _yn(bool(m.components), refs, "CycloneDX 1.6 JSON from `septum sbom`", "no components in the model")


def _all_components(m: s.Model, pred: Callable[[s.Component], bool], what: str) -> Derived:
    comps = [(p, c) for p, cs in m.components.items() for c in cs]
    bad = sorted({c.name for _p, c in comps if not pred(c)})
    refs = sorted({f"component:{p}/{c.name}" for p, c in comps})
    return _yn(bool(comps) and not bad, refs, f"every component has {what}",
               f"without {what}: " + ", ".join(bad) if bad else "no components")


def d_sbom_identifiers(m: s.Model) -> Derived:
    return _all_components(m, lambda c: bool(c.purl), "a purl")


def d_sbom_suppliers(m: s.Model) -> Derived:
    return _all_components(m, lambda c: bool(c.supplier), "a supplier")


def d_sbom_versions(m: s.Model) -> Derived:
    return _all_components(m, lambda c: bool(c.version), "a version")


def d_debug_disabled(m: s.Model) -> Derived:
    debug = [n for n, i in m.interfaces.items() if i.kind == "debug"]
    enabled = [n for n in debug if m.interfaces[n].enabled]
    return _yn(not enabled, [f"interface:{n}" for n in debug],
               "debug interfaces disabled: " + (", ".join(debug) or "none present"),
               "enabled debug interfaces: " + ", ".join(enabled))


def d_no_unauthorised_install(m: s.Model) -> Derived:
    ans, refs, note, basis = d_signed_updates(m)
    return ("No" if ans == "Yes" else "Yes"), refs, note, basis


def d_point_to_point(m: s.Model) -> Derived:
    net = _ifaces(m, lambda i: "phi" in i.carries and i.kind in s.NETWORK_KINDS)
    if not _ifaces(m, lambda i: "phi" in i.carries):
        return "N/A", [], "no interface carries phi", "derived"
    return ("No" if net else "Yes"), net, ("sent over a network: " + ", ".join(net)) if net else "", "derived"


def d_phi_encrypted(m: s.Model) -> Derived:
    phi = [n for n, i in m.interfaces.items() if i.enabled and i.external and "phi" in i.carries]
    if not phi:
        return "N/A", [], "no external interface carries phi", "derived"
    weak = [n for n in phi if (m.interfaces[n].encryption or "").lower() in WEAK]
    return _yn(not weak, [f"interface:{n}" for n in phi], "all encrypted: " + ", ".join(
        f"{n} ({m.interfaces[n].encryption})" for n in phi), "unencrypted or weak: " + ", ".join(weak))


def d_transit_integrity(m: s.Model) -> Derived:
    net = [n for n, i in m.interfaces.items() if i.enabled and i.external and i.kind in s.NETWORK_KINDS]
    if not net:
        return "N/A", [], "no network interface", "derived"
    weak = [n for n in net if (m.interfaces[n].encryption or "").lower() in WEAK]
    return _yn(not weak, [f"interface:{n}" for n in net], "authenticated encryption (TLS) on every network "
               "interface; channels inside the device are kernel-enforced", "unprotected: " + ", ".join(weak))


def d_remote_service(m: s.Model) -> Derived:
    refs = _ifaces(m, lambda i: (i.protocol or "").lower() in ("ssh", "telnet", "rdp", "vnc")
                   or (i.kind == "debug" and i.external))
    return _yn(bool(refs), refs, ", ".join(refs),
               "no remote-service protocol or enabled debug port in the model", "needs confirmation")


DERIVE: dict[str, Callable[[s.Model], Derived]] = {
    name[2:]: fn for name, fn in list(globals().items()) if name.startswith("d_") and callable(fn)
}


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
