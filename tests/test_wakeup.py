"""Consumers woken by enqueues and finished jobs, on a real Redis (the tests', ``redis_url``).

The workers here poll only once a minute, so a job done within the test's wait was picked up
by a wake-up, not by the poll. dramatiq's worker threads wait on their work queue for the same
minute, so the tests stop a worker without waiting for them (they are daemon threads with
nothing left to do) and close the broker, which wakes its consumers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from workers.wakeup import WakingRedisBroker

A_MINUTE_MS = 60_000
WAIT_S = 20


class Done:
    """Counts finished jobs; ``wait_for(n)`` returns once n are done (False if they never are)."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def add(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_for(self, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= count, timeout=WAIT_S)


@pytest.fixture
def broker(redis_url: str, namespace: str) -> Iterator[WakingRedisBroker]:
    """The broker under test; its connections carry the namespace as their client name, so a test
    can find them (and only them) in Redis' client list."""
    client = redis.Redis.from_url(redis_url, client_name=namespace)
    broker = WakingRedisBroker(client=client, namespace=namespace, middleware=[])
    yield broker
    broker.close()
    client.close()


@pytest.fixture
def silent(redis_url: str, namespace: str) -> Iterator[RedisBroker]:
    """A producer that announces nothing (dramatiq's own Redis broker)."""
    broker = RedisBroker(url=redis_url, namespace=namespace, middleware=[])
    broker.declare_queue("work")
    yield broker
    broker.close()


@pytest.fixture
def done(broker: WakingRedisBroker) -> Done:
    done = Done()

    @dramatiq.actor(broker=broker, queue_name="work", actor_name="note_done")
    def note_done() -> None:
        done.add()

    return done


def start_worker(broker: WakingRedisBroker, poll_ms: int = A_MINUTE_MS) -> dramatiq.Worker:
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=poll_ms)
    worker.queue_prefetch = 1  # as `kmop worker` sets it: one message in hand per thread
    worker.start()
    return worker


def stop(worker: dramatiq.Worker) -> None:
    worker.stop(timeout=200)


def enqueue(broker: RedisBroker) -> None:
    broker.enqueue(dramatiq.Message(queue_name="work", actor_name="note_done", args=(), kwargs={}, options={}))


def test_an_enqueue_wakes_an_idle_worker_at_once(broker: WakingRedisBroker, done: Done) -> None:
    enqueue(broker)
    worker = start_worker(broker)
    try:
        assert done.wait_for(1)  # the first look at the queue finds it
        enqueue(broker)  # now the consumer waits: only the announcement can bring it back in time
        assert done.wait_for(2)
        enqueue(broker)
        assert done.wait_for(3)
    finally:
        stop(worker)


def test_a_finished_job_wakes_its_consumer_for_the_next(broker: WakingRedisBroker, silent: RedisBroker,
                                                        done: Done) -> None:
    for _ in range(4):
        enqueue(silent)
    worker = start_worker(broker)  # one thread, one message in hand at a time
    try:
        # The first is found by the first look; each later one only after an ack woke the consumer
        # (the listener's own subscription can explain one of them, not three).
        assert done.wait_for(4)
    finally:
        stop(worker)


def test_a_producer_that_does_not_announce_is_found_by_the_poll(
    broker: WakingRedisBroker, silent: RedisBroker, done: Done
) -> None:
    worker = start_worker(broker, poll_ms=100)
    try:
        enqueue(broker)
        assert done.wait_for(1)
        enqueue(silent)
        assert done.wait_for(2)
    finally:
        stop(worker)


def test_wakeups_survive_the_listener_losing_its_connection(broker: WakingRedisBroker, done: Done,
                                                            redis_client: redis.Redis, namespace: str) -> None:
    worker = start_worker(broker)
    try:
        enqueue(broker)
        assert done.wait_for(1)
        # only the listener's own subscription: other clients of this Redis are not the test's
        listeners = [c for c in redis_client.client_list(_type="pubsub") if c["name"] == namespace]
        assert len(listeners) == 1, listeners
        assert redis_client.client_kill_filter(_id=listeners[0]["id"]) == 1
        enqueue(broker)  # likely announced while nobody listens: the resubscription wakes them
        assert done.wait_for(2)
        enqueue(broker)
        assert done.wait_for(3)
        assert broker.wakeups.subscriptions >= 2
    finally:
        stop(worker)


def test_a_failed_announcement_does_not_fail_the_enqueue(namespace: str, broker: WakingRedisBroker,
                                                         redis_client: redis.Redis) -> None:
    broker.wakeups.channel = None  # type: ignore[assignment]  # PUBLISH with no channel: Redis refuses
    enqueue(broker)
    assert redis_client.llen(f"{namespace}:work") == 1


def test_an_enqueue_wakes_only_the_consumers_of_its_queue(broker: WakingRedisBroker) -> None:
    work, other, last = threading.Event(), threading.Event(), threading.Event()
    broker.wakeups.register("work", work)  # starts the listener
    try:
        # the subscription's confirmation wakes everyone registered once: wait for that wake-up
        # itself, and only then register the others, so that it cannot reach them
        assert work.wait(WAIT_S), "the wake-up listener did not subscribe"
        broker.wakeups.register("other", other)
        broker.wakeups.register("last", last)
        work.clear()

        broker.wakeups.publish("work")
        broker.wakeups.publish("last")  # announcements are handled in order: "work" before it

        assert last.wait(WAIT_S) and work.is_set()
        assert not other.is_set()
    finally:
        for queue, flag in (("work", work), ("other", other), ("last", last)):
            broker.wakeups.unregister(queue, flag)
