"""Test hardware provider: keeps the hardware end of every device so a test can inject packets."""

from __future__ import annotations

import socket
from typing import Any

import msgspec


class Board:
    def __init__(self) -> None:
        self.ends: dict[str, socket.socket] = {}

    def attach(self, interface: str, sock: socket.socket) -> None:
        self.ends[interface] = sock

    def send(self, interface: str, channel: str, **fields: Any) -> None:
        self.ends[interface].send(msgspec.msgpack.encode({"channel": channel, "fields": fields}))

    def close(self) -> None:
        for s in self.ends.values():
            s.close()
