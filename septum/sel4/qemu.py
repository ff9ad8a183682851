"""Boot a Microkit image under QEMU and read its serial line.

QEMU never exits by itself once the system is up, so every boot is a context manager that ends the process it
started (and only that one: QEMU runs in its own session, and the session is killed by its id) whatever
happens in the ``with`` body, including a failing assertion. Lines are read on a thread so a deadline always
holds, even when the guest prints nothing.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from septum.errors import InvariantBroken, SeptumError

QEMU = "qemu-system-aarch64"
LOADER_ADDR = "0x70000000"  # where the Microkit loader expects to be placed (docs/sel4.md)


class QemuError(SeptumError, RuntimeError):
    """QEMU is missing, could not start, or the expected serial line did not come before the deadline."""


def qemu_command(image: Path, qemu: str = QEMU, memory: str = "2G", icount_shift: int | None = None) -> list[str]:
    """The documented QEMU command (docs/sel4.md): virt board with EL2, a Cortex-A53, serial on stdio, the loader.

    ``icount_shift``: run the guest on QEMU's instruction counter (``-icount shift=N,sleep=off``, one instruction
    = 2**N ns of guest time, idle time skipped) instead of the host's clock. The guest's clock then no longer
    depends on how busy the host is: a loaded 2-core host can make a real-time guest miss its own 10 ms
    periods (its clock runs on while QEMU is not scheduled), which would trip the safety monitor's silence
    checks for a reason that is not in the system. The scenarios use it; the benchmark reports both.
    """
    cmd = [qemu, "-machine", "virt,virtualization=on", "-cpu", "cortex-a53", "-serial", "mon:stdio",
           "-device", f"loader,file={image},addr={LOADER_ADDR},cpu-num=0", "-m", f"size={memory}", "-nographic"]
    if icount_shift is not None:
        cmd += ["-icount", f"shift={int(icount_shift)},sleep=off"]
    return cmd


def find_qemu(qemu: str = QEMU) -> str | None:
    return shutil.which(qemu)


@dataclass
class Line:
    at: float  # seconds since QEMU was started
    text: str


Matcher = str | re.Pattern[str] | Callable[[str], bool]


def _matches(m: Matcher, text: str) -> bool:
    if isinstance(m, str):
        return m in text
    if isinstance(m, re.Pattern):
        return m.search(text) is not None
    return m(text)


@dataclass
class Boot:
    """One QEMU run of ``image``. Use as ``with Boot(img) as b: b.wait_for("...", timeout=20)``."""

    image: Path
    qemu: str = QEMU
    nice: int = 10
    icount_shift: int | None = None
    lines: list[Line] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None
    _queue: queue.Queue[Line | None] = field(default_factory=queue.Queue)
    _started: float = 0.0
    _read: int = 0  # lines handed out by wait_for so far

    def __enter__(self) -> Boot:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        exe = find_qemu(self.qemu)
        if exe is None:
            raise QemuError(f"{self.qemu} not found (Debian: apt-get install qemu-system-arm)")
        if not Path(self.image).is_file():
            raise QemuError(f"{self.image}: no such image")
        cmd = qemu_command(Path(self.image), exe, icount_shift=self.icount_shift)
        if self.nice and shutil.which("nice"):
            cmd = ["nice", "-n", str(self.nice), *cmd]
        self._started = time.monotonic()
        # stdin stays an open pipe: QEMU's monitor multiplexer is on stdio and must not see end-of-file
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._reader, name="qemu-serial", daemon=True).start()

    def _reader(self) -> None:
        if self._proc is None or self._proc.stdout is None:
            raise InvariantBroken("internal invariant broken: self._proc is not None and self._proc.stdout is not None")
        for raw in self._proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            line = Line(time.monotonic() - self._started, text)
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)  # QEMU ended

    def wait_for(self, matcher: Matcher, timeout: float) -> Line:
        """The first line not yet handed out that matches, or QemuError with the serial tail at the deadline.

        Lines before the match are consumed: a later ``wait_for`` only sees what came after it, which is how a
        scenario asserts that something happened *after* something else.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QemuError(f"no serial line matching {_describe(matcher)} within {timeout:.0f} s; "
                                f"last lines:\n{self.tail()}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._queue.put(None)  # keep reporting the end to later waits
                code = self._proc.poll() if self._proc else None
                raise QemuError(f"QEMU exited (status {code}) before a line matching {_describe(matcher)}; "
                                f"last lines:\n{self.tail()}")
            self._read += 1
            if _matches(matcher, line.text):
                return line

    def collect(self, seconds: float) -> list[Line]:
        """Every line (not yet handed out) that arrives in the next ``seconds``."""
        out: list[Line] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self._read += 1
            out.append(line)
        return out

    def tail(self, n: int = 25) -> str:
        return "\n".join(f"  {ln.text}" for ln in self.lines[-n:])

    def stop(self) -> None:
        """End the QEMU this object started: its session, SIGTERM then SIGKILL; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        proc.wait()
        if proc.stdin is not None:  # stdout is the reader thread's: it ends on end-of-file by itself
            try:
                proc.stdin.close()
            except OSError:
                pass

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None


def _describe(m: Matcher) -> str:
    if isinstance(m, str):
        return repr(m)
    if isinstance(m, re.Pattern):
        return f"/{m.pattern}/"
    return getattr(m, "__name__", "a predicate")
