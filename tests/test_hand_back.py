"""A closed consumer's fetched but unhanded messages go back to their queue, on the real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
import redis

from workers.wakeup import WakingRedisBroker

@pytest.fixture
def broker(redis_url: str, namespace: str) -> Iterator[WakingRedisBroker]:
    broker = WakingRedisBroker(url=redis_url, namespace=namespace, middleware=[])
    broker.declare_queue("work")
    yield broker
    broker.close()


@pytest.fixture
def queued(redis_url: str, namespace: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_url)
    yield lambda: client.llen(f"{namespace}:work")
    client.close()


def _enqueue(broker: WakingRedisBroker, count: int) -> set[str]:
    return {broker.enqueue(dramatiq.Message(queue_name="work", actor_name="job", args=(i,), kwargs={},
                                            options={})).message_id for i in range(count)}


def _take(broker: WakingRedisBroker, count: int) -> set[str]:
    consumer = broker.consume("work", prefetch=count, timeout=100)
    try:
        taken = set()
        for _ in range(count * 3):  # a consumer answers None while it waits
            message = next(consumer)
            if message is not None:
                taken.add(message.message_id)
            if len(taken) == count:
                break
        return taken
    finally:
        consumer.close()


def test_what_a_closed_consumer_fetched_and_never_handed_out_goes_back_to_its_queue(
    broker: WakingRedisBroker, queued: Any
) -> None:
    enqueued = _enqueue(broker, 3)
    consumer = broker.consume("work", prefetch=3, timeout=100)
    in_hand = next(consumer)  # fetches all three, hands out one
    assert in_hand is not None and queued() == 0

    consumer.close()

    assert queued() == 2  # the one handed out stays with its worker thread until acked
    assert _take(broker, 2) == enqueued - {in_hand.message_id}


def test_with_redis_away_at_close_the_next_consumer_puts_them_back_first(
    broker: WakingRedisBroker, queued: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    enqueued = _enqueue(broker, 3)
    consumer = broker.consume("work", prefetch=3, timeout=100)
    in_hand = next(consumer)
    assert in_hand is not None

    def redis_away(*args: Any) -> None:
        raise redis.ConnectionError("Connection refused.")

    monkeypatch.setattr(broker, "do_requeue", redis_away, raising=False)
    consumer.close()
    assert queued() == 0 and broker.hand_backs.pending("work")

    monkeypatch.undo()  # Redis is back
    assert _take(broker, 2) == enqueued - {in_hand.message_id}
    assert not broker.hand_backs.pending("work")
