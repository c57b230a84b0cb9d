"""dramatiq workers on a real Redis (the tests', ``redis_url``), storing in moto's S3 server over HTTP.

The worker runs as its own process (``python -m dramatiq workers.app``, ``testing.processes.Worker``), as deployed;
the test enqueues the way any producer does, onto a private Redis namespace.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq import Message

from kmop.demo import example_applicant, sworn_statement_job
from storage.keys import document_prefix
from workers.broker import QUEUE
from workers.dead_letters import DEAD_LETTER_PREFIX
from workers.wakeup import WakingRedisBroker
from signing.roles import Role
from workflow.ledger import Ledger
from workflow.steps import KNOWLEDGE_TEST_PASSED
from workflow.tracker import Tracker
from testing.processes import Worker, worker_env

pytestmark = pytest.mark.slow  # starts a worker


@pytest.fixture
def worker(redis_url: str, namespace: str, s3_endpoint: str, s3_store, pki_dir: Path,
           tmp_path: Path) -> Iterator[Worker]:
    env = worker_env(redis_url=redis_url, namespace=namespace, s3_endpoint=s3_endpoint, bucket=s3_store.bucket,
                     pki_dir=pki_dir, KMOP_JOB_MAX_RETRIES="2")
    running = Worker(env, tmp_path / "worker.log", threads=2).start()
    yield running
    running.stop()


@pytest.fixture
def producer(redis_url: str, namespace: str) -> Iterator[WakingRedisBroker]:
    broker = WakingRedisBroker(url=redis_url, namespace=namespace, middleware=[])
    broker.declare_queue(QUEUE)
    yield broker
    broker.close()


def _message(job: dict[str, Any], message_id: str | None = None) -> Message:
    message = Message(queue_name=QUEUE, actor_name="generate_document", args=(job,), kwargs={}, options={})
    if message_id:
        message = message.copy(message_id=message_id)
    return message


def _wait_for(condition: Callable[[], Any], worker: Worker, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        assert worker.process is not None and worker.process.poll() is None, "the worker process died"
        time.sleep(0.25)
    raise AssertionError("condition not reached in time")


DONE = re.compile(r"document \S+ \S+ v(\d+) sha256=\S+ created=(True|False)")


def test_enqueued_job_is_stored_once_even_when_delivered_three_times(worker, producer, redis_client,
                                                                    s3_store) -> None:
    """Each delivery runs to its end (the worker logs every outcome) until Redis holds none of the
    messages any more; the worker is then stopped, and only then are the effects counted, so a
    duplicate landing late cannot go unseen. The redelivered copy of the first message is run
    only if it was fetched before the first was acknowledged (dramatiq drops it otherwise)."""
    job = sworn_statement_job(example_applicant()).to_message()
    Tracker(Ledger(s3_store)).record_fact(job["dossier_id"], KNOWLEDGE_TEST_PASSED, Role.APPLICANT,
                                          {"passed_on": "2026-10-28"}, "knowledge-test")
    first = _message(job)
    producer.enqueue(first)
    producer.enqueue(_message(job, message_id=first.message_id))  # the same message, delivered again
    producer.enqueue(_message(job))  # a producer retrying with the same idempotency key
    queue = f"{producer.namespace}:{QUEUE}"

    def all_handled() -> bool:
        return (len(DONE.findall(worker.log())) >= 2 and redis_client.llen(queue) == 0
                and redis_client.hlen(f"{queue}.msgs") == 0 and redis_client.hlen(f"{queue}.DQ.msgs") == 0)

    _wait_for(all_handled, worker)
    assert worker.stop() == 0, worker.log()[-3000:]
    outcomes = DONE.findall(worker.log())
    assert [created for _, created in outcomes].count("True") == 1, outcomes
    assert {version for version, _ in outcomes} == {"1"}, outcomes
    keys = s3_store.list(document_prefix(job["dossier_id"], 1, job["kind"]))
    assert len(keys) == 1
    ledger = Ledger(s3_store)
    assert [e.idempotency_key for e in ledger.history(job["dossier_id"])] == ["knowledge-test", job["idempotency_key"]]
    raw = s3_store.client.get_object(Bucket=s3_store.bucket, Key=keys[0])["Body"].read()
    assert raw.startswith(b"%PDF")


def test_invalid_job_fails_at_once_into_the_dead_letters(worker, producer, s3_store) -> None:
    job = copy.deepcopy(sworn_statement_job(example_applicant()).to_message())
    job["data"]["provider"]["enterprise_number"] = "0123.456.789"
    producer.enqueue(_message(job))

    keys = _wait_for(lambda: s3_store.list(DEAD_LETTER_PREFIX), worker, timeout=60)
    [record] = [json.loads(s3_store.get(key)) for key in keys]
    assert record["error_type"] == "InvalidJob"
    assert "data.provider.enterprise_number" in record["reason"]
    assert record["retries"] == 1  # tried once, not retried: retrying cannot fix bad data
    assert s3_store.list(document_prefix(job["dossier_id"], 1, job["kind"])) == []
