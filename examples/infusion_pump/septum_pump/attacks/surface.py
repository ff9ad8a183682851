"""The device's attack surface: what listens, and what secrets are built in."""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path

from ..rig import PUMP_DIR
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
            with socket.create_connection(("127.0.0.1", port), timeout=5.0) as s:
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
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5.0) as raw, ctx.wrap_socket(raw) as s:
                s.recv(1)
            chk.got_through(f"TLS 1.2 to :{port}", "handshake succeeded")
        except (ssl.SSLError, OSError) as exc:
            chk.stopped(f"TLS 1.2 downgrade to :{port}", f"TLS 1.3 only ({type(exc).__name__})")
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
    roots = [PUMP_DIR / "model.yaml", PUMP_DIR / "drug_library.yaml", PUMP_DIR / "septum_pump", PUMP_DIR / "sel4"]
    for root in roots:
        hits = _scan(root) if root.is_dir() else [(root, lbl) for lbl, rx in SECRET_PATTERNS
                                                  if rx.search(root.read_bytes())]
        chk.expect(f"search {root.relative_to(PUMP_DIR.parent.parent)} for keys/passwords/PINs/tokens", not hits,
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
    return chk.finish(event_is("audit.log-created"), from_seq=0,
                      names=("the audit log's creation record naming its per-device key",))


SCENARIOS = [
    Scenario("port-scan", "port scan of the network partition",
             "list every partition's TCP listeners; connect-scan legacy ports (telnet, FTP, SSH, HTTP, debug); "
             "banner-grab and clear-text-probe the open ports; TLS 1.2 downgrade",
             "the model declares two TLS services; other partitions have no network", port_scan),
    Scenario("credential-search", "search of the built device for hard-coded credentials",
             "private keys, password/token assignments, PIN literals, default credentials in the model, code, "
             "generated seL4 files, the provisioned state and the logs",
             "per-device provisioning: generated PINs stored as argon2id hashes, generated keys", credentials),
]
