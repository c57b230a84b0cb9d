"""Free TCP ports on the loopback interface for the pool's unoserver instances."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable

_LOOPBACK = "127.0.0.1"


class LoopbackPorts:
    """Hands out ports the kernel reports free, never one it handed out and still holds.

    A port is found by binding to port 0 and closing the socket again; the instance binds it
    a moment later. Within one pool the reservation set rules out collisions; a process outside
    the pool can still take a port in that moment, and the instance then fails to start with
    "Address already in use" in its start error.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reserved: set[int] = set()

    def reserve(self, count: int) -> tuple[int, ...]:
        with self._lock:
            held: list[socket.socket] = []
            ports: list[int] = []
            try:
                for _ in range(count * 20):
                    if len(ports) == count:
                        break
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    held.append(sock)
                    sock.bind((_LOOPBACK, 0))
                    port = sock.getsockname()[1]
                    if port not in self._reserved and port not in ports:
                        ports.append(port)
            finally:
                for sock in held:
                    sock.close()
            if len(ports) < count:
                raise OSError(f"could not find {count} free loopback ports")
            self._reserved.update(ports)
            return tuple(ports)

    def release(self, ports: Iterable[int]) -> None:
        with self._lock:
            self._reserved.difference_update(ports)
