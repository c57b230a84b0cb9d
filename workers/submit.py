"""Enqueues document jobs after validating them: an invalid job never reaches the queue.

Each job is first written to the outbox (``workers.outbox``) in the document store, so that a
message the broker loses is still found by the sweep.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import dramatiq

from kmop.jobs import DocumentJob, parse_job
from storage.base import DocumentStore

from .outbox import record_job


@cache
def _configured_store() -> DocumentStore:
    from kmop.settings import load_settings

    from .factories import store_from_settings

    return store_from_settings(load_settings())


def submit_job(payload: dict[str, Any] | DocumentJob, store: DocumentStore | None = None) -> dramatiq.Message:
    from .actors import generate_document

    job = payload if isinstance(payload, DocumentJob) else parse_job(payload)
    record_job(store or _configured_store(), job)
    return generate_document.send(job.to_message())


def requeue(job: dict[str, Any]) -> dramatiq.Message:
    """Send a recorded job again (after a dead letter or a sweep); validated like a new one."""
    from .actors import generate_document

    return generate_document.send(parse_job(job).to_message())
