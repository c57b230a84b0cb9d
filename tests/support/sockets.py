"""What the kernel knows about loopback TCP sockets (``/proc/net/tcp``): which ports a process
group listens on, and whether a request waits there unread (a frozen server's backlog)."""

from __future__ import annotations

import os
from pathlib import Path

_LISTEN, _ESTABLISHED = "0A", "01"


def _tcp_table() -> list[tuple[int, str, int, str]]:
    """(local port, state, bytes waiting to be read, inode) of every IPv4 TCP socket."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues, inode = fields[1], fields[3], fields[4], fields[9]
        rows.append((int(local.split(":")[1], 16), state, int(queues.split(":")[1], 16), inode))
    return rows


def listening_ports(process_groups: list[int]) -> set[int]:
    """The TCP ports the processes of ``process_groups`` listen on."""
    inodes: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) not in process_groups:
                continue
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:["):-1])
        except OSError:
            continue
    return {port for port, state, _, inode in _tcp_table() if state == _LISTEN and inode in inodes}


def request_waiting(ports: set[int]) -> bool:
    """A connection to one of ``ports`` holds bytes its server has not read."""
    return any(port in ports and state == _ESTABLISHED and unread > 0 for port, state, unread, _ in _tcp_table())
