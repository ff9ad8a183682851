"""Anchors: the last seal of an audit log, written down off the device, to detect a rollback later.

Everything on the device can be rolled back together by someone who can write its storage: the log cut
back to an earlier seal and a head file rebuilt for it (a head holds only bytes found in the log) verify
as a whole, shorter log. An anchor is what the device cannot take back: the sequence number and frame
hash of a seal, exported (``septum audit anchor``) and kept elsewhere (the hospital's records, a ticket,
a printout). ``septum audit verify --anchor FILE`` then requires that seal, byte for byte, in the log.

The file is one JSON object; the digest alone decides, the other fields are for the reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from septum.errors import SeptumError

FORMAT = "septum-audit-anchor-1"
MAX_ANCHOR_FILE = 4096  # an anchor is ~200 bytes; anything much larger is not one


class AnchorError(SeptumError, ValueError):
    """An anchor file that cannot be read or is not an anchor (with the reason)."""


@dataclass(frozen=True)
class Anchor:
    seq: int  # the seal's sequence number
    digest: bytes  # its 32-byte frame hash
    key_id: bytes = b""
    time: float = 0.0  # the seal's time (Unix seconds), as the device wrote it
    records: int = 0  # records up to the seal, for the reader

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "seq": self.seq, "digest": self.digest.hex(),
                           "key_id": self.key_id.hex(), "time": self.time, "records": self.records}) + "\n"


def parse_anchor(text: str, where: str = "anchor") -> Anchor:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise AnchorError(f"{where}: not an audit anchor (not JSON: {exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise AnchorError(f"{where}: not an audit anchor (expected format {FORMAT!r})")
    seq, digest = obj.get("seq"), obj.get("digest")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise AnchorError(f"{where}: 'seq' must be a non-negative integer")
    try:
        raw = bytes.fromhex(digest) if isinstance(digest, str) else b""
        kid = bytes.fromhex(obj.get("key_id", "")) if isinstance(obj.get("key_id", ""), str) else b""
    except ValueError:
        raise AnchorError(f"{where}: 'digest' and 'key_id' must be hex") from None
    if len(raw) != 32:
        raise AnchorError(f"{where}: 'digest' must be 32 bytes of hex")
    when, records = obj.get("time", 0.0), obj.get("records", 0)
    return Anchor(seq, raw, kid, float(when) if isinstance(when, int | float) else 0.0,
                  records if isinstance(records, int) else 0)


def load_anchor(path: Path) -> Anchor:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ANCHOR_FILE + 1)
    except OSError as exc:
        raise AnchorError(f"{path}: cannot read anchor ({exc.strerror})") from None
    if len(data) > MAX_ANCHOR_FILE:
        raise AnchorError(f"{path}: not an audit anchor (larger than {MAX_ANCHOR_FILE} bytes)")
    try:
        return parse_anchor(data.decode("utf-8"), str(path))
    except UnicodeDecodeError:
        raise AnchorError(f"{path}: not an audit anchor (not UTF-8 text)") from None
