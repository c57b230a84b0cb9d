"""Enqueues document jobs after validating them: an invalid job never reaches the queue."""

from __future__ import annotations

from typing import Any

import dramatiq

from kmop.jobs import DocumentJob, parse_job


def submit_job(payload: dict[str, Any] | DocumentJob) -> dramatiq.Message:
    from .actors import generate_document

    job = payload if isinstance(payload, DocumentJob) else parse_job(payload)
    return generate_document.send(job.to_message())
