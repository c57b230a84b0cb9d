"""Resident memory of a process tree, read from ``/proc`` (Linux).

A converter instance is unoserver with the LibreOffice it started (``oosplash``,
``soffice.bin``); what grows as it converts is ``soffice.bin``. The pool recycles an instance
whose tree holds more than its limit (``ConverterPool(max_memory_mb=...)``). Where ``/proc``
cannot be read, nothing is measured and only the conversion count recycles.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_PROC = Path("/proc")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def process_tree(leader: int) -> list[int]:
    """``leader`` and its descendants that are alive now (empty if ``leader`` is not)."""
    tree: list[int] = []
    pending = [leader]
    while pending:
        pid = pending.pop()
        try:
            tasks = list((_PROC / str(pid) / "task").iterdir())
        except OSError:
            continue  # gone, or no /proc
        tree.append(pid)
        for task in tasks:
            try:
                pending.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                pass  # the thread ended, or the kernel lists no children (CONFIG_PROC_CHILDREN)
    return tree


def running(pid: int) -> bool:
    """Whether ``pid`` exists and has not ended (an ended child its parent has not waited for
    yet, a zombie, is still listed)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split(maxsplit=1)[0] not in ("Z", "X")


def resident_bytes(pids: Iterable[int]) -> int | None:
    """The resident memory of ``pids`` together; None if one of them is gone."""
    total = 0
    for pid in pids:
        try:
            fields = (_PROC / str(pid) / "statm").read_text().split()
        except OSError:
            return None
        total += int(fields[1]) * _PAGE_SIZE
    return total
