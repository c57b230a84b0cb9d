"""Observability: JSON log lines carry the job and dossier ids, metrics move when jobs run, the
health check names the part that is down.

Jobs run through a real dramatiq ``Worker`` on a ``StubBroker`` (in-process) with a fake pipeline,
so what is tested is the middleware and the formatter, not LibreOffice or S3. The health check
is tested against the real parts: the machine's Redis (only pinged), moto's S3 server, the
session's LibreOffice pool, and ports where nothing listens.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries
from prometheus_client import REGISTRY

from conversion import PoolStats
from kmop import observability
from kmop.errors import InvalidJob, StorageUnavailable
from kmop.observability import JsonFormatter, check_health, configure_logging, job_context, observe_result
from kmop.pipeline import DocumentResult, StageTimings
from kmop.settings import load_settings
from workers.middleware_metrics import JobLogContext, JobMetrics
from workers.retry_policy import make_retry_when

REPO = Path(__file__).resolve().parent.parent
QUEUE = "observability-test"
MARK = "in-job"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _job(dossier_id: str = "DOSSIER-OBS-1", kind: str = "sworn_statement") -> dict[str, Any]:
    return {"dossier_id": dossier_id, "kind": kind, "data": {}, "idempotency_key": f"{dossier_id}:01:{kind}"}


def _result(job: dict[str, Any]) -> DocumentResult:
    return DocumentResult(
        dossier_id=job["dossier_id"], kind=job["kind"], step=1,
        key=f"dossiers/{job['dossier_id']}/documents/01-{job['kind']}/v0001.pdf", version=1,
        sha256="0" * 64, size=1234, idempotency_key=job["idempotency_key"], event_sequence=2,
        created=True, timings=StageTimings(render=0.02, convert=0.3, sign=0.1, store=0.05, record=0.01),
    )


class FakePipeline:
    """Logs from its own logger like the real stages do, then returns a result (or raises)."""

    log = logging.getLogger("kmop.pipeline.fake")

    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.fail_with = fail_with

    def run(self, job: dict[str, Any]) -> DocumentResult:
        self.log.info("%s: rendering", MARK)
        self.log.warning("%s: a value with\na line break", MARK)
        if self.fail_with is not None:
            raise self.fail_with
        return _result(job)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every record logged while the test runs, formatted by JsonFormatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


class StubWorker:
    """A StubBroker with the observability middleware, one actor over a fake pipeline, a Worker."""

    def __init__(self, pipeline: FakePipeline, pool_stats: Any = None, max_retries: int = 1) -> None:
        self.broker = StubBroker(middleware=[
            JobLogContext(),
            JobMetrics(pool_stats=pool_stats),
            Retries(max_retries=max_retries, min_backoff=10, max_backoff=20,
                    retry_when=make_retry_when(max_retries)),
        ])
        self.broker.emit_after("process_boot")

        def generate_document(job: dict[str, Any]) -> None:
            result = pipeline.run(job)
            observe_result(result)
            logging.getLogger("kmop.worker").info("%s: document %s v%d", MARK, result.kind, result.version)

        self.actor = dramatiq.actor(generate_document, broker=self.broker, queue_name=QUEUE,
                                    actor_name=f"generate_document_{uuid.uuid4().hex[:8]}")
        self.worker = dramatiq.Worker(self.broker, worker_threads=1, worker_timeout=50)

    def run(self, *jobs: dict[str, Any]) -> list[dramatiq.Message]:
        self.worker.start()
        try:
            messages = [self.actor.send(job) for job in jobs]
            self.broker.join(QUEUE, fail_fast=False, timeout=30_000)
            self.worker.join()
        finally:
            self.worker.stop()
            self.broker.close()
        return messages


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


# --- logs -----------------------------------------------------------------------------------


def test_every_line_logged_during_a_job_carries_its_job_and_dossier_id(log_lines: io.StringIO) -> None:
    logging.getLogger("kmop.test").info("before any job")
    first, second = _job("DOSSIER-OBS-1"), _job("DOSSIER-OBS-2", "quote")
    messages = StubWorker(FakePipeline()).run(first, second)
    logging.getLogger("kmop.test").info("after the jobs")

    records = _records(log_lines)
    in_job = [r for r in records if r["message"].startswith(MARK)]
    assert len(in_job) == 6  # three lines per job
    by_message = {m.message_id: m.args[0] for m in messages}
    for record in in_job:
        job = by_message[record["job_id"]]
        assert record["dossier_id"] == job["dossier_id"]
        assert record["kind"] == job["kind"]
        assert record["idempotency_key"] == job["idempotency_key"]
    assert {r["job_id"] for r in in_job} == set(by_message)
    outside = [r for r in records if r["message"] in ("before any job", "after the jobs")]
    assert len(outside) == 2 and all("job_id" not in r for r in outside)


def test_dramatiq_lines_about_a_retried_job_carry_its_ids(log_lines: io.StringIO) -> None:
    messages = StubWorker(FakePipeline(StorageUnavailable("S3 endpoint down")), max_retries=1).run(_job())
    records = _records(log_lines)
    retrying = [r for r in records if r["logger"].startswith("dramatiq.middleware.retries")]
    assert retrying, [r["message"] for r in records]
    for record in retrying + [r for r in records if r["message"].startswith(MARK)]:
        assert record["job_id"] == messages[0].message_id
        assert record["dossier_id"] == "DOSSIER-OBS-1"


def test_log_line_is_one_json_object_even_for_hostile_values() -> None:
    formatter = JsonFormatter()
    record = logging.makeLogRecord({"name": "kmop.test", "levelname": "ERROR", "levelno": 40,
                                    "msg": "line one\nline two \u2028 \u202eevil", "args": (),
                                    "order": {"n": 1}})
    with job_context(job_id="m-1", dossier_id="D" * 10_000, kind=["not", "a", "string"]):
        line = formatter.format(record)
    assert "\n" not in line and line.isascii()
    entry = json.loads(line)
    assert entry["message"] == "line one\nline two \u2028 \u202eevil"
    assert entry["job_id"] == "m-1"
    assert len(entry["dossier_id"]) == 128  # cut: a message's fields come from anyone
    assert "kind" not in entry  # only strings are bound
    assert entry["order"] == {"n": 1}  # extra= fields are kept


def test_exception_is_a_field_of_the_line() -> None:
    formatter = JsonFormatter()
    try:
        raise InvalidJob("data.provider.name", "is required")
    except InvalidJob:
        record = logging.getLogger("kmop.test").makeRecord(
            "kmop.test", logging.ERROR, __file__, 1, "job refused", (), sys.exc_info())
    entry = json.loads(formatter.format(record))
    assert "InvalidJob: data.provider.name: is required" in entry["exception"]


def test_configure_logging_replaces_the_handlers_with_json_lines() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging("DEBUG", stream=stream)
        with job_context(job_id="m-2", dossier_id="D-2"):
            logging.getLogger("kmop.test").debug("configured")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)
    [entry] = _records(stream)
    assert entry["message"] == "configured" and entry["level"] == "DEBUG"
    assert entry["job_id"] == "m-2" and entry["dossier_id"] == "D-2"


# --- metrics --------------------------------------------------------------------------------


def test_metrics_count_started_done_and_time_each_stage() -> None:
    before = {
        "started": _sample("kmop_jobs_started_total", kind="sworn_statement"),
        "done": _sample("kmop_jobs_done_total", kind="sworn_statement"),
        "convert": _sample("kmop_stage_duration_seconds_count", stage="convert", kind="sworn_statement"),
        "convert_sum": _sample("kmop_stage_duration_seconds_sum", stage="convert", kind="sworn_statement"),
        "stored": _sample("kmop_documents_stored_total", kind="sworn_statement"),
        "attempt": _sample("kmop_job_duration_seconds_count", kind="sworn_statement"),
    }
    StubWorker(FakePipeline()).run(_job("DOSSIER-M-1"), _job("DOSSIER-M-2"))

    assert _sample("kmop_jobs_started_total", kind="sworn_statement") == before["started"] + 2
    assert _sample("kmop_jobs_done_total", kind="sworn_statement") == before["done"] + 2
    assert _sample("kmop_stage_duration_seconds_count", stage="convert", kind="sworn_statement") == before["convert"] + 2
    assert _sample("kmop_stage_duration_seconds_sum", stage="convert", kind="sworn_statement") == pytest.approx(
        before["convert_sum"] + 0.6)
    assert _sample("kmop_documents_stored_total", kind="sworn_statement") == before["stored"] + 2
    assert _sample("kmop_job_duration_seconds_count", kind="sworn_statement") == before["attempt"] + 2


def test_metrics_count_a_transient_failure_as_retried_then_failed() -> None:
    labels = {"kind": "quote", "error": "StorageUnavailable"}
    retried = _sample("kmop_jobs_retried_total", **labels)
    failed = _sample("kmop_jobs_failed_total", **labels)
    started = _sample("kmop_jobs_started_total", kind="quote")

    StubWorker(FakePipeline(StorageUnavailable("S3 endpoint down")), max_retries=1).run(_job(kind="quote"))

    assert _sample("kmop_jobs_started_total", kind="quote") == started + 2  # first try and one retry
    assert _sample("kmop_jobs_retried_total", **labels) == retried + 1
    assert _sample("kmop_jobs_failed_total", **labels) == failed + 1


def test_invalid_job_fails_at_once_and_a_hostile_kind_gets_no_label_of_its_own() -> None:
    hostile_kind = "x" * 300
    labels = {"kind": "unknown", "error": "InvalidJob"}
    failed = _sample("kmop_jobs_failed_total", **labels)
    retried = _sample("kmop_jobs_retried_total", **labels)

    StubWorker(FakePipeline(InvalidJob("kind", "unknown document kind")), max_retries=3).run(
        _job(kind=hostile_kind))

    assert _sample("kmop_jobs_failed_total", **labels) == failed + 1
    assert _sample("kmop_jobs_retried_total", **labels) == retried
    assert _sample("kmop_jobs_started_total", kind=hostile_kind) == 0


def test_converter_pool_counters_follow_its_stats() -> None:
    stats = iter([PoolStats(size=2, conversions=3, restarts=1, timeouts=0, crashes=1),
                  PoolStats(size=2, conversions=5, restarts=2, timeouts=1, crashes=1)])
    # this process's pool as new (another test may have shown it counts already): counts from zero
    observability.observe_pool(PoolStats(size=2, conversions=0, restarts=0, timeouts=0, crashes=0))
    before = {name: _sample(f"kmop_converter_{name}_total") for name in ("conversions", "restarts", "timeouts", "crashes")}

    StubWorker(FakePipeline(), pool_stats=lambda: next(stats)).run(_job("DOSSIER-P-1"), _job("DOSSIER-P-2"))

    assert _sample("kmop_converter_conversions_total") - before["conversions"] == 5
    assert _sample("kmop_converter_restarts_total") - before["restarts"] == 2
    assert _sample("kmop_converter_timeouts_total") - before["timeouts"] == 1
    assert _sample("kmop_converter_crashes_total") - before["crashes"] == 1
    assert _sample("kmop_converter_pool_size") == 2


def test_metrics_endpoint_serves_the_counters() -> None:
    port = _free_port()
    server = observability.start_metrics_server(port, address="127.0.0.1")
    try:
        observability.JOBS_DONE.labels(kind="audit_report").inc()
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'kmop_jobs_done_total{kind="audit_report"}' in body
    assert "kmop_stage_duration_seconds_bucket" in body or "kmop_stage_duration_seconds" in body


_COUNT_ONE_JOB = """
import sys
from kmop import observability
observability.JOBS_DONE.labels(kind="quote").inc(int(sys.argv[1]))
observability.CONVERTER_POOL_SIZE.set(1)
"""


def test_multiprocess_mode_sums_every_worker_process(tmp_path: Path) -> None:
    """Two worker processes count in PROMETHEUS_MULTIPROC_DIR; the fork that serves the metrics
    (workers.middleware_metrics.serve_metrics, as dramatiq starts it) shows their sum."""
    directory = observability.prepare_multiprocess_dir(tmp_path / "prometheus")
    port = _free_port()
    env = {**os.environ, observability.MULTIPROC_ENV: str(directory),
           observability.METRICS_PORT_ENV: str(port), "PYTHONPATH": str(REPO)}
    for count in ("2", "3"):
        subprocess.run([sys.executable, "-c", _COUNT_ONE_JOB, count], env=env, check=True, timeout=60)
    server = subprocess.Popen([sys.executable, "-c", "from workers.middleware_metrics import serve_metrics; "
                               "serve_metrics()"], env=env, cwd=REPO)
    try:
        body = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not body:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                assert server.poll() is None, "the metrics server exited"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert 'kmop_jobs_done_total{kind="quote"} 5.0' in body


# --- health ---------------------------------------------------------------------------------


def _settings(**env: str):  # type: ignore[no-untyped-def]
    base = {"KMOP_BROKER": "redis", "KMOP_STORAGE": "s3",
            "AWS_ACCESS_KEY_ID": os.environ.get("KMOP_TEST_S3_ACCESS_KEY", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("KMOP_TEST_S3_SECRET_KEY", "testing")}
    return load_settings({**base, **env})


@pytest.fixture
def healthy(s3_store, s3_endpoint: str, redis_url: str):  # type: ignore[no-untyped-def]
    return _settings(KMOP_REDIS_URL=redis_url, KMOP_S3_ENDPOINT=s3_endpoint, KMOP_S3_BUCKET=s3_store.bucket)


def test_health_passes_when_redis_storage_and_converter_are_up(healthy, converter_pool) -> None:
    report = check_health(healthy, pool=converter_pool)
    assert report.ok, report.to_dict()
    assert [c.name for c in report.checks] == ["redis", "storage", "converter"]
    assert "instances running" in report.checks[2].detail


def test_health_finds_libreoffice_without_a_pool(healthy) -> None:
    report = check_health(healthy)
    assert report.ok, report.to_dict()


def test_health_fails_naming_redis_when_nothing_listens(healthy) -> None:
    settings = _settings(KMOP_REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0",
                         KMOP_S3_ENDPOINT=healthy.s3_endpoint, KMOP_S3_BUCKET=healthy.s3_bucket)
    report = check_health(settings, timeout=2)
    assert not report.ok and report.failing == ["redis"], report.to_dict()
    assert "ConnectionError" in report.checks[0].detail


def test_health_fails_naming_storage_when_the_endpoint_is_down(healthy) -> None:
    settings = _settings(KMOP_REDIS_URL=healthy.redis_url, KMOP_S3_ENDPOINT=f"http://127.0.0.1:{_free_port()}",
                         KMOP_S3_BUCKET="kmop-documents")
    report = check_health(settings, timeout=2)
    assert report.failing == ["storage"], report.to_dict()
    assert "could not be reached" in report.checks[1].detail


def test_health_fails_naming_storage_when_the_bucket_is_missing(healthy) -> None:
    settings = _settings(KMOP_REDIS_URL=healthy.redis_url, KMOP_S3_ENDPOINT=healthy.s3_endpoint,
                         KMOP_S3_BUCKET=f"missing-{uuid.uuid4().hex}")
    report = check_health(settings, timeout=2)
    assert report.failing == ["storage"], report.to_dict()


def test_health_fails_naming_storage_when_the_local_folder_is_missing(tmp_path: Path) -> None:
    settings = load_settings({"KMOP_BROKER": "stub", "KMOP_STORAGE": "local",
                              "KMOP_LOCAL_STORAGE_DIR": str(tmp_path / "absent")})
    report = check_health(settings)
    assert report.failing == ["storage"], report.to_dict()
    assert report.checks[0].ok and "not used" in report.checks[0].detail
    assert not (tmp_path / "absent").exists()  # a probe creates nothing


def test_health_fails_naming_the_converter_when_libreoffice_is_missing(healthy, monkeypatch) -> None:
    monkeypatch.setenv("KMOP_SOFFICE", "/nonexistent/soffice")
    report = check_health(healthy)
    assert report.failing == ["converter"], report.to_dict()
    assert "/nonexistent/soffice" in report.checks[2].detail


def test_health_fails_naming_the_converter_when_its_pool_is_closed(healthy) -> None:
    from conversion import ConverterPool

    pool = ConverterPool(size=1)  # never started: no LibreOffice runs
    pool.close()
    report = check_health(healthy, pool=pool)
    assert report.failing == ["converter"], report.to_dict()
