"""Wake idle consumers the moment there is work, instead of polling Redis for it.

dramatiq's Redis consumer looks at its queue and, finding nothing (or all its threads busy),
sleeps before it looks again, backing off up to the worker timeout. So a job enqueued into an
idle system waits for the next look, and a worker thread that finishes a job waits for the
consumer's next look before it gets another one. A short timeout trades that wait for idle CPU
(two idle processes polling every 50 ms use a tenth of a core).

Here the broker publishes the queue's name on a Redis channel after every enqueue; one
listener thread per process subscribes to it and wakes that process's consumers of that queue
(a worker also consumes the delay queues and the webhooks' queues: waking them all too cost 2.9
instead of 2.1 fetches per job in a load run, each a Lua script in Redis), and an ack or nack
wakes the consumer that handed the message out. A consumer that finds nothing waits for a
wake-up, at most the worker timeout, which is left as the fallback poll: for producers that
enqueue with a plain dramatiq broker (they do not publish) and while the listener reconnects.
No wake-up is lost: a consumer clears its flag before it looks at the queue, so a wake-up that
arrives while it looks makes it look again. A delayed message becomes due in its delay queue's
consumer, which looks again at the worker timeout at the latest (as with dramatiq's own broker).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message

from .hand_back import HandBacks, HandingBackConsumer

logger = logging.getLogger(__name__)

#: How long the listener waits before it subscribes again after losing its connection, in s.
RESUBSCRIBE_DELAY = 1.0


class Wakeups:
    """The consumers of one process that wait for work, and the listener that wakes them."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._client = client
        self.channel = channel
        self._lock = threading.Lock()
        self._waiting: dict[str, set[threading.Event]] = {}
        self._listener: threading.Thread | None = None
        self._pubsub: Any = None
        self._closed = threading.Event()
        #: How often the listener subscribed: once, and again after each reconnection.
        self.subscriptions = 0

    def publish(self, queue_name: str) -> None:
        """Announce an enqueue. A failure is logged, not raised: the message is already in its
        queue, and the consumers' poll finds it."""
        try:
            self._client.publish(self.channel, queue_name)
        except redis.RedisError as exc:
            logger.warning("could not announce a message on %s (%s); consumers will find it by polling",
                           queue_name, exc)

    def register(self, queue_name: str, flag: threading.Event) -> None:
        with self._lock:
            self._waiting.setdefault(queue_name, set()).add(flag)
            if self._listener is None and not self._closed.is_set():
                self._listener = threading.Thread(target=self._listen, name="kmop-wakeups", daemon=True)
                self._listener.start()

    def unregister(self, queue_name: str, flag: threading.Event) -> None:
        with self._lock:
            self._waiting.get(queue_name, set()).discard(flag)

    def wake(self, queue_name: str) -> None:
        with self._lock:
            flags = list(self._waiting.get(queue_name, ()))
        for flag in flags:
            flag.set()

    def wake_all(self) -> None:
        with self._lock:
            flags = [flag for queue_flags in self._waiting.values() for flag in queue_flags]
        for flag in flags:
            flag.set()

    def close(self) -> None:
        self._closed.set()
        pubsub = self._pubsub
        if pubsub is not None:
            pubsub.close()
        self.wake_all()

    def _listen(self) -> None:
        while not self._closed.is_set():
            try:
                # Subscription confirmations wake the consumers too: whatever was enqueued while
                # the listener was not subscribed (before its first subscription, or while
                # redis-py reconnected and subscribed again on its own) was announced to nobody.
                self._pubsub = pubsub = self._client.pubsub()
                pubsub.subscribe(self.channel)
                for message in pubsub.listen():
                    if message["type"] == "message":
                        data = message["data"]
                        self.wake(data.decode() if isinstance(data, bytes) else str(data))
                    elif message["type"] == "subscribe":
                        self.subscriptions += 1
                        self.wake_all()
            except (redis.ConnectionError, redis.TimeoutError, ValueError, AttributeError) as exc:
                # ValueError/AttributeError: redis-py's answer to a pubsub closed under it.
                if self._closed.is_set():
                    return
                logger.warning("wake-up listener lost Redis (%s); polling until it is back", exc)
                self._closed.wait(RESUBSCRIBE_DELAY)


class WakingConsumer(HandingBackConsumer):
    """dramatiq's Redis consumer that waits for a wake-up instead of sleeping when idle.

    The parent is given a zero timeout, so it never sleeps itself; ``timeout`` becomes the
    longest wait for a wake-up. Messages it fetched and never handed out go back to their queue
    when it closes (``workers.hand_back``).
    """

    def __init__(self, broker: WakingRedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, 0)
        self.hand_backs = broker.hand_backs
        self.wait_seconds = timeout / 1000
        self.woken = threading.Event()
        self.wakeups = broker.wakeups
        self.wakeups.register(queue_name, self.woken)

    def __next__(self) -> Any:
        self.woken.clear()
        message = super().__next__()
        if message is None:
            self.woken.wait(self.wait_seconds)
        return message

    def ack(self, message: Any) -> None:
        try:
            super().ack(message)
        finally:
            self.woken.set()

    def nack(self, message: Any) -> None:
        try:
            super().nack(message)
        finally:
            self.woken.set()

    def close(self) -> None:
        self.wakeups.unregister(self.queue_name, self.woken)
        super().close()


class WakingRedisBroker(RedisBroker):
    """A RedisBroker whose enqueues wake idle consumers at once (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wakeups = Wakeups(self.client, f"{self.namespace}:wakeup")
        self.hand_backs = HandBacks(self)

    @property
    def consumer_class(self) -> type[WakingConsumer]:
        return WakingConsumer

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        enqueued = super().enqueue(message, delay=delay)
        self.wakeups.publish(enqueued.queue_name)
        return enqueued

    def close(self) -> None:
        self.wakeups.close()
        super().close()
