"""The pipeline on real parts: LibreOffice pool, pyHanko, moto's S3 server over HTTP, the ledger."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from kmop.demo import example_applicant
from kmop.scenario import dossier_steps
from kmop.errors import RenderError, StepOutOfOrder
from kmop.jobs import DocumentJob, parse_job
from kmop.pipeline import Pipeline
from signing.roles import Role
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from signing.verify import verify_pdf
from storage.keys import document_prefix
from workflow.ledger import Ledger
from workflow.steps import KNOWLEDGE_TEST_PASSED, Phase
from workflow.tracker import Tracker
from tests.pdftools import pdfsig, pdftotext
from tests.support.pipeline import sworn_job as _job

HOSTILE_NAME = 'Raad & Daad <Cyber> "BV" \'t Zoë Łódź 東京'


def _documents(store, dossier_id: str) -> list:
    return [e for e in Ledger(store).history(dossier_id) if e.type == "document_stored"]


def _pdf_keys(store, job: DocumentJob) -> list[str]:
    return store.list(document_prefix(job.dossier_id, job.document_kind.step, job.kind))


def test_job_becomes_signed_pdf_in_s3(pipeline: Pipeline, s3_store, identities, nss_dir: Path,
                                      tmp_path: Path) -> None:
    job = _job(name=HOSTILE_NAME)
    result = pipeline.run(job)

    raw = s3_store.client.get_object(Bucket=s3_store.bucket, Key=result.key)
    body = raw["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result.sha256
    assert raw["ContentType"] == "application/pdf"
    assert {name.lower(): value for name, value in raw["Metadata"].items()}["sha256"] == result.sha256
    assert result.key == "dossiers/DEMO-2026-0001/documents/01-sworn_statement/v0001.pdf"

    path = tmp_path / "out.pdf"
    path.write_bytes(body)
    assert "Signature is Valid" in pdfsig(path, nss_dir)
    assert verify_pdf(body, identities.trust_roots).ok
    text = pdftotext(path)
    assert HOSTILE_NAME in text
    assert b"<pdfaid:part>2</pdfaid:part>" in body or b"pdfaid:part=\"2\"" in body


def test_redelivered_job_creates_one_object_and_one_event(pipeline: Pipeline, s3_store, converter) -> None:
    job = _job()
    before = pipeline.tracker.history(job.dossier_id)
    first = pipeline.run(job)
    second = pipeline.run(job)
    assert second.key == first.key and second.sha256 == first.sha256
    assert (first.created, second.created) == (True, False)
    assert converter.calls == 2  # converted beside the history read, then dropped: the job was done
    # A redelivery that gets as far as the store, on the history as it is now (its own event is
    # there) and on the history it read before the first delivery recorded (a twin's object)
    for known in (None, before):
        again, created = pipeline.versions.store_once(job, b"%PDF-1.7 made again", known)
        assert (again.key, again.sha256, created) == (first.key, first.sha256, False)
    assert _pdf_keys(s3_store, job) == [first.key]
    assert [e.idempotency_key for e in _documents(s3_store, job.dossier_id)] == [job.idempotency_key]


def test_crash_between_store_and_record_is_completed_by_next_attempt(
    pipeline: Pipeline, s3_store, converter
) -> None:
    job = _job()
    stored, created = pipeline.versions.store_once(job, b"%PDF-1.7 stored before a crash")
    assert created and _documents(s3_store, job.dossier_id) == []

    result = pipeline.run(job)  # made again, then the earlier one is found at its version
    assert result.key == stored.key and not result.created
    assert converter.calls == 1
    assert _pdf_keys(s3_store, job) == [stored.key]
    [event] = _documents(s3_store, job.dossier_id)
    assert event.payload["sha256"] == stored.sha256


def test_store_on_a_stale_history_steps_over_the_version_recorded_since(pipeline: Pipeline, s3_store) -> None:
    """The pipeline stores on the history it read before making the document; a version taken
    since then is found by the conditional create and stepped over, never overwritten."""
    from storage.keys import version_of

    stale = pipeline.tracker.history("dossier-1")
    first = pipeline.run(_job("dossier-1:sworn:1"))
    stored, created = pipeline.versions.store_once(_job("dossier-1:sworn:other"), b"%PDF-1.7 other", stale)
    assert created and (version_of(first.key), version_of(stored.key)) == (1, 2)
    assert s3_store.get(first.key) != b"%PDF-1.7 other"


def test_a_job_refused_on_the_recent_history_is_decided_again_on_the_whole_history(
    pipeline: Pipeline, s3_store, converter
) -> None:
    """The pipeline's worker knows the dossier up to the knowledge test; another worker then
    records the sworn statement without telling it (no shared cache): the quote, refused on what
    the first worker knows, is decided again on the dossier's whole history and made."""
    sworn, quote = [step for step in dossier_steps(example_applicant()) if isinstance(step, DocumentJob)][:2]
    assert [e.type for e in pipeline.tracker.recent_history(sworn.dossier_id)] == [KNOWLEDGE_TEST_PASSED]
    Pipeline(s3_store, converter, pipeline.signer, Tracker(Ledger(s3_store))).run(sworn)

    result = pipeline.run(quote)
    assert result.created and result.kind == "quote" and result.event_sequence == 3


def test_a_redelivered_job_the_recent_history_misses_creates_nothing(pipeline: Pipeline, s3_store) -> None:
    job = _job()
    pipeline.tracker.recent_history(job.dossier_id)  # knows the dossier up to the knowledge test
    other = Pipeline(s3_store, pipeline.converter, pipeline.signer, Tracker(Ledger(s3_store)))
    first = other.run(job)  # by a worker that died before telling anyone

    again = pipeline.run(job)
    assert (again.key, again.sha256, again.event_sequence, again.created) == (
        first.key, first.sha256, first.event_sequence, False)
    assert _pdf_keys(s3_store, job) == [first.key]
    assert [e.idempotency_key for e in _documents(s3_store, job.dossier_id)] == [job.idempotency_key]


def test_same_step_twice_is_refused_and_changes_nothing(pipeline: Pipeline, s3_store, converter) -> None:
    first = pipeline.run(_job("dossier-1:sworn:1"))
    history = Ledger(s3_store).history(first.dossier_id)
    with pytest.raises(StepOutOfOrder, match="expected next: quote"):
        pipeline.run(_job("dossier-1:sworn:2"))
    assert Ledger(s3_store).history(first.dossier_id) == history
    assert _pdf_keys(s3_store, _job()) == [first.key]
    assert converter.calls == 2  # the refused job's conversion (beside its history read) was dropped
    assert pipeline.tracker.state(first.dossier_id).phase is Phase.SUBMITTED


def test_a_render_error_counts_only_for_a_job_still_to_be_made_in_order(
    pipeline: Pipeline, s3_store, converter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The render runs beside the history read: its error must not hide what the history says.
    done = pipeline.run(_job("dossier-1:sworn:1"))

    def broken(*args: Any) -> bytes:
        raise RenderError("template 'sworn_statement' needs a value the data does not give")

    monkeypatch.setattr("kmop.pipeline.render_docx", broken)
    again = pipeline.run(_job("dossier-1:sworn:1"))  # redelivered: done already
    assert (again.key, again.created) == (done.key, False)
    with pytest.raises(StepOutOfOrder, match="expected next: quote"):  # out of order first
        pipeline.run(_job("dossier-1:sworn:2"))
    fresh = parse_job({**_job().to_message(), "dossier_id": "DEMO-2026-0002", "idempotency_key": "d2:sworn:1"})
    pipeline.tracker.record_fact("DEMO-2026-0002", KNOWLEDGE_TEST_PASSED, Role.APPLICANT,
                                 {"passed_on": "2026-10-28"}, "knowledge-test-2")
    with pytest.raises(RenderError):
        pipeline.run(fresh)
    assert converter.calls == 1  # nothing rendered, so nothing converted
    assert _documents(s3_store, "DEMO-2026-0002") == []


def test_racing_twins_of_one_job_store_once(pipeline: Pipeline, s3_store) -> None:
    job = _job()
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(pipeline.run(job))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({r.key for r in results}) == 1
    assert len(_pdf_keys(s3_store, job)) == 1
    assert len(_documents(s3_store, job.dossier_id)) == 1


def test_a_job_takes_the_dossier_lock_once_for_store_and_record(s3_store, converter, identities, redis_client,
                                                                monkeypatch) -> None:
    import uuid

    import redis

    from workflow.locks import RedisDossierLock

    lock = RedisDossierLock(redis_client, namespace=f"test-{uuid.uuid4().hex[:8]}")
    tracker = Tracker(Ledger(s3_store, lock=lock))
    tracker.record_fact("DEMO-2026-0001", KNOWLEDGE_TEST_PASSED, Role.APPLICANT,
                        {"passed_on": "2026-10-28"}, "knowledge-test")
    pipeline = Pipeline(s3_store, converter, DocumentSigner(identities, timestamper_for(None, identities)), tracker)
    taken: list[str] = []
    acquire = redis.lock.Lock.acquire

    def counted(self, *args: Any, **kwargs: Any) -> bool:
        taken.append(self.name)
        return acquire(self, *args, **kwargs)

    monkeypatch.setattr(redis.lock.Lock, "acquire", counted)
    job = _job()
    result = pipeline.run(job)
    assert result.created and len(_documents(s3_store, job.dossier_id)) == 1
    assert taken == [f"{lock.namespace}:ledger-lock:{job.dossier_id}"]
