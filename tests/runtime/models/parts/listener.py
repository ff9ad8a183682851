"""Tries to listen on its declared port and on an undeclared one, and reports what happened."""

import socket

from septum.runtime.partition import Partition


def _bind(port: int) -> str:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return "ok"
    except OSError as exc:
        return f"{type(exc).__name__}: errno {exc.errno}"
    finally:
        s.close()


def main(p: Partition) -> None:
    declared = int(p.config["declared"])
    p.event("bind_results", declared=_bind(declared), undeclared=_bind(int(p.config["undeclared"])),
            ephemeral=_bind(0), numbers_rate=p.output_rate("numbers"))
