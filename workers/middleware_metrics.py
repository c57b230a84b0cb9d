"""dramatiq middleware that makes a worker observable: job fields on every log line, job metrics.

``JobLogContext`` binds the message id (``job_id``) and the job's ``dossier_id``, ``kind`` and
``idempotency_key`` to the logging context (``kmop.observability``) for as long as the message
is processed. Put it first in the broker's middleware list: ``before_*`` hooks run in list
order and ``after_*`` hooks in reverse, so the fields are bound before any other middleware
logs and stay bound until the last one has.

``JobMetrics`` counts jobs started, done, failed for good and retried, times each attempt, and
after each message brings the converter pool's counters up to date (``pool_stats``, a callable
that returns the process's ``PoolStats`` or None). Put it before ``Retries`` in the list, like
``DeadLetterRecorder``: its ``after_process_message`` must run after Retries has decided
whether the message failed for good. Its fork (``serve_metrics``) serves the metrics of every
worker process on ``KMOP_METRICS_PORT`` when dramatiq runs with ``PROMETHEUS_MULTIPROC_DIR``.

Limits: the fields are read from the message's first argument when it is a job dict; a message
of another shape is logged with ``job_id`` only. A worker thread processes one message at a
time, so a context variable per thread is exact; work a job hands to other threads (the
converter pool's start-up threads) logs without the fields.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from dramatiq.middleware import Middleware

from kmop import observability

logger = logging.getLogger("kmop.worker")

PoolStatsProvider = Callable[[], Any]


class JobLogContext(Middleware):
    """Binds the job's ids to the log context while its message is processed."""

    def before_process_message(self, broker, message):  # type: ignore[no-untyped-def]
        observability.bind_job(job_id=message.message_id, **_job_fields(message))

    def after_process_message(self, broker, message, *, result=None, exception=None):  # type: ignore[no-untyped-def]
        observability.unbind_job()

    def after_skip_message(self, broker, message):  # type: ignore[no-untyped-def]
        observability.unbind_job()


class JobMetrics(Middleware):
    """Counts and times jobs in Prometheus metrics (see the module docstring for its place).

    Parameters:
        pool_stats: returns the converter pool's ``stats()`` of this process, or None when it
            has none; called after every message. Its failures are logged and ignored.
    """

    def __init__(self, pool_stats: PoolStatsProvider | None = None) -> None:
        self.pool_stats = pool_stats
        self._started: dict[str, float] = {}

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [serve_metrics] if _multiprocess() and observability.metrics_port() else []

    def before_process_message(self, broker, message):  # type: ignore[no-untyped-def]
        self._started[message.message_id] = time.perf_counter()
        observability.JOBS_STARTED.labels(kind=_kind(message)).inc()

    def after_process_message(self, broker, message, *, result=None, exception=None):  # type: ignore[no-untyped-def]
        kind = _kind(message)
        started = self._started.pop(message.message_id, None)
        if started is not None:
            observability.JOB_DURATION.labels(kind=kind).observe(time.perf_counter() - started)
        if exception is None:
            observability.JOBS_DONE.labels(kind=kind).inc()
        elif message.failed:
            observability.JOBS_FAILED.labels(kind=kind, error=type(exception).__name__).inc()
        else:
            observability.JOBS_RETRIED.labels(kind=kind, error=type(exception).__name__).inc()
        self._observe_pool()

    def after_skip_message(self, broker, message):  # type: ignore[no-untyped-def]
        self._started.pop(message.message_id, None)

    def after_worker_shutdown(self, broker, worker):  # type: ignore[no-untyped-def]
        observability.mark_process_dead()

    def _observe_pool(self) -> None:
        if self.pool_stats is None:
            return
        try:
            stats = self.pool_stats()
            if stats is not None:
                observability.observe_pool(stats)
        except Exception:  # noqa: BLE001 - metrics never fail a job
            logger.warning("could not read the converter pool's stats", exc_info=True)


def serve_metrics() -> int:
    """dramatiq fork: serve every worker process's metrics on ``KMOP_METRICS_PORT`` until stopped."""
    port = observability.metrics_port()
    if port == 0:
        return 0
    server = observability.start_metrics_server(port)
    logger.info("serving Prometheus metrics on port %d", port)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.shutdown()


def _job_fields(message: Any) -> dict[str, object]:
    job = message.args[0] if message.args else None
    if not isinstance(job, dict):
        return {}
    return {name: job.get(name) for name in ("dossier_id", "kind", "idempotency_key")}


def _kind(message: Any) -> str:
    job = message.args[0] if message.args else None
    return observability.kind_label(job.get("kind") if isinstance(job, dict) else None)


def _multiprocess() -> bool:
    return bool(os.environ.get(observability.MULTIPROC_ENV))
