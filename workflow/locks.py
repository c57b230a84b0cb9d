"""A per-dossier mutex in Redis, serialising ledger appends across worker processes.

It guards against S3-compatible servers whose conditional create is not atomic. It holds no
state worth keeping: a lost lock (Redis restarted, holder killed) expires after ``timeout``
seconds, and the conditional create still stands behind it. So when Redis cannot be reached the
work goes on without the lock (logged) rather than failing: a job that fails while Redis is
down cannot be re-enqueued for a retry, and dramatiq would later ack it as handled.

A thread that holds a dossier's lock may take it again (storing a document and recording it run
under one lock, and the ledger's append inside takes it too): the inner take is a no-op, so a
job pays one acquire and one release, not one per step.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager, nullcontext

import redis

from kmop.errors import TransientError

logger = logging.getLogger("kmop.locks")


class RedisDossierLock:
    def __init__(self, client: redis.Redis, namespace: str = "kmop", timeout: float = 30.0) -> None:
        self.client = client
        self.namespace = namespace
        self.timeout = timeout
        self._by_thread = threading.local()

    def __call__(self, dossier_id: str) -> AbstractContextManager[object]:
        held: set[str] = self._by_thread.__dict__.setdefault("dossiers", set())
        if dossier_id in held:
            return nullcontext()
        return _Held(self.client.lock(f"{self.namespace}:ledger-lock:{dossier_id}",
                                      timeout=self.timeout, blocking_timeout=self.timeout), dossier_id, held)


class _Held:
    def __init__(self, lock: redis.lock.Lock, dossier_id: str, held_by_thread: set[str]) -> None:
        self._lock = lock
        self._dossier_id = dossier_id
        self._held_by_thread = held_by_thread

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
        self._held_by_thread.add(self._dossier_id)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._held:
            return
        self._held_by_thread.discard(self._dossier_id)
        try:
            self._lock.release()
        except (redis.exceptions.LockError, redis.RedisError):
            pass  # expired or Redis gone while held: the conditional create was the guard
