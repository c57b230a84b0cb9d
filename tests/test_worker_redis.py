"""dramatiq workers on the real Redis (127.0.0.1:6379), storing in moto's S3 server over HTTP.

The worker runs as its own process (``python -m dramatiq workers.app``), exactly as deployed;
the test enqueues the way any producer does, onto a private Redis namespace.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from dramatiq import Message

from kmop.demo import example_applicant, sworn_statement_job
from signing.devpki import PASSPHRASE_ENV
from storage.keys import document_prefix
from workers.broker import QUEUE
from workers.dead_letters import DEAD_LETTER_PREFIX
from workers.wakeup import WakingRedisBroker
from signing.roles import Role
from workflow.ledger import Ledger
from workflow.steps import KNOWLEDGE_TEST_PASSED
from workflow.tracker import Tracker

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def worker(namespace: str, s3_endpoint: str, s3_store, pki_dir: Path, tmp_path: Path) -> Iterator[subprocess.Popen]:
    env = dict(os.environ)
    env.update({
        "KMOP_BROKER": "redis",
        "KMOP_REDIS_URL": REDIS_URL,
        "KMOP_REDIS_NAMESPACE": namespace,
        "KMOP_STORAGE": "s3",
        "KMOP_S3_ENDPOINT": s3_endpoint,
        "KMOP_S3_BUCKET": s3_store.bucket,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "KMOP_IDENTITIES": str(pki_dir / "identities.json"),
        PASSPHRASE_ENV: "test-passphrase",
        "KMOP_CONVERTER_POOL_SIZE": "1",
        "KMOP_JOB_MAX_RETRIES": "2",
    })
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "workers.app", "--processes", "1", "--threads", "2"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    yield process
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()


def _producer(namespace: str) -> WakingRedisBroker:
    broker = WakingRedisBroker(url=REDIS_URL, namespace=namespace, middleware=[])
    broker.declare_queue(QUEUE)
    return broker


def _message(job: dict[str, Any], message_id: str | None = None) -> Message:
    message = Message(queue_name=QUEUE, actor_name="generate_document", args=(job,), kwargs={}, options={})
    if message_id:
        message = message.copy(message_id=message_id)
    return message


def _wait_for(condition: Callable[[], Any], worker: subprocess.Popen, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        assert worker.poll() is None, "the worker process died"
        time.sleep(0.25)
    raise AssertionError("condition not reached in time")


def test_enqueued_job_is_stored_once_even_when_delivered_three_times(worker, namespace: str, s3_store) -> None:
    job = sworn_statement_job(example_applicant()).to_message()
    Tracker(Ledger(s3_store)).record_fact(job["dossier_id"], KNOWLEDGE_TEST_PASSED, Role.APPLICANT,
                                          {"passed_on": "2026-10-28"}, "knowledge-test")
    producer = _producer(namespace)
    first = _message(job)
    producer.enqueue(first)
    producer.enqueue(_message(job, message_id=first.message_id))  # the same message, delivered again
    producer.enqueue(_message(job))  # a producer retrying with the same idempotency key
    prefix = document_prefix(job["dossier_id"], 1, job["kind"])
    ledger = Ledger(s3_store)

    _wait_for(lambda: len(ledger.history(job["dossier_id"])) == 2, worker)
    _wait_for(lambda: redis.Redis.from_url(REDIS_URL).llen(f"{namespace}:{QUEUE}") == 0, worker)
    time.sleep(3)  # give any duplicate the time to (wrongly) land
    keys = s3_store.list(prefix)
    assert len(keys) == 1
    assert [e.idempotency_key for e in ledger.history(job["dossier_id"])] == ["knowledge-test", job["idempotency_key"]]
    raw = s3_store.client.get_object(Bucket=s3_store.bucket, Key=keys[0])["Body"].read()
    assert raw.startswith(b"%PDF")


def test_invalid_job_fails_at_once_into_the_dead_letters(worker, namespace: str, s3_store) -> None:
    job = copy.deepcopy(sworn_statement_job(example_applicant()).to_message())
    job["data"]["provider"]["enterprise_number"] = "0123.456.789"
    producer = _producer(namespace)
    producer.enqueue(_message(job))

    keys = _wait_for(lambda: s3_store.list(DEAD_LETTER_PREFIX), worker, timeout=60)
    [record] = [json.loads(s3_store.get(key)) for key in keys]
    assert record["error_type"] == "InvalidJob"
    assert "data.provider.enterprise_number" in record["reason"]
    assert record["retries"] == 1  # tried once, not retried: retrying cannot fix bad data
    assert s3_store.list(document_prefix(job["dossier_id"], 1, job["kind"])) == []
