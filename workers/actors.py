"""The dramatiq actors. Thin: decode the job, run the pipeline, log the outcome."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

from kmop.jobs import parse_job
from kmop.observability import observe_result

from .broker import QUEUE, install_broker
from .runtime import get_runtime

install_broker()

logger = logging.getLogger("kmop.worker")


@dramatiq.actor(queue_name=QUEUE, actor_name="generate_document")
def generate_document(job: dict[str, Any]) -> None:
    parsed = parse_job(job)
    result = get_runtime().pipeline.run(parsed)
    observe_result(result)
    logger.info(
        "document %s %s v%d sha256=%s created=%s",
        result.dossier_id, result.kind, result.version, result.sha256, result.created,
    )
