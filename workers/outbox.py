"""The job outbox: every submitted job is written to storage before it is enqueued.

The broker may lose a message (Redis restarted without persistence, a producer crash between
writing and enqueueing, a message dead-lettered and expired); the outbox does not. A sweep
(``workers.sweep``) compares the outbox with the dossiers' ledgers and the dead letters, and
finds every job that is neither done nor visibly failed.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from kmop.errors import InvalidJob, ObjectExists
from kmop.jobs import DocumentJob
from storage.base import DocumentStore
from storage.keys import JOBS_PREFIX, job_record_key


@dataclass(frozen=True)
class JobRecord:
    job: dict[str, Any]
    submitted_at: str

    @property
    def dossier_id(self) -> str:
        return self.job["dossier_id"]

    @property
    def idempotency_key(self) -> str:
        return self.job["idempotency_key"]


def record_job(store: DocumentStore, job: DocumentJob, now: dt.datetime | None = None) -> JobRecord:
    """Write the job once; the same job again is fine, another job under its key is refused."""
    message = job.to_message()
    key = job_record_key(job.dossier_id, job.idempotency_key)
    at = (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
    body = json.dumps({"job": message, "submitted_at": at}, sort_keys=True, ensure_ascii=False).encode()
    try:
        store.put_once(key, body, "application/json")
    except ObjectExists:
        existing = json.loads(store.get(key))
        if existing["job"] != message:
            raise InvalidJob("idempotency_key", "was already used for a different job") from None
        return JobRecord(existing["job"], existing["submitted_at"])
    return JobRecord(message, at)


def job_records(store: DocumentStore) -> list[JobRecord]:
    records = []
    for key in store.list(JOBS_PREFIX):
        raw = json.loads(store.get(key))
        records.append(JobRecord(raw["job"], raw["submitted_at"]))
    return records
