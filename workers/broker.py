"""The dramatiq broker and its middleware, configured from the settings.

``install_broker`` sets dramatiq's global broker once per process; the actors module calls it
before it declares its actors, so ``dramatiq workers.app`` and in-process use both work.
"""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from kmop.settings import Settings, load_settings
from storage.base import DocumentStore

from .dead_letters import DeadLetterRecorder
from .middleware_metrics import JobLogContext, JobMetrics
from .retry_policy import MAX_BACKOFF_MS, MIN_BACKOFF_MS, make_retry_when
from .wakeup import WakingRedisBroker

QUEUE = "documents"
#: How long an idle consumer waits at most for a wake-up before it looks at its queue anyway, in
#: ms (dramatiq's worker timeout). Enqueues through our broker and finished jobs wake consumers at
#: once (workers.wakeup); this poll only serves producers that enqueue with a plain dramatiq broker.
IDLE_POLL_MS = 1000


def dramatiq_environment(threads: int) -> dict[str, str]:
    """dramatiq's own settings for worker processes with ``threads`` threads each: one message in
    hand per thread (its default, twice the threads, lets a busy process hold jobs an idle one
    could run) and the fallback poll."""
    return {"dramatiq_queue_prefetch": str(threads), "dramatiq_worker_timeout": str(IDLE_POLL_MS)}

_lock = threading.Lock()
_installed: dramatiq.Broker | None = None


def middleware_for(settings: Settings) -> list[dramatiq.Middleware]:
    def store() -> DocumentStore:
        from .runtime import store_for

        return store_for(settings)

    def pool_stats():  # type: ignore[no-untyped-def]
        from .runtime import current_runtime

        runtime = current_runtime()
        return runtime.converter.stats() if runtime is not None and runtime.converter is not None else None

    return [
        JobLogContext(),  # first: binds the job's ids before anyone logs, unbinds last
        AgeLimit(),
        TimeLimit(time_limit=settings.job_time_limit_ms, interval=1000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        DeadLetterRecorder(store),
        JobMetrics(pool_stats=pool_stats),  # before Retries, so it sees message.failed
        Retries(
            max_retries=settings.job_max_retries,
            min_backoff=MIN_BACKOFF_MS,
            max_backoff=MAX_BACKOFF_MS,
            retry_when=make_retry_when(settings.job_max_retries),
        ),
        CurrentMessage(),
    ]


def build_broker(settings: Settings) -> dramatiq.Broker:
    middleware = middleware_for(settings)
    if settings.broker == "stub":
        return StubBroker(middleware=middleware)
    return WakingRedisBroker(
        url=settings.redis_url,
        namespace=settings.redis_namespace,
        middleware=middleware,
        # Redelivery of a killed worker's jobs waits for its heartbeat to age out and for a
        # maintenance pass (a random draw per Redis command): 15 s and 10 % of commands by
        # default, instead of dramatiq's 60 s and 0.1 %, so redelivery takes seconds.
        heartbeat_timeout=settings.redis_heartbeat_timeout_ms,
        maintenance_chance=settings.redis_maintenance_chance,
    )


def install_broker(settings: Settings | None = None) -> dramatiq.Broker:
    global _installed
    with _lock:
        if _installed is None:
            _installed = build_broker(settings or load_settings())
            dramatiq.set_broker(_installed)
        return _installed
