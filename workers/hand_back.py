"""Messages a Redis consumer fetched but never handed out go back to their queue when it closes.

dramatiq's Redis consumer fetches up to its prefetch at once: the fetch moves the messages
into the process's acknowledgement set in Redis and keeps them in the consumer's memory until
a worker thread takes them. When the consumer closes (its connection to Redis broke, or the
worker stops), dramatiq drops that memory. The messages stay in the acknowledgement set, and
Redis requeues a process's set only once its heartbeat has stopped. A worker that lost Redis for
a moment and then kept running therefore held such jobs, unrun, until it stopped
(tests/test_faults.py::test_redis_restart_loses_no_job, seen once in CI: one job of eight).

Here a closing consumer puts those messages back on their queue (dramatiq's own ``requeue``
command, which takes a message only out of this process's acknowledgement set). If Redis
cannot be reached then, the broker keeps their ids and the next consumer of that queue in this
process requeues them before it fetches. Requeueing a message twice, or one that was acked
meanwhile, does nothing.

Not covered: a fetch that Redis ran but whose answer the connection lost. This process never
saw those messages. They wait in its acknowledgement set for the process to stop, or for
``kmop stuck --resume`` to find the job.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.message import Message

logger = logging.getLogger(__name__)


class HandBacks:
    """Per queue, the ids of messages fetched by a closed consumer and not yet requeued."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker
        self._pending: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def pending(self, queue_name: str) -> bool:
        with self._lock:
            return bool(self._pending.get(queue_name))

    def hand_back(self, queue_name: str, message_ids: list[str]) -> None:
        """Put ``message_ids`` back on ``queue_name`` now, or keep them for later."""
        with self._lock:
            self._pending.setdefault(queue_name, set()).update(message_ids)
        self.requeue(queue_name)

    def requeue(self, queue_name: str) -> None:
        """Requeue what is kept for ``queue_name``; kept on if Redis cannot be reached."""
        with self._lock:
            ids = sorted(self._pending.get(queue_name, ()))
        if not ids:
            return
        try:
            self.broker.do_requeue(queue_name, *ids)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            logger.warning("could not put %d fetched message(s) back on %s (%s); the next consumer will",
                           len(ids), queue_name, exc)
            return
        with self._lock:
            self._pending[queue_name].difference_update(ids)
        logger.info("put %d fetched message(s) back on %s", len(ids), queue_name)


class HandingBackConsumer(_RedisConsumer):
    """dramatiq's Redis consumer whose unhanded messages go back to their queue on close."""

    hand_backs: HandBacks

    def __next__(self) -> Any:
        self.hand_backs.requeue(self.queue_name)  # Redis still away: the fetch below says so
        return super().__next__()

    def close(self) -> None:
        cached = [Message.decode(data).options["redis_message_id"] for data in self.message_cache if data is not None]
        self.message_cache = []
        if cached:
            self.hand_backs.hand_back(self.queue_name, cached)
        super().close()
