"""Faults on purpose: a worker killed mid-conversion, Redis restarted, storage down, LibreOffice
hanging, SIGTERM during a job, a lost message. Each fault test starts its own Redis on a free
loopback port (never the machine's shared one) and reaches S3 through a proxy it can cut.

Recovery times are printed (run with ``-s`` to see them); nothing asserts a wall-clock limit.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq import Message

from kmop.demo import example_applicant
from kmop.jobs import parse_job
from kmop.scenario import dossier_steps
from storage.keys import document_prefix
from templates.catalog import get_kind
from workers.broker import QUEUE
from workers.dead_letters import list_dead_letters
from workers.outbox import record_job
from workers.sweep import sweep
from workers.wakeup import WakingRedisBroker
from workflow.ledger import Ledger
from workflow.tracker import Tracker
from testing.processes import RedisServer, TcpProxy, Worker, wait_for, worker_env

pytestmark = pytest.mark.slow  # starts Redis servers and workers of its own

CONVERTING_TICKS = 10  # 0.1 s of LibreOffice's CPU time (at 100 ticks a second) beyond its idle use
FAST_REDELIVERY = {"KMOP_REDIS_HEARTBEAT_TIMEOUT_MS": "3000", "KMOP_REDIS_MAINTENANCE_CHANCE": "1000000"}


def _job(dossier_id: str) -> dict[str, Any]:
    """A sworn statement of a returning applicant (no knowledge test needed)."""
    applicant = copy.deepcopy(example_applicant())
    applicant["dossier_id"] = dossier_id
    applicant["application"]["first_time"] = False
    job = next(s for s in dossier_steps(applicant) if getattr(s, "kind", None) == "sworn_statement")
    return job.to_message()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def s3_proxy(s3_endpoint: str) -> Iterator[TcpProxy]:
    proxy = TcpProxy(int(s3_endpoint.rsplit(":", 1)[1]))
    proxy.up()
    yield proxy
    proxy.down()


class Harness:
    def __init__(self, redis_server: RedisServer, proxy: TcpProxy, store, pki_dir: Path, tmp_path: Path) -> None:
        self.redis = redis_server
        self.proxy = proxy
        self.store = store
        self.pki_dir = pki_dir
        self.tmp_path = tmp_path
        self.namespace = f"fault-{uuid.uuid4().hex[:6]}"
        self.workers: list[Worker] = []
        self.tracker = Tracker(Ledger(store))

    def worker(self, **extra: str) -> Worker:
        env = worker_env(redis_url=self.redis.url, namespace=self.namespace, s3_endpoint=self.proxy.url,
                         bucket=self.store.bucket, pki_dir=self.pki_dir, **extra)
        worker = Worker(env, self.tmp_path / f"worker-{len(self.workers)}.log").start()
        self.workers.append(worker)
        return worker

    def enqueue(self, job: dict[str, Any]) -> Message:
        record_job(self.store, parse_job(job))
        broker = WakingRedisBroker(url=self.redis.url, namespace=self.namespace, middleware=[])
        broker.declare_queue(QUEUE)
        message = Message(queue_name=QUEUE, actor_name="generate_document", args=(job,), kwargs={}, options={})
        broker.enqueue(message)
        broker.client.close()
        return message

    def recorded(self, job: dict[str, Any]) -> bool:
        return any(e.idempotency_key == job["idempotency_key"] for e in self.tracker.history(job["dossier_id"]))

    def objects(self, job: dict[str, Any]) -> list[str]:
        return self.store.list(document_prefix(job["dossier_id"], get_kind(job["kind"]).step, job["kind"]))

    def events(self, job: dict[str, Any]) -> int:
        return sum(e.idempotency_key == job["idempotency_key"] for e in self.tracker.history(job["dossier_id"]))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(timeout=30)


@pytest.fixture
def harness(private_redis, s3_proxy, s3_store, pki_dir, tmp_path) -> Iterator[Harness]:
    h = Harness(private_redis, s3_proxy, s3_store, pki_dir, tmp_path)
    yield h
    h.close()


def _report(name: str, seconds: float) -> None:
    print(f"\n[recovery] {name}: {seconds:.1f} s")


def _converting(worker: Worker, idle_ticks: int) -> bool:
    """LibreOffice has used CPU since the worker was ready: it is converting the job."""
    return worker.cpu_ticks("soffice") > idle_ticks + CONVERTING_TICKS


def test_worker_killed_mid_conversion_is_redelivered_and_done_once(harness: Harness) -> None:
    job = _prepared_up_to_pack(harness, "FAULT-KILL")  # LibreOffice needs well over a second for it
    first = harness.worker(**FAST_REDELIVERY)
    first.wait_ready()
    idle = first.cpu_ticks("soffice")
    harness.enqueue(job)
    wait_for(lambda: _converting(first, idle), interval=0.02, alive=first.process)
    assert not harness.recorded(job)
    first.kill()
    killed = time.monotonic()

    second = harness.worker(**FAST_REDELIVERY)
    wait_for(lambda: harness.recorded(job), timeout=180, alive=second.process)
    _report("worker SIGKILLed mid-job -> redelivered and done", time.monotonic() - killed)
    assert len(harness.objects(job)) == 1
    assert harness.events(job) == 1


def test_redis_restart_loses_no_job(harness: Harness) -> None:
    jobs = [_job(f"FAULT-REDIS-{i}") for i in range(8)]  # more than the worker prefetches
    worker = harness.worker()
    for job in jobs:
        harness.enqueue(job)
    wait_for(lambda: harness.recorded(jobs[0]), alive=worker.process)
    harness.redis.kill()  # SIGKILL: only what AOF (appendfsync always) kept survives
    restarted_at = time.monotonic()
    wait_for(lambda: "lost Redis" in worker.log(), alive=worker.process)  # the worker noticed
    harness.redis.start()
    wait_for(lambda: all(harness.recorded(j) for j in jobs), timeout=240)
    _report("Redis killed and restarted -> all jobs done", time.monotonic() - restarted_at)
    for job in jobs:
        assert len(harness.objects(job)) == 1 and harness.events(job) == 1


def test_storage_outage_is_retried_until_it_returns(harness: Harness) -> None:
    job = _job("FAULT-S3")
    harness.enqueue(job)  # the outbox write needs storage: submitted before the outage
    harness.proxy.down()
    worker = harness.worker()
    wait_for(lambda: "StorageUnavailable" in worker.log() and "Retrying message" in worker.log(),
             timeout=120, alive=worker.process)
    harness.proxy.up()
    back = time.monotonic()
    wait_for(lambda: harness.recorded(job), timeout=240, alive=worker.process)
    _report("storage down then back -> job done", time.monotonic() - back)
    assert len(harness.objects(job)) == 1 and harness.events(job) == 1
    assert list_dead_letters(harness.store) == []


def _prepared_up_to_pack(harness: Harness, dossier_id: str) -> dict[str, Any]:
    """Record a returning applicant's steps before the preparation pack (documents stubbed in
    the ledger only), and return the pack job, with 2000 project dossiers whose reference and
    client fill their longest allowed length: a document that keeps LibreOffice busy for
    seconds (2.5 s on a 2-core machine), well beyond the shortest conversion timeout (1 s).
    With short rows it took 1.0 s once templates lost their unused styles: too close."""
    applicant = copy.deepcopy(example_applicant())
    applicant["dossier_id"] = dossier_id
    applicant["application"]["first_time"] = False
    steps = dossier_steps(applicant)
    pack_index = next(i for i, s in enumerate(steps) if getattr(s, "kind", None) == "preparation_pack")
    for step in steps[:pack_index]:
        harness.tracker.record_document(step.dossier_id, step.kind, step.role, step.data, step.idempotency_key,
                                        {"kind": step.kind, "step": step.document_kind.step,
                                         "key": f"dossiers/{dossier_id}/stub/{step.kind}.pdf", "sha256": "0" * 64,
                                         "size": 0})
    pack = steps[pack_index].to_message()
    pack["data"]["known_dossiers"] = [
        {"reference": (f"KMOP-2025-{100000 + i}-" + "dossier " * 8)[:60],
         "client": (f"Klant {i} BV " + "met een lange naam en vestiging " * 7)[:200],
         "service": "advies", "started_on": "2025-03-17"} for i in range(2000)]
    return pack


def test_hanging_conversion_times_out_into_dead_letters_and_others_go_on(harness: Harness) -> None:
    endless, healthy = _prepared_up_to_pack(harness, "FAULT-HANG"), _job("FAULT-AFTER")
    worker = harness.worker(KMOP_CONVERSION_TIMEOUT="1", KMOP_JOB_MAX_RETRIES="1")
    started = time.monotonic()
    harness.enqueue(endless)
    [letter] = wait_for(lambda: list_dead_letters(harness.store), timeout=240, alive=worker.process)
    _report("conversion over its time limit -> dead letter after 1 retry", time.monotonic() - started)
    assert letter["error_type"] == "ConversionTimeout"
    assert letter["args"][0]["idempotency_key"] == endless["idempotency_key"]
    assert letter["retries"] == 2  # the first attempt and one retry
    assert harness.store.list(document_prefix("FAULT-HANG", 3, "preparation_pack")) == []
    assert "longer than 1 s" in letter["reason"]

    harness.enqueue(healthy)  # the replaced LibreOffice instance serves the next job
    wait_for(lambda: harness.recorded(healthy), timeout=180, alive=worker.process)
    assert len(harness.objects(healthy)) == 1


def test_sigterm_lets_the_in_flight_job_finish(harness: Harness) -> None:
    job = _prepared_up_to_pack(harness, "FAULT-TERM")  # converting for seconds: SIGTERM lands mid-job
    worker = harness.worker()
    worker.wait_ready()
    idle = worker.cpu_ticks("soffice")
    harness.enqueue(job)
    wait_for(lambda: _converting(worker, idle), interval=0.02, alive=worker.process)
    assert not harness.recorded(job)
    worker.stop(timeout=120)
    assert worker.process is not None and worker.process.returncode == 0, worker.log()
    assert harness.recorded(job), worker.log()[-3000:]  # by this worker, before it exited
    assert len(harness.objects(job)) == 1 and harness.events(job) == 1
    assert "fetched message(s) back" not in worker.log()


def test_sweep_finds_a_lost_job_and_resuming_it_completes_it(harness: Harness) -> None:
    lost = _job("FAULT-LOST")
    record_job(harness.store, parse_job(lost))  # in the outbox, never reached the queue
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=20)
    [entry] = sweep(harness.store, harness.tracker, dt.timedelta(minutes=10), now=later)
    assert entry.status == "stuck" and entry.record.idempotency_key == lost["idempotency_key"]

    worker = harness.worker()
    harness.enqueue(entry.record.job)
    wait_for(lambda: harness.recorded(lost), timeout=180, alive=worker.process)
    assert sweep(harness.store, harness.tracker, dt.timedelta(minutes=10), now=later) == []
