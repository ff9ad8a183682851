"""A slow-loris attacker for the tests: many TCP connections that each send the first 3 bytes of a TLS record
and then, at most, dribble one more byte now and then, so a server that times out each read (instead of
giving the whole handshake a deadline) never closes them."""

from __future__ import annotations

import contextlib
import errno
import resource
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

TLS_START = b"\x16\x03\x01"  # a TLS handshake record header, cut before its length
DRIBBLE = b"\x02"  # record length high byte, then body bytes: never a complete record


def raise_fd_limit(need: int) -> None:
    """The attacker (this test process) needs one descriptor per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            raise RuntimeError(f"RLIMIT_NOFILE hard limit {hard} < {want}: cannot open {need} connections")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Loris:
    def __init__(self, targets: Iterable[tuple[str, int]], per_target: int) -> None:
        self.targets = list(targets)
        self.per_target = per_target
        self.socks: list[socket.socket] = []
        self.connected = 0  # connections established (the server may have refused them at once since)
        self.sent_first = 0  # connections that got their 3 bytes out before the server closed them
        self.closed_by_server: set[int] = set()  # indexes of sockets the server closed (EOF or RST)

    def open(self, timeout: float = 30.0) -> None:
        raise_fd_limit(len(self.targets) * self.per_target)
        pending: dict[int, socket.socket] = {}
        for host, port in self.targets:
            for _ in range(self.per_target):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex((host, port))
                if err not in (0, errno.EINPROGRESS):
                    s.close()
                    continue
                self.socks.append(s)
                pending[s.fileno()] = s
        deadline = time.monotonic() + timeout
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        while pending and time.monotonic() < deadline:
            for fd, _ev in poller.poll(200):
                s = pending.pop(fd)
                poller.unregister(fd)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err in (0, errno.ECONNRESET):  # reset: accepted, then refused over the limit at once
                    self.connected += 1
                if err == 0:
                    with contextlib.suppress(OSError):
                        s.send(TLS_START)
                        self.sent_first += 1

    def dribble(self) -> None:
        for i, s in enumerate(self.socks):
            if i not in self.closed_by_server:
                try:
                    s.send(DRIBBLE)
                except OSError:
                    self.closed_by_server.add(i)

    def poll_closed(self) -> int:
        """How many of the connections the server has closed so far."""
        for i, s in enumerate(self.socks):
            if i in self.closed_by_server:
                continue
            try:
                if s.recv(4096) == b"":
                    self.closed_by_server.add(i)
            except BlockingIOError:
                pass
            except OSError:
                self.closed_by_server.add(i)
        return len(self.closed_by_server)

    def open_count(self) -> int:
        return len(self.socks) - self.poll_closed()

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks.clear()


def until_accepted(send: Callable[[], Any], accepted: Callable[[Any], bool], timeout: float) -> tuple[Any, int]:
    """Send a valid order until the pump answers it as accepted, reconnecting when a connection is refused
    (what a hospital interface engine does); (the answer, attempts). Fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    attempts = 0
    last: Any = None
    while time.monotonic() < deadline:
        attempts += 1
        try:
            last = send()
        except (ssl.SSLError, OSError) as exc:  # refused over the limit: reconnect
            last = exc
            time.sleep(0.2)
            continue
        if accepted(last):
            return last, attempts
        time.sleep(0.2)
    raise AssertionError(f"no valid order accepted within {timeout} s ({attempts} attempts, last: {last!r})")
