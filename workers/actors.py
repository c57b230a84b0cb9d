"""The dramatiq actors. Thin: decode the job, run the pipeline (or issue the document to be
signed elsewhere), log the outcome."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

from kmop.jobs import DocumentJob, parse_job
from kmop.observability import observe_result

from .broker import QUEUE, install_broker
from .runtime import get_runtime

install_broker()

logger = logging.getLogger("kmop.worker")


@dramatiq.actor(queue_name=QUEUE, actor_name="generate_document")
def generate_document(job: dict[str, Any]) -> None:
    parsed = parse_job(job)
    if parsed.signed_elsewhere:
        issue_signing_request(parsed)
        return
    result = get_runtime().pipeline.run(parsed)
    observe_result(result)
    logger.info(
        "document %s %s v%d sha256=%s created=%s",
        result.dossier_id, result.kind, result.version, result.sha256, result.created,
        extra={"stages_ms": {stage: round(seconds * 1000, 1) for stage, seconds in vars(result.timings).items()}},
    )


def issue_signing_request(job: DocumentJob) -> None:
    from kmop.signing_requests import SigningRequests

    runtime = get_runtime()
    pipeline = runtime.pipeline
    request = SigningRequests(runtime.store, pipeline.tracker, pipeline.converter).issue(job)
    logger.info("signing request %s issued for %s %s sha256=%s",
                request.request_id, request.dossier_id, request.kind, request.sha256)
