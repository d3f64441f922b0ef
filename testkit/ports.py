"""Free TCP ports on the loopback address."""
from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def free_port_pair(offset: int = 10000) -> int:
    """A free port P with P + ``offset`` free too (SeaweedFS puts each gRPC port there)."""
    for _ in range(200):
        port = free_port()
        if port + offset > 65535:
            continue
        try:
            with socket.socket() as sock:
                sock.bind((LOOPBACK, port + offset))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free pair of ports {offset} apart on {LOOPBACK}")
