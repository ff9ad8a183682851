"""Liveness probes: a partition checks, from inside, that the listeners of its network interfaces answer.

A heartbeat only proves that a partition's event loop turns; a listener whose accept loop died or whose
server thread is wedged goes on heartbeating, and nothing would restart it. So the model may declare, on a
network interface, how the owning partition probes it::

    interfaces:
      hospital_https: {kind: network, port: 8443, ...,
                       liveness: {probe: tls_connect, period_ms: 2000, timeout_ms: 1000, failures: 3}}

The runtime hands the owning partition its interfaces' probes in its config (``CONFIG_KEY``, with the port
of this run); the partition's code says where each listener is (``Liveness.watch``) and starts the probes.
A thread of the partition's own then connects to each listener every ``period_ms``:

- ``tcp_connect``: the TCP connection is established within ``timeout_ms`` (the kernel completes it into
  the listen backlog, so this only proves the socket is open and its backlog not full);
- ``tls_connect``: the listener also answers a TLS ClientHello within ``timeout_ms`` (its server loop is
  running); a connection the listener closes at once (it is at its connection limit) also proves that it
  answers and counts as alive. The probe offers no client certificate and checks none: it asks whether
  the listener answers, not who it is; a listener should not audit its own probes (``is_probe``).

After ``failures`` probes of one interface in a row failed, the partition ends with a Fatal reason that
names the interface, the probe and the last error (``Partition.fatal``): the supervisor reports the exit
in its event feed (so the audit log has it) and applies the partition's restart policy. An interface the
model declares a probe for but the code never registered is also fatal when the probes start, so a probe
cannot be declared and silently not run.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from septum.model.schema import NETWORK_KINDS, Model

CONFIG_KEY = "septum.liveness"
PROBES = ("tls_connect", "tcp_connect")
PROBE_MEMORY_S = 30.0  # a listener may ask about a probe connection this long after the probe closed it

Fatal = Callable[[str], None]
Report = Callable[[str, str, str], None]  # (event, severity, detail)


@dataclass(frozen=True)
class ProbeSpec:
    interface: str
    probe: str
    period_s: float
    timeout_s: float
    failures: int
    port: int | None = None  # the port this run uses for the interface (None: the model declares none)


def plan_config(model: Model, partition: str, ports: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The config entry that hands ``partition`` the probes of the network interfaces it owns."""
    part = model.partitions[partition]
    probes: dict[str, dict[str, Any]] = {}
    for iname in part.owns:
        iface = model.interfaces.get(iname)
        if iface is None or iface.liveness is None or not iface.enabled or iface.kind not in NETWORK_KINDS:
            continue
        lv = iface.liveness
        probes[iname] = {"probe": lv.probe, "period_ms": lv.period_ms, "timeout_ms": lv.timeout_ms,
                         "failures": lv.failures, "port": (ports or {}).get(iname, iface.port)}
    return {CONFIG_KEY: probes} if probes else {}


def specs_from_config(config: Mapping[str, Any]) -> dict[str, ProbeSpec]:
    """The probes in a partition's config (raises ValueError, with the reason, on a malformed entry)."""
    raw = config.get(CONFIG_KEY, {})
    if not isinstance(raw, Mapping):
        raise ValueError(f"{CONFIG_KEY}: expected a mapping of interface -> probe")
    out: dict[str, ProbeSpec] = {}
    for iname, entry in raw.items():
        try:
            probe, period, timeout, failures = (entry["probe"], entry["period_ms"], entry["timeout_ms"],
                                                entry["failures"])
            port = entry.get("port")
        except (KeyError, TypeError):
            raise ValueError(f"{CONFIG_KEY}.{iname}: needs probe, period_ms, timeout_ms and failures") from None
        ints = (period, timeout, failures)
        if probe not in PROBES or not all(isinstance(v, int) and v > 0 for v in ints) or not (
                port is None or isinstance(port, int)):
            raise ValueError(f"{CONFIG_KEY}.{iname}: malformed probe {dict(entry)!r}")
        out[str(iname)] = ProbeSpec(str(iname), probe, period / 1000, timeout / 1000, failures, port)
    return out


@dataclass
class _Target:
    spec: ProbeSpec
    host: str
    port: int
    due: float = 0.0
    failed: int = 0  # consecutive failures
    last_error: str = ""
    probes: int = 0


def probe_host(bind: str) -> str:
    """Where to connect to reach a listener bound to ``bind`` (a wildcard address is reached on loopback)."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)  # noqa: S104


class Liveness:
    """The probes of one partition, run by one thread of its own (see the module docstring).

    ``fatal(reason)`` must end the partition (``Partition.fatal``); ``report`` receives a bounded record
    per state change (the first answer of a run, the first failure, a recovery), never one per probe."""

    def __init__(self, specs: Mapping[str, ProbeSpec], fatal: Fatal, report: Report | None = None) -> None:
        self.specs = dict(specs)
        self._fatal = fatal
        self._report = report or (lambda event, severity, detail: None)
        self._targets: dict[str, _Target] = {}
        self._lock = threading.Lock()
        # local address of each recent probe connection -> until when a listener may still ask about it
        self._local: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE  # a liveness question, not an identity check

    @classmethod
    def from_config(cls, config: Mapping[str, Any], fatal: Fatal, report: Report | None = None) -> Liveness:
        return cls(specs_from_config(config), fatal, report)

    def watch(self, interface: str, host: str, port: int) -> bool:
        """Say where ``interface``'s listener is; False (nothing to do) when the model declares no probe."""
        spec = self.specs.get(interface)
        if spec is None:
            return False
        self._targets[interface] = _Target(spec, probe_host(host), port)
        return True

    def start(self) -> Liveness:
        missing = sorted(set(self.specs) - set(self._targets))
        if missing:
            self._fatal(f"liveness: the model declares a probe for {', '.join(missing)}, which this partition's "
                        "code never registered a listener for")
            return self
        if self._targets:
            now = time.monotonic()
            for t in self._targets.values():
                t.due = now + t.spec.period_s
            self._thread = threading.Thread(target=self._run, name="septum-liveness", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def is_probe(self, peer: tuple[str, int]) -> bool:
        """True if ``peer`` (a listener's view of the remote address) is one of our own probe connections.
        Registered before the probe sends anything, so a listener asking after the first byte is answered;
        each address answers True once, so a later connection that reuses the port is not taken for one."""
        with self._lock:
            return self._local.pop((peer[0], peer[1]), None) is not None

    def state(self) -> dict[str, dict[str, Any]]:
        return {n: {"probes": t.probes, "failed": t.failed, "last_error": t.last_error}
                for n, t in self._targets.items()}

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                target = min(self._targets.values(), key=lambda t: t.due)
                if target.due > now:
                    self._stop.wait(target.due - now)
                    continue
                target.due = max(target.due + target.spec.period_s, time.monotonic())
                self._check(target)
        except Exception as exc:  # the watchdog itself failing must not go unnoticed either
            self._fatal(f"liveness: the probe thread failed: {type(exc).__name__}: {exc}")

    def _check(self, t: _Target) -> None:
        error = self.probe_once(t.spec.probe, t.host, t.port, t.spec.timeout_s)
        t.probes += 1
        name = f"{t.spec.interface} ({t.spec.probe} {t.host}:{t.port})"
        if error is None:
            if t.probes == 1:  # once per run: the probe works from inside this sandbox
                self._report("liveness_ok", "notice", f"{name} answers its liveness probe")
            if t.failed:
                self._report("liveness_recovered", "notice", f"{name} answers again after {t.failed} failed probe(s)")
            t.failed, t.last_error = 0, ""
            return
        t.failed += 1
        t.last_error = error
        if t.failed == 1:
            self._report("liveness_failed", "warning", f"{name}: {error} (ending the partition after "
                         f"{t.spec.failures} in a row)")
        if t.failed >= t.spec.failures and not self._stop.is_set():
            self._stop.set()  # one verdict: ``fatal`` ends the partition (and, where it cannot, probing)
            self._fatal(f"liveness: {name} failed {t.failed} probe(s) in a row, last: {error}")

    def probe_once(self, probe: str, host: str, port: int, timeout_s: float) -> str | None:
        """None if the listener answered, else why not."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        deadline = time.monotonic() + timeout_s
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            err = sock.connect_ex((host, port))
            local = sock.getsockname()[:2]
            with self._lock:
                now = time.monotonic()
                for old in [a for a, until in self._local.items() if until < now]:
                    del self._local[old]
                self._local[local] = now + PROBE_MEMORY_S + timeout_s
            if err == errno.ECONNRESET:
                return None  # accepted and closed at once: the listener answers (it is at its limit)
            if err not in (0, errno.EINPROGRESS):
                return f"connect: {_errname(err)}"
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:  # wait for the connection to be established
                if err:
                    _, w, _ = select.select([], [sock], [], max(0.0, deadline - time.monotonic()))
                    if not w:
                        return f"no TCP connection within {timeout_s:g} s"
                    so = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if so == errno.ECONNRESET:
                        return None  # as above
                    if so:
                        return f"connect: {_errname(so)}"
            except OSError as exc:
                return f"connect: {exc}"
            if probe == "tcp_connect":
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return f"no TLS answer within {timeout_s:g} s"
            sock.settimeout(left)
            try:
                tls = self._tls.wrap_socket(sock, do_handshake_on_connect=False)
            except OSError as exc:
                return f"TLS: {exc}"
            try:
                tls.do_handshake()
            except TimeoutError:
                return f"no TLS answer within {timeout_s:g} s"
            except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
                return None  # closed at once: the listener answers (it is at its connection limit)
            except (ssl.SSLError, OSError) as exc:
                return f"TLS: {getattr(exc, 'reason', None) or exc}"
            finally:
                tls.close()
            return None
        finally:
            sock.close()


def _errname(err: int) -> str:
    return f"{errno.errorcode.get(err, err)} ({os.strerror(err)})"
