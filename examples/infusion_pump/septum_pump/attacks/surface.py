"""The device's attack surface: what listens, and what secrets are built in."""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path
from typing import Any

from ..rig import LIBRARY, MODEL, PUMP_DIR
from .base import Check, Scenario, ScenarioResult, event_is
from .device import AttackRig

LEGACY_PORTS = (21, 22, 23, 69, 80, 111, 161, 443, 445, 502, 1883, 2323, 3389, 4444, 5555, 5900, 8000, 8080,
                8888, 9999)
BANNER_PROBES = (b"", b"USER anonymous\r\n", b"GET / HTTP/1.0\r\n\r\n", b"help\r\n")
STATE_LISTEN = "0A"


def _listening_inodes(pid: int) -> dict[int, int]:
    """inode -> port of the TCP sockets in LISTEN state in the process's network namespace."""
    out: dict[int, int] = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == STATE_LISTEN:
                out[int(f[9])] = int(f[1].rsplit(":", 1)[1], 16)
    return out


def _socket_inodes(pid: int) -> set[int]:
    out: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            link = fd.readlink().as_posix()
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


TLS_ALERT, TLS_HANDSHAKE = 0x15, 0x16  # TLS record content types
PROTOCOL_VERSION = 70  # the alert a TLS 1.3-only server answers a TLS 1.2 ClientHello with
ALERTS = {40: "handshake_failure", 70: "protocol_version", 71: "insufficient_security", 80: "internal_error"}


def tls12_probe(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> tuple[str, str]:
    """Offer at most TLS 1.2 to ``host:port``; ("refused" | "accepted" | "dead" | "unclear", detail).

    "refused" only when the server itself refused the version: a protocol_version alert before any
    handshake message of its own. A server that answered with a ServerHello negotiated TLS 1.2 ("accepted"),
    even if the handshake then failed for another reason (say, no client certificate). A listener that is
    gone (connection refused) or closes before sending a byte is "dead", which a scan must treat as a
    failure, never as "TLS 1.3 only". The handshake runs over memory BIOs so the server's raw bytes are seen."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return "dead", f"no listener: {type(exc).__name__}: {exc}"[:120]
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    server = bytearray()
    end = ""
    with raw:
        while True:
            try:
                tls.do_handshake()
                return "accepted", f"handshake completed with {tls.version()}"
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                end = f"{exc.reason or exc}"
                break
            try:
                if outgoing.pending:
                    raw.sendall(outgoing.read())
                data = raw.recv(16384)
            except OSError as exc:
                end = type(exc).__name__
                break
            if not data:
                end = "closed"
                break
            server += data
            incoming.write(data)
    return _verdict(bytes(server), end)


def _verdict(data: bytes, end: str) -> tuple[str, str]:
    """Judge the server's records (content type, alert description) once the handshake ended with ``end``."""
    if not data:
        return "dead", f"{end} before any server byte"
    kinds: list[int] = []
    alert = -1
    i = 0
    while i + 5 <= len(data):
        kind, length = data[i], int.from_bytes(data[i + 3:i + 5], "big")
        kinds.append(kind)
        if kind == TLS_ALERT and alert < 0 and i + 7 <= len(data):
            alert = data[i + 6]
        i += 5 + length
    name = ALERTS.get(alert, f"#{alert}")
    if TLS_HANDSHAKE in kinds and (alert < 0 or kinds.index(TLS_HANDSHAKE) < kinds.index(TLS_ALERT)):
        return "accepted", f"the server negotiated TLS 1.2 (ServerHello), then: {end}"[:120]
    if alert == PROTOCOL_VERSION:
        return "refused", f"server alert {name}; {end}"[:120]
    if alert >= 0:
        return "unclear", f"server alert {name} (not a version refusal); {end}"[:120]
    return "dead", f"{len(data)} server bytes without a TLS record, then {end}"[:120]


def port_scan(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("port-scan", "port scan: only the declared TLS services answer")
    chk = Check(rig, res)
    declared = {rig.https_port, rig.mllp_port}
    for part, pid in sorted(rig.supervisor.partition_pids().items()):
        listening = _listening_inodes(pid)
        mine = {port for ino, port in listening.items() if ino in _socket_inodes(pid)}
        allowed = declared if part == "network" else set()
        chk.expect(f"{part}: TCP listeners {sorted(mine)}", mine <= allowed,
                   "only the model's hospital_https/hospital_mllp" if part == "network"
                   else "no network: own netns, socket() denied by seccomp", f"undeclared listeners {mine - allowed}")
    # connect-scan the loopback for legacy services, and keep only those a device process owns
    dev_inodes = {ino for pid in rig.supervisor.partition_pids().values() for ino in _socket_inodes(pid)}
    net_pid = rig.supervisor.partition_pids()["network"]
    owned = {port for ino, port in _listening_inodes(net_pid).items() if ino in dev_inodes}
    for port in LEGACY_PORTS:
        with socket.socket() as s:
            s.settimeout(1.0)
            open_ = s.connect_ex(("127.0.0.1", port)) == 0
        chk.expect(f"connect 127.0.0.1:{port} (telnet/FTP/SSH/HTTP/debug)", not (open_ and port in owned),
                   "no such service on the device", "a device process answers")
    for port in sorted(declared):
        for probe in BANNER_PROBES:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5.0)
            except OSError as exc:  # a declared service that does not answer is a failure, never a pass
                chk.got_through(f"probe :{port} with {probe[:12]!r}", f"the declared listener is dead: {exc}")
                continue
            with conn as s:
                if probe:
                    s.sendall(probe)
                try:
                    s.shutdown(socket.SHUT_WR)
                    data = s.recv(256)
                except OSError:
                    data = b""
            plain = bool(re.match(rb"(HTTP/|220|SSH-|login:|\x0b|[ -~]{4})", data))
            chk.expect(f"probe :{port} with {probe[:12]!r} for a banner / clear-text answer", not plain,
                       "TLS only: a clear-text client gets no banner and no answer", f"answered {data[:40]!r}")
        verdict, detail = tls12_probe(port)
        chk.expect(f"TLS 1.2 downgrade to :{port}", verdict == "refused", f"TLS 1.3 only: the server refused "
                   f"the TLS 1.2 handshake ({detail})", f"{verdict}: {detail}")
    chk.expect("debug console (service_port UART)", not rig.supervisor.model.interfaces["service_port"].enabled,
               "model: service_port enabled: false (production profile); no partition owns it", "enabled")
    return chk.finish(event_is("tls_refused", partition="network"), names=("tls_refused for the probes",))


SECRET_PATTERNS = [
    ("private key", re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("password assignment",
     re.compile(rb"(?i)\b(?:password|passwd|pwd|secret|token|api_?key)\s*[:=]\s*['\"][^'\"\s]{4,}")),
    ("PIN literal", re.compile(rb"(?i)\bpin\s*[:=]\s*['\"]?\d{4,12}\b")),
    ("default credential", re.compile(rb"(?i)\b(?:admin:admin|root:root|default_pin|default_password)\b")),
    ("AWS-style key", re.compile(rb"AKIA[0-9A-Z]{16}")),
]
SKIP_DIRS = {"__pycache__", "attacks"}  # the attack suite's own patterns are not device files
# factory defaults seen in the field (two: each costs auth one argon2id verification)
DEFAULT_LOGINS = (("admin", "0000"), ("service", "1234"))
KEY_FILES = {"server.key", "audit.key"}  # per-device key material, generated at provisioning


def _scan(root: Path) -> list[tuple[Path, str]]:
    hits: list[tuple[Path, str]] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or SKIP_DIRS & set(path.parts):
            continue
        data = path.read_bytes()[:2_000_000]
        for label, rx in SECRET_PATTERNS:
            if rx.search(data):
                hits.append((path, label))
    return hits


def credentials(rig: AttackRig) -> ScenarioResult:
    res = ScenarioResult("credential-search", "search of the built device for hard-coded credentials")
    chk = Check(rig, res)
    # the model and library wherever the package has them (a checkout's files, or an installed pump's package
    # data); the seL4 sources exist in a checkout only (a wheel does not carry them)
    sel4 = PUMP_DIR / "sel4"
    roots = [MODEL, LIBRARY, PUMP_DIR / "septum_pump", *([sel4] if sel4.is_dir() else [])]
    for root in roots:
        hits = _scan(root) if root.is_dir() else [(root, lbl) for lbl, rx in SECRET_PATTERNS
                                                  if rx.search(root.read_bytes())]
        shown = root.relative_to(PUMP_DIR.parent.parent) if root.is_relative_to(PUMP_DIR.parent.parent) else root
        chk.expect(f"search {shown} for keys/passwords/PINs/tokens", not hits,
                   "nothing built in: every secret is generated per device at provisioning",
                   ", ".join(f"{p.name}: {lbl}" for p, lbl in hits[:5]))
    # the provisioned state: secrets may exist only as per-device hashes or generated keys, and each PIN
    # given out at provisioning appears nowhere in clear
    sup = rig.supervisor
    state = Path(sup.state_dir)
    pins = [p.encode() for p in rig.pins.values()]
    for path in sorted(state.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        leaked = [p for p in pins if p in data]
        if leaked and path.name != "events.jsonl":
            chk.got_through(f"provisioned file {path.relative_to(state)}", "holds a PIN in clear")
    cred = sup.data_dir("auth") / "credentials.json"
    text = cred.read_text() if cred.exists() else ""
    chk.expect("credential store holds only argon2id hashes", "$argon2id$" in text and not any(
               p.decode() in text for p in pins), "argon2id PHC strings with per-device salts", "not hashed")
    keys = [p for p in state.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()[:200]]
    bad = [p for p in keys if p.name not in KEY_FILES and not p.name.endswith(".key")]
    chk.expect(f"private keys in the state dir: {sorted({p.name for p in keys})}", not bad,
               "only the per-device keys generated at provisioning (TLS server key, audit key)",
               f"unexpected key files {bad}")
    log = (state / "logs")
    leaked_logs = [p.name for p in log.rglob("*") if p.is_file() and any(x in p.read_bytes() for x in pins)]
    chk.expect("partition logs free of PINs", not leaked_logs, "PINs never logged", f"{leaked_logs}")
    # what an attacker does with a credential search's result: try the default credentials at the keypad
    # (users the device does not have, so no real user is locked out for the scenarios after this one)
    for user, pin in DEFAULT_LOGINS:
        ok, why = rig._act("login", [("user", user), ("pin", pin), ("login", "")], timeout=15.0)
        refused = not ok and "no outcome" not in why  # auth's answer, not silence
        chk.expect(f"log in as {user} with the default PIN {pin}", refused, f"auth: {why}"[:80],
                   "logged in with a default credential" if ok else f"no answer from auth ({why})")
    first = DEFAULT_LOGINS[0][0]
    # auth's records come over its audit channel: who it was is in the record's text, not a field of its own
    named = re.compile(rf"\b{first}\b")

    def failed_default(r: dict[str, Any]) -> bool:
        text = f"{r.get('message', '')} {r.get('detail', '')}"
        return event_is("auth.login-failed", partition="auth")(r) and (
            r.get("principal") == first or bool(named.search(text)))

    return chk.finish(failed_default,
                      names=("auth.login-failed for the default credential",))


SCENARIOS = [
    Scenario("port-scan", "port scan of the network partition",
             "list every partition's TCP listeners; connect-scan legacy ports (telnet, FTP, SSH, HTTP, debug); "
             "banner-grab and clear-text-probe the open ports; TLS 1.2 downgrade",
             "the model declares two TLS services; other partitions have no network", port_scan),
    Scenario("credential-search", "search of the built device for hard-coded credentials",
             "private keys, password/token assignments, PIN literals, default credentials in the model, code, "
             "generated seL4 files, the provisioned state and the logs; then default logins at the keypad",
             "per-device provisioning: generated PINs stored as argon2id hashes, generated keys; no default "
             "users (auth.login-failed)", credentials),
]
