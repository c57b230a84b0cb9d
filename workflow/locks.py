"""A per-dossier mutex in Redis, serialising ledger appends across worker processes.

It guards against S3-compatible servers whose conditional create is not atomic. It holds no
state worth keeping: a lost lock (Redis restarted, holder killed) expires after ``timeout``
seconds and the conditional create still stands behind it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import redis

from kmop.errors import TransientError


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
        try:
            acquired = self._lock.acquire()
        except redis.RedisError as exc:
            raise TransientError(f"the dossier lock in Redis is unavailable: {exc}") from exc
        if not acquired:
            raise TransientError("timed out waiting for the dossier lock")
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._lock.release()
        except redis.exceptions.LockError:
            pass  # expired while held: the conditional create was the guard
