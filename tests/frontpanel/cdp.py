"""Drive headless Chromium over the DevTools protocol with the standard library only.

A minimal RFC 6455 WebSocket client (text frames, masking, fragmentation, ping/pong) is enough for CDP, so
the browser test needs no package beyond what ``make test`` installs (Debian's chromium). Every read has a
deadline; nothing here sleeps.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import selectors
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

CHROMIUM = Path("/usr/bin/chromium")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "--window-size=1280,900"]


class CdpError(RuntimeError):
    pass


class WebSocket:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise CdpError("websocket handshake: connection closed")
            head += chunk
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0]:
            raise CdpError(f"websocket handshake refused: {lines[0]}")
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if not any(ln.lower().startswith("sec-websocket-accept:") and ln.split(":", 1)[1].strip() == want
                   for ln in lines):
            raise CdpError("websocket handshake: bad Sec-WebSocket-Accept")

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise CdpError("websocket closed")
            buf += chunk
        return buf

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)  # clients must mask every frame
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self, timeout: float) -> str:
        self.sock.settimeout(timeout)
        parts: list[bytes] = []
        while True:
            b0, b1 = self._exact(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            mask = self._exact(4) if b1 & 0x80 else b""
            data = self._exact(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x9:
                self._send_frame(0xA, data)
                continue
            if opcode == 0x8:
                raise CdpError("websocket closed by the browser")
            if opcode in (0x0, 0x1, 0x2):
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, b"")
        self.sock.close()


class Page:
    """One page target: ``call`` a CDP method, ``eval`` JavaScript, click and type like a person."""

    def __init__(self, ws_url: str) -> None:
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []  # events that arrived while waiting for an answer

    def call(self, method: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"{method}: no answer within {timeout}s")
            try:
                msg = json.loads(self.ws.recv(left))
            except TimeoutError:
                raise CdpError(f"{method}: no answer within {timeout}s") from None
            if "method" in msg:
                self.events.append(msg)
                continue
            if msg.get("id") != my_id:
                continue
            if "error" in msg:
                raise CdpError(f"{method}: {msg['error']}")
            return dict(msg.get("result", {}))

    def eval(self, expr: str, timeout: float = 10.0) -> Any:
        res = self.call("Runtime.evaluate", timeout=timeout + 2, expression=expr, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            raise CdpError(f"javascript failed: {res['exceptionDetails'].get('text')} in {expr[:80]}")
        return res.get("result", {}).get("value")

    def wait_for(self, predicate_js: str, timeout: float = 10.0) -> Any:
        """Wait until ``predicate_js`` (an expression) is truthy, re-checked on every DOM change of the page.

        Event-driven (a MutationObserver), bounded by ``timeout``; returns the value or None on timeout."""
        js = f"""new Promise((resolve) => {{
            const check = () => {{ try {{ return ({predicate_js}); }} catch (e) {{ return null; }} }};
            const first = check();
            if (first) {{ resolve(first); return; }}
            const obs = new MutationObserver(() => {{
                const v = check(); if (v) {{ obs.disconnect(); clearTimeout(t); resolve(v); }} }});
            const t = setTimeout(() => {{ obs.disconnect(); resolve(null); }}, {int(timeout * 1000)});
            obs.observe(document.documentElement, {{subtree: true, childList: true, characterData: true,
                                                     attributes: true}});
        }})"""
        return self.eval(js, timeout=timeout + 5)

    def wait_event(self, method: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["method"] == method:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"no {method} within {timeout}s")
            try:
                msg = json.loads(self.ws.recv(left))
            except TimeoutError:
                raise CdpError(f"no {method} within {timeout}s") from None
            if "method" in msg:
                self.events.append(msg)

    def navigate(self, url: str, timeout: float = 15.0) -> None:
        self.call("Page.enable")
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", timeout)
        if not self.wait_for("document.body && document.body.dataset.ready === '1'", timeout):
            raise CdpError(f"{url} never drew its first state")

    def _center(self, selector: str) -> tuple[float, float]:
        box = self.eval(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
            if (!el) return null; el.scrollIntoView({{block: 'center'}});
            const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        if not box:
            raise CdpError(f"no element {selector}")
        return float(box[0]), float(box[1])

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre (so a covered or disabled button would not work)."""
        x, y = self._center(selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type(self, selector: str, text: str) -> None:
        """Focus a field, select what is in it and type over it."""
        self.click(selector)
        self.eval(f"document.querySelector({json.dumps(selector)}).select()")
        self.call("Input.insertText", text=text)

    def text(self, selector: str) -> str:
        return str(self.eval(f"document.querySelector({json.dumps(selector)}).innerText"))

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.ws.close()


class Browser:
    """Headless Chromium on a fresh profile, its DevTools on 127.0.0.1; ``page()`` attaches to its tab."""

    def __init__(self, start_timeout: float = 30.0) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="septum-chromium-"))
        # niced: the browser stands for a person's own computer, and must not take CPU from the device's
        # partitions on the same few shared cores (nice execs chromium, so the pid is the browser's)
        argv = ["nice", "-n", "10", str(CHROMIUM), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.port = self._devtools_port(start_timeout)

    def _devtools_port(self, timeout: float) -> int:
        """Chromium announces ``DevTools listening on ws://...`` on stderr: wait for that line (bounded)."""
        assert self.proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise CdpError(f"chromium did not open DevTools within {timeout}s: {buf[-500:]!r}")
                chunk = os.read(self.proc.stderr.fileno(), 4096)
                if not chunk:
                    raise CdpError(f"chromium exited: {buf[-500:]!r}")
                buf += chunk
                for line in buf.decode(errors="replace").splitlines():
                    if line.startswith("DevTools listening on ws://"):
                        return int(urlparse(line.split(" on ", 1)[1].strip()).port or 0)
        finally:
            sel.close()
            # keep draining stderr so a chatty browser never blocks on a full pipe
            threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        with contextlib.suppress(OSError, ValueError):
            while os.read(self.proc.stderr.fileno(), 65536):
                pass

    def page(self) -> Page:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        for t in targets:
            if t.get("type") == "page":
                return Page(t["webSocketDebuggerUrl"])
        raise CdpError("chromium has no page target")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)
