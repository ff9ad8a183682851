"""MLLP framing (HL7 v2 over TCP): <VT 0x0B> message <FS 0x1C><CR 0x0D>.

``FrameReader`` is fed whatever bytes arrive and yields complete frames or ``MllpError``s; it never grows
without bound (a frame longer than ``max_frame`` is an error and the reader resynchronises on the next
start byte), so a peer sending a 100 MB "message" or garbage between frames costs a bounded amount of
memory and gets a clear answer.
"""

from __future__ import annotations

from collections.abc import Iterator

START = b"\x0b"
END = b"\x1c\x0d"
MAX_FRAME = 64 * 1024  # a pump order is < 2 kB; HL7 allows more, we do not need it


class MllpError(Exception):
    pass


def frame(message: bytes) -> bytes:
    if START in message or b"\x1c" in message:
        raise ValueError("an HL7 message cannot contain the MLLP framing bytes")
    return START + message + END


class FrameReader:
    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._in_frame = False
        self._skipping = False  # dropping the rest of an oversized frame

    def feed(self, data: bytes) -> Iterator[bytes | MllpError]:
        """Yield each complete frame's payload, or an error for each malformed stretch of input."""
        self._buf += data
        while self._buf:
            if not self._in_frame:
                start = self._buf.find(START)
                if start < 0:
                    junk = len(self._buf)
                    self._buf.clear()
                    if not self._skipping:
                        yield MllpError(f"{junk} byte(s) outside an MLLP frame (expected 0x0B to start one)")
                    return
                if start > 0 and not self._skipping:
                    yield MllpError(f"{start} byte(s) outside an MLLP frame before its 0x0B start byte")
                del self._buf[: start + 1]
                self._in_frame = True
                self._skipping = False
            end = self._buf.find(END)
            if end < 0:
                if len(self._buf) > self.max_frame:
                    self._buf.clear()
                    self._in_frame = False
                    self._skipping = True
                    yield MllpError(f"MLLP frame longer than {self.max_frame} bytes")
                return
            payload = bytes(self._buf[:end])
            del self._buf[: end + 2]
            self._in_frame = False
            if len(payload) > self.max_frame:
                yield MllpError(f"MLLP frame longer than {self.max_frame} bytes")
            elif START in payload:
                yield MllpError("MLLP frame contains a second 0x0B start byte (truncated frame before it)")
            else:
                yield payload

    def pending(self) -> int:
        """Bytes of an unfinished frame (non-zero at end of stream means a truncated frame)."""
        return len(self._buf) if self._in_frame else 0
