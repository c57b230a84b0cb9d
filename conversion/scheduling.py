"""LibreOffice, and whoever hands it a document, run under Linux's normal scheduling policy.

A worker's threads run under ``SCHED_BATCH`` (``workers.scheduling``): waking up, they do not
preempt a converting LibreOffice on a shared core. Two things must not wait like that:

- LibreOffice itself: a child inherits its parent thread's policy, so an instance is started
  under ``chrt --other`` when the starting thread is not under the normal policy;
- the thread that hands an instance its next document: the instance idles until that thread
  runs, so ``ConverterPool.convert`` runs under the normal policy from waiting for a free
  instance until the PDF is back, and under the caller's own policy again afterwards.

Elsewhere (not Linux, or a thread already under the normal policy) nothing changes.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

_SUPPORTED = hasattr(os, "sched_getscheduler") and hasattr(os, "SCHED_BATCH")


def _current_policy() -> int | None:
    return os.sched_getscheduler(0) if _SUPPORTED else None


@contextmanager
def normal_policy() -> Iterator[None]:
    """The calling thread under the normal policy for the block, then back to its own."""
    policy = _current_policy()
    if policy is None or policy == os.SCHED_OTHER:
        yield
        return
    parameters = os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError as exc:  # not permitted here: the block runs under the thread's own policy
        logger.debug("thread keeps its scheduling policy: %s", exc)
        yield
        return
    try:
        yield
    finally:
        os.sched_setscheduler(0, policy, parameters)


def under_normal_policy(command: list[str]) -> list[str]:
    """``command`` run under the normal policy, whatever the starting thread's.

    ``chrt`` (util-linux) execs the command, so the process keeps its pid and group.
    """
    policy = _current_policy()
    if policy is None or policy == os.SCHED_OTHER:
        return command
    chrt = shutil.which("chrt")
    if chrt is None:
        logger.warning("chrt (util-linux) not found: LibreOffice inherits this thread's scheduling policy")
        return command
    return [chrt, "--other", "0", *command]
