"""A per-dossier mutex in Redis, serialising ledger appends across worker processes.

It guards against S3-compatible servers whose conditional create is not atomic. It holds no
state worth keeping: a lost lock (Redis restarted, holder killed) expires after ``timeout``
seconds, and the conditional create still stands behind it. So when Redis cannot be reached the
work goes on without the lock (logged) rather than failing: a job that fails while Redis is
down cannot be re-enqueued for a retry, and dramatiq would later ack it as handled.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import logging

import redis

from kmop.errors import TransientError

logger = logging.getLogger("kmop.locks")


class RedisDossierLock:
    def __init__(self, client: redis.Redis, namespace: str = "kmop", timeout: float = 30.0) -> None:
        self.client = client
        self.namespace = namespace
        self.timeout = timeout

    def __call__(self, dossier_id: str) -> AbstractContextManager[object]:
        return _Held(self.client.lock(f"{self.namespace}:ledger-lock:{dossier_id}",
                                      timeout=self.timeout, blocking_timeout=self.timeout))


class _Held:
    def __init__(self, lock: redis.lock.Lock) -> None:
        self._lock = lock

    def __enter__(self) -> object:
        self._held = False
        try:
            acquired = self._lock.acquire()
        except redis.RedisError as exc:
            logger.warning("dossier lock unavailable (%s); relying on the conditional create alone", exc)
            return self
        if not acquired:
            raise TransientError("timed out waiting for the dossier lock")
        self._held = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._held:
            return
        try:
            self._lock.release()
        except (redis.exceptions.LockError, redis.RedisError):
            pass  # expired or Redis gone while held: the conditional create was the guard
