"""TLS listeners for the hospital link (HTTPS for FHIR, MLLP for HL7 v2) on one event loop.

A connection is served only after a TLS 1.3 handshake in which the client proved a certificate from the
hospital CA; a refused handshake (no certificate, an untrusted one, not TLS at all) is audited with the
peer address and the TLS reason and the connection is closed.

Nothing a client does can wedge the listeners (issue 12: 80 sockets that sent 3 bytes each used to take
every thread, and the accept thread died):

- one thread runs every socket, non-blocking (``selectors`` + ``ssl`` without blocking handshakes); a
  socket that sends nothing costs a file descriptor and a few hundred bytes, never a thread;
- the work that may wait (an order waiting for auth's answer) runs on a small pool of worker threads,
  started once; only a complete request reaches it, so idle or slow sockets cannot occupy a worker;
- per listener at most ``max_pending`` connections may be in their TLS handshake and ``max_sessions``
  authenticated ones open, both bounded by the partition's file-descriptor limit; a connection over the
  limit is closed at once (RST) and counted;
- every connection has a deadline for what it is waiting for: the TLS handshake, the request headers,
  the body (or an MLLP frame), the next request (idle keep-alive) and a reply the client does not read;
- audit records of refusals and timeouts are bounded: per kind, the first of each second in full and the
  rest counted into one summary record per second (``Tally``);
- the loop cannot die silently: an exception in it calls ``fatal`` with the reason, which in the partition
  ends the process so the supervisor applies the restart policy. An exception while answering one
  request (a parser bug a hostile client found) fails only that request: a 500 / AR, the connection
  closed, a ``request_failed`` alert; it cannot be used to restart the partition at will.
"""

from __future__ import annotations

import collections
import errno
import os
import queue
import resource
import selectors
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from cryptography import x509

from septum.errors import InvariantBroken

from . import answers, httpio
from .intake import Audit, OrderDesk, Peer
from .mllp import FrameReader, MllpError, frame
from .tls import peer_identity
from .update_desk import UPDATE_PATH, UpdateDesk

RECV_SIZE = 65536
READ_BUDGET = 4 * RECV_SIZE  # bytes read from one connection per loop turn: a fast client cannot starve others
ACCEPT_BUDGET = 64  # connections accepted per listener per loop turn
TICK_S = 0.1  # deadlines are looked at at least this often
FD_RESERVE = 12  # descriptors kept free for the event sender, the buffer files, probes and one accept over the limit
PAUSE_S = 0.1  # a listener whose accept failed for want of descriptors is not polled for this long

Fatal = Callable[[str], None]


@dataclass(frozen=True)
class Limits:
    handshake_timeout_s: float = 5.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0  # also: an MLLP frame, from its start byte to its end
    idle_timeout_s: float = 30.0  # keep-alive: from one answer to the first byte of the next request
    write_timeout_s: float = 10.0  # a reply the client does not read
    max_pending: int = 16  # per listener: connections still in their TLS handshake
    max_sessions: int = 8  # per listener: authenticated connections
    workers: int = 4

    @classmethod
    def from_settings(cls, s: dict[str, Any]) -> Limits:
        """The limits, with any of them overridden by the link's settings (model config / hospital.json)."""
        out = cls()
        for name in cls.__dataclass_fields__:
            if name in s:
                value = s[name]
                kind = int if name in ("max_pending", "max_sessions", "workers") else float
                if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                    raise ValueError(f"setting {name}: must be a positive number, not {value!r}")
                out = replace(out, **{name: kind(value)})
        return out

    def fitted(self, listeners: int, fds_free: int) -> Limits:
        """These limits, lowered so that every listener's connections fit in ``fds_free`` descriptors."""
        per = fds_free // max(1, listeners)
        want = self.max_pending + self.max_sessions
        if per >= want:
            return self
        if per < 2:
            raise ValueError(f"only {fds_free} file descriptors free for {listeners} listener(s): raise the "
                             "partition's resources.max_open_files")
        sessions = max(1, min(self.max_sessions, per // 3))
        return replace(self, max_pending=per - sessions, max_sessions=sessions)


def fds_free(reserve: int = FD_RESERVE) -> int:
    """Descriptors this process may still open under RLIMIT_NOFILE, less ``reserve``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        used = 64  # cannot count: assume a busy process
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(0, soft - used - reserve)


class Tally:
    """Audits the first occurrence of an event in each second in full and counts the rest into one summary
    record per second: a flood costs at most two records per second per kind, and every one is counted.

    ``key`` (e.g. the TLS reason) gives different causes their own window, so a flood of one kind of
    refusal cannot hide the first of another; at most ``MAX_KEYS`` keys, beyond which all share one."""

    MAX_KEYS = 16

    def __init__(self, audit: Audit, event: str, severity: str, what: str) -> None:
        self.audit, self.event, self.severity, self.what = audit, event, severity, what
        self.total = 0
        self._window: dict[str, float] = {}
        self._counted: dict[str, int] = {}

    def __call__(self, detail: str, now: float, key: str = "") -> None:
        self.total += 1
        if key not in self._window and len(self._window) >= self.MAX_KEYS:
            key = "*"
        if now - self._window.get(key, -1.0) >= 1.0:
            self._flush(key)
            self._window[key] = now
            self.audit(self.event, self.severity, detail)
        else:
            self._counted[key] = self._counted.get(key, 0) + 1

    def flush(self, now: float | None = None) -> None:
        for key in list(self._counted):
            self._flush(key)
        if now is not None:  # forget quiet keys, so new causes get their own window again
            for key in [k for k, t in self._window.items() if now - t > 60.0]:
                del self._window[key]

    def _flush(self, key: str) -> None:
        n = self._counted.pop(key, 0)
        if n:
            why = f" ({key})" if key else ""
            self.audit(self.event, self.severity, f"{n} more {self.what}{why} in the last second (summarised)")


# ------------------------------------------------------------------------------------------ sessions
Step = tuple[str, Any]  # ("send", bytes) | ("job", () -> (bytes, close)) | ("close", None)


class Session(Protocol):
    """What an authenticated connection speaks; fed bytes by the loop, it answers with steps."""

    @property
    def phase(self) -> str: ...  # idle | head | body

    def feed(self, data: bytes) -> list[Step]: ...

    def eof(self) -> list[Step]: ...

    def timed_out(self, phase: str) -> list[Step]: ...

    def failed(self) -> list[Step]: ...  # answering a request raised: what the client is told


SessionFactory = Callable[[Peer], Session]


class HttpSession:
    def __init__(self, peer: Peer, desk: OrderDesk, audit: Audit, updates: UpdateDesk | None = None) -> None:
        self.peer, self.desk, self.audit = peer, desk, audit
        self.updates = updates  # POST /septum/update: chunks from the update server (update_desk.py)
        self.parser = httpio.RequestParser(answers.fhir_orders.MAX_BODY)

    @property
    def phase(self) -> str:
        return self.parser.phase

    def _refuse(self, exc: httpio.HttpError) -> list[Step]:
        self.audit("http_rejected", "warning", f"{self.peer.identity!r} from {self.peer.address}: "
                   f"{exc.status} {exc.reason}")
        return [("send", answers.answer_http_error(exc)), ("close", None)]

    def feed(self, data: bytes) -> list[Step]:
        steps: list[Step] = []
        for item in self.parser.feed(data):
            if isinstance(item, httpio.HttpError):
                return steps + self._refuse(item)
            if self.updates is not None and item.path.split("?", 1)[0] == UPDATE_PATH:
                steps.append(("job", lambda req=item, up=self.updates: (up.answer(req, self.peer),
                                                                       not req.keep_alive)))
            else:
                steps.append(("job", lambda req=item: (answers.answer_fhir(req, self.peer, self.desk)[0],
                                                       not req.keep_alive)))
            if not item.keep_alive:
                break
        return steps

    def eof(self) -> list[Step]:
        exc = self.parser.eof()
        return self._refuse(exc) if exc is not None else [("close", None)]

    def timed_out(self, phase: str) -> list[Step]:
        what = "request headers" if phase == "head" else "request body"
        return self._refuse(httpio.HttpError(408, f"{what} not complete in time"))

    def failed(self) -> list[Step]:
        return [("send", answers.answer_http_error(httpio.HttpError(500, "the pump could not answer this request"))),
                ("close", None)]


class MllpSession:
    def __init__(self, peer: Peer, desk: OrderDesk, audit: Audit) -> None:
        self.peer, self.desk, self.audit = peer, desk, audit
        self.reader = FrameReader()

    @property
    def phase(self) -> str:
        return "body" if self.reader.pending() else "idle"

    def feed(self, data: bytes) -> list[Step]:
        steps: list[Step] = []
        for item in self.reader.feed(data):
            if isinstance(item, MllpError):
                self.audit("mllp_rejected", "warning", f"{self.peer.identity!r} from {self.peer.address}: {item}")
                steps.append(("send", frame(answers.answer_framing_error(str(item)))))
            else:
                # MSH-15/16 may ask for two answers (accept and application) or none: each framed alone
                steps.append(("job", lambda payload=item: (b"".join(frame(m) for m in answers.answer_hl7_all(
                    payload, self.peer, self.desk)[0]), False)))
        return steps

    def eof(self) -> list[Step]:
        if self.reader.pending():
            self.audit("mllp_rejected", "warning", f"{self.peer.identity!r}: connection closed inside an MLLP "
                       f"frame ({self.reader.pending()} bytes, no 0x1C 0x0D end)")
        return [("close", None)]

    def failed(self) -> list[Step]:
        return [("send", frame(answers.answer_framing_error("the pump could not answer this message"))),
                ("close", None)]

    def timed_out(self, phase: str) -> list[Step]:
        self.audit("mllp_rejected", "warning", f"{self.peer.identity!r} from {self.peer.address}: MLLP frame "
                   f"not complete in time ({self.reader.pending()} bytes)")
        return [("close", None)]


def https_sessions(desk: OrderDesk, audit: Audit, updates: UpdateDesk | None = None) -> SessionFactory:
    return lambda peer: HttpSession(peer, desk, audit, updates)


def mllp_sessions(desk: OrderDesk, audit: Audit) -> SessionFactory:
    return lambda peer: MllpSession(peer, desk, audit)


# ------------------------------------------------------------------------------------------ the loop
class Listener:
    def __init__(self, name: str, bind: str, port: int, ctx: ssl.SSLContext, sessions: SessionFactory) -> None:
        self.name, self.bind, self.ctx, self.sessions = name, bind, ctx, sessions
        self.sock = socket.create_server((bind, port), backlog=128)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.pending = 0  # connections in their TLS handshake
        self.open = 0  # authenticated connections
        self.accepted = 0  # every connection accepted, including those then refused over the limit
        self.refused = 0  # closed at once: over the limit
        self.paused_until = 0.0


@dataclass(eq=False)
class _Conn:
    listener: Listener
    sock: ssl.SSLSocket
    fd: int
    where: str
    addr: tuple[str, int]
    deadline: float
    state: str = "handshake"  # handshake | open | closed
    session: Session | None = None
    peer: Peer | None = None
    phase: str = "idle"
    phase_since: float = 0.0
    steps: collections.deque[Step] | None = None
    busy: bool = False  # a job of this connection is with a worker
    out: bytearray | None = None
    write_since: float = 0.0
    close_after_write: bool = False
    eof: bool = False
    mask: int = 0


class Server:
    """The event loop of the hospital link's listeners (see the module docstring)."""

    def __init__(self, audit: Audit, *, limits: Limits | None = None, fatal: Fatal | None = None,
                 is_probe: Callable[[tuple[str, int]], bool] | None = None) -> None:
        self.audit = audit
        self.limits = limits or Limits()
        self._fatal = fatal or self._default_fatal
        self.is_probe = is_probe or (lambda addr: False)
        self.listeners: list[Listener] = []
        self.failed = ""  # the reason the loop ended, if it failed
        self._sel: selectors.BaseSelector | None = None
        self._conns: dict[int, _Conn] = {}
        self._again: set[_Conn] = set()  # connections with bytes already decrypted or a read budget used up
        self._jobs: queue.SimpleQueue[tuple[_Conn, Callable[[], tuple[bytes, bool]]] | None] = queue.SimpleQueue()
        self._done: collections.deque[tuple[_Conn, tuple[bytes, bool] | BaseException]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._closed = False
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self.refused = Tally(audit, "connection_refused", "warning", "connection(s) refused over the limit")
        self.timeouts = Tally(audit, "connection_timeout", "warning", "connection(s) closed at their deadline")
        self.tls_refused = Tally(audit, "tls_refused", "warning", "TLS handshake(s) refused")
        self.request_failed = Tally(audit, "request_failed", "alert", "request(s) whose answer failed")
        self.fd_exhausted = Tally(audit, "connection_refused", "alert", "accept(s) failed for want of descriptors")

    def listen(self, name: str, bind: str, port: int, ctx: ssl.SSLContext, sessions: SessionFactory) -> Listener:
        lst = Listener(name, bind, port, ctx, sessions)
        self.listeners.append(lst)
        return lst

    def start(self) -> Server:
        self.limits = self.limits.fitted(len(self.listeners), fds_free())
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        for lst in self.listeners:
            self._sel.register(lst.sock, selectors.EVENT_READ, lst)
        # threads are made now, once: a flood later cannot run the partition out of them
        for i in range(self.limits.workers):
            t = threading.Thread(target=self._work, name=f"hospital-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        self._thread = threading.Thread(target=self._run, name="hospital-listeners", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        for _ in self._workers:
            self._jobs.put(None)
        for lst in self.listeners:
            lst.sock.close()
        for conn in list(self._conns.values()):
            conn.sock.close()
        self._conns.clear()
        self._wake_r.close()
        self._wake_w.close()
        if self._sel is not None:
            self._sel.close()

    def stats(self) -> dict[str, Any]:
        return {"limits": self.limits.__dict__, "refused": self.refused.total, "timeouts": self.timeouts.total,
                **{lst.name: {"accepted": lst.accepted, "pending": lst.pending, "open": lst.open,
                              "refused": lst.refused}
                   for lst in self.listeners}}

    def _default_fatal(self, reason: str) -> None:  # outside a partition (tests, tools): say it, stop serving
        sys.stderr.write(f"hospital link: {reason}\n")
        self._closed = True

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"w")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or the server is closed

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # any failure of the loop must end the partition
            if self._closed:
                return  # closing the server under the loop's feet is not a failure
            self.failed = f"the hospital link's listener loop failed: {type(exc).__name__}: {exc}"
            self.audit("listener_failed", "alert", self.failed[:900])
            sys.stderr.write(traceback.format_exc(limit=8))
            self._fatal(self.failed)

    def _loop(self) -> None:
        sel = self._sel
        if sel is None:
            raise InvariantBroken("internal invariant broken: sel is not None")
        next_flush = time.monotonic() + 1.0
        while not self._closed:
            timeout = 0.0 if self._again else TICK_S
            for key, mask in sel.select(timeout):
                data = key.data
                if data is None:
                    self._drain_wake()
                elif isinstance(data, Listener):
                    self._accept(data)
                else:
                    self._service(data, mask)
            if self._closed:
                return
            self._finish_jobs()
            for conn in list(self._again):
                self._again.discard(conn)
                if conn.state == "open":
                    self._advance(conn)
            now = time.monotonic()
            self._sweep(now)
            if now >= next_flush:
                next_flush = now + 1.0
                for tally in (self.refused, self.timeouts, self.tls_refused, self.fd_exhausted, self.request_failed):
                    tally.flush(now)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    # ------------------------------------------------------------------ accepting
    def _accept(self, lst: Listener) -> None:
        lim = self.limits
        for _ in range(ACCEPT_BUDGET):
            try:
                raw, addr = lst.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # the connection stays in the backlog; stop polling the listener for a moment rather
                    # than spin on it (the limits are meant to keep this from happening at all)
                    self.fd_exhausted(f"{lst.name}: accept failed: {exc.strerror}", time.monotonic())
                    lst.paused_until = time.monotonic() + PAUSE_S
                    if self._sel is None:
                        raise InvariantBroken("internal invariant broken: self._sel is not None") from None
                    self._sel.unregister(lst.sock)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # that connection is gone already
                raise
            where = f"{addr[0]}:{addr[1]}"
            now = time.monotonic()
            lst.accepted += 1
            if lst.pending >= lim.max_pending:
                lst.refused += 1
                _reset(raw)
                self.refused(f"{lst.name}: {where} refused: {lim.max_pending} connections already in their "
                             "TLS handshake", now)
                continue
            try:
                raw.setblocking(False)
                tls = lst.ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            except (ssl.SSLError, OSError) as exc:
                raw.close()
                self.tls_refused(f"{lst.name}: TLS with {where} could not start: {exc}", now)
                continue
            conn = _Conn(lst, tls, tls.fileno(), where, (addr[0], addr[1]), now + lim.handshake_timeout_s)
            lst.pending += 1
            self._conns[conn.fd] = conn
            self._interest(conn, selectors.EVENT_READ)

    def _interest(self, conn: _Conn, mask: int) -> None:
        if self._sel is None:
            raise InvariantBroken("internal invariant broken: self._sel is not None")
        if mask == conn.mask:
            return
        if conn.mask == 0:
            self._sel.register(conn.sock, mask, conn)
        elif mask == 0:
            self._sel.unregister(conn.sock)
        else:
            self._sel.modify(conn.sock, mask, conn)
        conn.mask = mask

    # ------------------------------------------------------------------ per connection
    def _service(self, conn: _Conn, mask: int) -> None:
        if conn.state == "handshake":
            self._handshake(conn)
        elif conn.state == "open":
            if mask & selectors.EVENT_WRITE:
                self._write(conn)
            if conn.state == "open":
                self._advance(conn)

    def _handshake(self, conn: _Conn) -> None:
        lst = conn.listener
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._interest(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._interest(conn, selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as exc:
            if not self.is_probe(conn.addr):  # the partition's own liveness probe offers no certificate
                reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
                self.tls_refused(f"{lst.name}: TLS handshake with {conn.where} refused: {reason}", time.monotonic(),
                                 key=f"{lst.name} {str(reason)[:48]}")
            self._close(conn)
            return
        lst.pending -= 1
        conn.state = "open"
        der = conn.sock.getpeercert(binary_form=True)
        if not der:  # cannot happen with CERT_REQUIRED; refuse rather than assume
            self.tls_refused(f"{lst.name}: {conn.where} presented no certificate", time.monotonic())
            self._close(conn)
            return
        if lst.open >= self.limits.max_sessions:
            self.refused(f"{lst.name}: {conn.where} refused after its handshake: {self.limits.max_sessions} "
                         "hospital sessions already open", time.monotonic())
            self._close(conn)
            return
        lst.open += 1
        conn.peer = Peer(peer_identity(x509.load_der_x509_certificate(der)), der, conn.where)
        conn.session = lst.sessions(conn.peer)
        conn.steps = collections.deque()
        conn.phase, conn.phase_since = "idle", time.monotonic()
        self.audit("hospital_connected", "info", f"{lst.name}: {conn.peer.identity!r} from {conn.where}")
        self._advance(conn)

    def _advance(self, conn: _Conn) -> None:
        """Run the connection's queued steps; read more only when they are all done (backpressure)."""
        if conn.steps is None or conn.session is None:
            raise InvariantBroken("internal invariant broken: a connection without steps or session")
        while conn.state == "open" and not conn.busy and not conn.out:
            if conn.steps:
                kind, arg = conn.steps.popleft()
                if kind == "send":
                    self._queue_out(conn, arg)
                elif kind == "job":
                    conn.busy = True
                    self._jobs.put((conn, arg))
                else:
                    self._close(conn)
                continue
            if conn.eof or conn.close_after_write:
                self._close(conn)
                return
            if not self._read(conn):
                break
        self._update_interest(conn)

    def _read(self, conn: _Conn) -> bool:
        """Read what is there; True if steps were produced (or the peer closed)."""
        if conn.steps is None or conn.session is None:
            raise InvariantBroken("internal invariant broken: a connection without steps or session")
        got = 0
        while got < READ_BUDGET:
            try:
                data = conn.sock.recv(RECV_SIZE)
            except (ssl.SSLWantReadError, BlockingIOError):
                return False
            except ssl.SSLWantWriteError:
                return False
            except (ssl.SSLError, OSError) as exc:
                self.audit("connection_lost", "notice", f"{conn.listener.name}: {conn.peer.identity!r} from "  # type: ignore[union-attr]
                           f"{conn.where}: {exc}")
                self._close(conn)
                return False
            if not data:
                conn.eof = True
                conn.steps.extend(conn.session.eof())
                return True
            got += len(data)
            steps = conn.session.feed(data)
            self._note_phase(conn)
            if steps:
                conn.steps.extend(steps)
                if conn.sock.pending():
                    self._again.add(conn)
                return True
        self._again.add(conn)  # more may be there: next turn, after the others
        return False

    def _note_phase(self, conn: _Conn) -> None:
        if conn.session is None:
            raise InvariantBroken("internal invariant broken: conn.session is not None")
        phase = conn.session.phase
        if phase != conn.phase:
            conn.phase, conn.phase_since = phase, time.monotonic()

    def _queue_out(self, conn: _Conn, data: bytes) -> None:
        conn.out = bytearray(data)
        conn.write_since = time.monotonic()
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        while conn.out:
            try:
                n = conn.sock.send(conn.out)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            except (ssl.SSLError, OSError):
                self._close(conn)
                return
            del conn.out[:n]
        if conn.state == "open":
            conn.phase, conn.phase_since = conn.session.phase if conn.session else "idle", time.monotonic()

    def _update_interest(self, conn: _Conn) -> None:
        if conn.state != "open":
            return
        if conn.out:
            self._interest(conn, selectors.EVENT_WRITE)
        elif conn.busy or conn.steps:
            self._interest(conn, 0)  # not reading while an answer is being made
        else:
            self._interest(conn, selectors.EVENT_READ)

    def _close(self, conn: _Conn, *, reset: bool = False) -> None:
        if conn.state == "closed":
            return
        lst = conn.listener
        if conn.state == "handshake":
            lst.pending -= 1
        elif conn.peer is not None:
            lst.open -= 1
        conn.state = "closed"
        self._interest(conn, 0)
        self._conns.pop(conn.fd, None)
        self._again.discard(conn)
        if reset:
            _reset(conn.sock)
        else:
            conn.sock.close()

    # ------------------------------------------------------------------ deadlines
    def _deadline(self, conn: _Conn) -> tuple[float, str] | None:
        lim = self.limits
        if conn.state == "handshake":
            return conn.deadline, "TLS handshake"
        if conn.out:
            return conn.write_since + lim.write_timeout_s, "reading its answer"
        if conn.busy or conn.steps:
            return None  # the worker's wait is bounded by the order desk
        if conn.phase == "head":
            return conn.phase_since + lim.header_timeout_s, "request headers"
        if conn.phase == "body":
            return conn.phase_since + lim.body_timeout_s, "request body or MLLP frame"
        return conn.phase_since + lim.idle_timeout_s, "idle"

    def _sweep(self, now: float) -> None:
        for lst in self.listeners:
            if lst.paused_until and lst.paused_until <= now:
                lst.paused_until = 0.0
                if self._sel is None:
                    raise InvariantBroken("internal invariant broken: self._sel is not None")
                self._sel.register(lst.sock, selectors.EVENT_READ, lst)
        for conn in list(self._conns.values()):
            due = self._deadline(conn)
            if due is None or due[0] > now:
                continue
            what = due[1]
            name = conn.listener.name
            if what == "idle":
                self.audit("connection_closed", "info", f"{name}: {conn.where} idle for "
                           f"{self.limits.idle_timeout_s:g} s")
                self._close(conn)
            elif what == "TLS handshake":
                self.timeouts(f"{name}: {conn.where}: TLS handshake not complete within "
                              f"{self.limits.handshake_timeout_s:g} s", now)
                self._close(conn, reset=True)
            elif conn.out:
                self.timeouts(f"{name}: {conn.where}: answer not read within {self.limits.write_timeout_s:g} s", now)
                self._close(conn)
            else:
                if conn.session is None or conn.steps is None:
                    raise InvariantBroken("internal invariant broken: a connection without session or steps")
                self.timeouts(f"{name}: {conn.where}: {what} not complete in time", now)
                conn.steps.extend(conn.session.timed_out(conn.phase))
                conn.close_after_write = True
                self._advance(conn)
                if conn.state == "open" and conn.out:  # best effort: the deadline for the answer applies
                    conn.write_since = now

    # ------------------------------------------------------------------ workers
    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            conn, job = item
            try:
                result: tuple[bytes, bool] | BaseException = job()
            except BaseException as exc:  # handed to the loop, which ends the partition
                result = exc
            self._done.append((conn, result))
            self._wake()

    def _finish_jobs(self) -> None:
        while self._done:
            conn, result = self._done.popleft()
            conn.busy = False
            if isinstance(result, BaseException):
                # a bug that one request triggers must not take the listeners down for everyone (a hostile
                # client would restart the partition at will): that request is answered with an error, the
                # connection closed, and the failure audited as an alert; the loop's own failures stay fatal
                self.request_failed(f"{conn.listener.name}: answering {conn.where} failed: "
                                    f"{type(result).__name__}: {str(result)[:300]}", time.monotonic())
                if conn.state != "open":
                    continue
                if conn.steps is None or conn.session is None:
                    raise InvariantBroken("internal invariant broken: a connection without steps or session")
                conn.steps.clear()
                conn.steps.extend(conn.session.failed())
                self._advance(conn)
                continue
            if conn.state != "open":
                continue
            data, close = result
            if close:
                conn.close_after_write = True
            self._queue_out(conn, data)
            if conn.state == "open":
                self._advance(conn)


def _reset(sock: socket.socket) -> None:
    """Close with RST: nothing lingers in the kernel for a connection we refuse."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
