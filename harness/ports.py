"""Loopback ports for the services the harness starts, and whether one answers."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a TCP connect to ``host:port`` succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
