"""Worker threads that leave the cores to LibreOffice when both want them.

A worker process and its LibreOffice instances share the machine's cores, and the conversions
are the bottleneck. Every time a worker thread wakes up (an answer from S3 or Redis) Linux's
scheduler lets it preempt whatever runs, often a converting LibreOffice, which then pays for
its caches refilled. Under ``SCHED_BATCH`` a waking thread does not preempt a running one; it
runs when a core is free or at the next scheduler tick. Nothing waits longer on an idle
machine, and the worker's own work is the same.

The worker process's threads are switched at boot; threads started later inherit the policy.
LibreOffice, and a thread while it hands LibreOffice a document and waits for the PDF, run
under the normal policy (``conversion.scheduling``): an instance must not idle because its
next caller waits for a tick. Measured with two worker processes on two cores, in three pairs
of runs taken one after the other (``bench.load``, 120 documents): 1.9 to 2.9 % more documents
per second than ``KMOP_WORKER_SCHEDULING=normal``, with 1 to 3 % less LibreOffice CPU per
document. ``normal`` leaves every policy as it is.
"""

from __future__ import annotations

import logging
import os

import dramatiq
from dramatiq.middleware import Middleware

logger = logging.getLogger("kmop.worker")


class BatchScheduling(Middleware):
    """Runs every thread of a worker process under ``SCHED_BATCH`` (Linux), from worker boot.

    :param enabled: False leaves the policy alone (``KMOP_WORKER_SCHEDULING=normal``).

    Where the policy does not exist (not Linux) nothing changes. Threads other libraries start
    later inherit the policy of the thread that starts them.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if not self.enabled or not hasattr(os, "SCHED_BATCH"):
            return
        try:
            switch_process_to_batch()
        except OSError as exc:
            logger.warning("worker process %d keeps the normal scheduling policy: %s", os.getpid(), exc)


def switch_process_to_batch() -> None:
    """Every thread of this process to ``SCHED_BATCH`` (each thread has its own policy)."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setscheduler(int(task), os.SCHED_BATCH, os.sched_param(0))
        except ProcessLookupError:
            pass  # the thread ended meanwhile
