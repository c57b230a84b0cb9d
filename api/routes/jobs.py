"""``POST /jobs`` and ``GET /jobs/{job_id}``: producers submit document jobs and follow them.

A job is read with ``parse_job`` (the workers' own validation), checked against the dossier's
state (``Tracker.check``: a step out of order is refused now with 409 instead of failing in the
queue) and enqueued with ``workers.submit.submit_job``. The ``Idempotency-Key`` header makes the
request safe to retry (``api.idempotency``). A job record under ``api/jobs/<job_id>.json`` lets
``GET /jobs/{job_id}`` say whether the job is queued, completed (its ledger event), failed for
good (its dead-letter record) or, signed elsewhere, awaiting the signer's signed PDF (its signing
request).
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import nullcontext
from typing import Annotated, Any

import dramatiq.errors
import redis.exceptions
from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from kmop.errors import ObjectExists, ObjectNotFound
from kmop.jobs import parse_job
from kmop.signing_requests import issued_request_id
from workers.dead_letters import dead_letter_key
from workflow.tracker import DOCUMENT_STORED

from ..app import Services, services_of
from ..auth import ApiRole, Principal, require
from ..bodies import read_json
from ..dossiers import recorded_document
from ..errors import ApiError, error_responses, not_found
from ..idempotency import KEY_PATTERN, fingerprint
from ..models import UUID_PATTERN, DocumentInfo, JobAccepted, JobError, JobStatus, job_schema
from ..settings import MAX_JOB_BYTES
from ..webhook_targets import WebhookTargetRefused, WebhookTargetUnresolved

router = APIRouter(tags=["jobs"])

JOBS_PREFIX = "api/jobs/"
_SCOPE = "service POST /jobs"


def _job_record_key(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}.json"


def _check_webhook(services: Services, url: str | None) -> None:
    """The URL's form and the address it resolves to now (``api.webhook_targets``); the worker
    checks it again at each delivery."""
    if url is None:
        return
    if services.settings.webhook_secret is None:
        raise ApiError(422, "webhooks_not_configured", "webhooks are not configured on this service (KMOP_WEBHOOK_SECRET)",
                       field="Webhook-URL", reason="webhooks are not configured")
    try:
        services.webhook_targets.target(url)
    except (WebhookTargetRefused, WebhookTargetUnresolved) as exc:
        raise ApiError(422, "invalid_request", f"Webhook-URL: {exc}", field="Webhook-URL", reason=str(exc)) from None


def _enqueue(services: Services, key: str, request_hash: str, payload: Any, webhook_url: str | None) -> tuple[dict, bool]:
    """The answer for this request and whether it is a replay of an earlier one."""
    from workers.submit import submit_job

    from ..callbacks import with_webhook

    replay = services.idempotency.replay(_SCOPE, key, request_hash)
    if replay is not None:
        return replay.body, True
    job = parse_job(payload)
    _check_webhook(services, webhook_url)
    if services.tracker.find(job.dossier_id, job.idempotency_key) is None:
        services.tracker.check(job.dossier_id, job.kind, job.role, job.data)
    services.idempotency.claim(_SCOPE, key, request_hash)
    try:
        with with_webhook(webhook_url) if webhook_url else nullcontext():
            message = submit_job(job)
    except (redis.exceptions.RedisError, dramatiq.errors.BrokerError) as exc:
        raise ApiError(503, "broker_unavailable", "the job queue cannot be reached; try again later",
                       headers={"Retry-After": "5"}) from exc
    accepted = JobAccepted(
        job_id=message.message_id, status="queued", dossier_id=job.dossier_id, kind=job.kind,
        idempotency_key=job.idempotency_key, webhook_url=webhook_url,
        submitted_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    ).model_dump()
    try:
        services.store.put_once(_job_record_key(message.message_id), json.dumps(accepted).encode(), "application/json")
    except ObjectExists:
        pass
    stored = services.idempotency.complete(_SCOPE, key, request_hash, 202, accepted)
    return stored.body, stored.body["job_id"] != message.message_id


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    summary="Submit a document job",
    description=(
        "Validates the job exactly as the workers do (api/schemas/job.schema.json; the data against "
        "templates/<kind>/schema.json), checks that the dossier's state allows it, and queues it. "
        "The same Idempotency-Key with the same body (and Webhook-URL) returns the first answer "
        "(header Idempotent-Replayed: true); with another body it is refused with 422."
    ),
    responses=error_responses(400, 401, 403, 409, 413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": job_schema()}}}},
)
async def submit(
    request: Request,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", pattern=KEY_PATTERN,
                                           description="1-255 printable ASCII characters; one per distinct request")],
    principal: Annotated[Principal, Depends(require(ApiRole.SERVICE))],
    webhook_url: Annotated[str | None, Header(alias="Webhook-URL", max_length=2000,
                                              description="optional: where to POST job.completed / job.failed")] = None,
) -> JSONResponse:
    payload = await read_json(request, MAX_JOB_BYTES)
    request_hash = fingerprint({"job": payload, "webhook_url": webhook_url})
    services = services_of(request)
    body, replayed = await run_in_threadpool(_enqueue, services, idempotency_key, request_hash, payload, webhook_url)
    headers = {"Location": f"/jobs/{body['job_id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=202, headers=headers)


@router.get(
    "/jobs/{job_id}",
    response_model=JobStatus,
    summary="A submitted job: queued, completed (with its document) or failed (with the reason)",
    responses=error_responses(401, 403, 404, 422, 503),
)
def job_status(
    request: Request,
    job_id: Annotated[str, Path(pattern=UUID_PATTERN, description="the job_id POST /jobs returned")],
    principal: Annotated[Principal, Depends(require(ApiRole.SERVICE))],
) -> JobStatus:
    services = services_of(request)
    try:
        record = json.loads(services.store.get(_job_record_key(job_id)))
    except ObjectNotFound:
        raise not_found(f"job {job_id}") from None
    status = JobStatus(**{k: record[k] for k in ("job_id", "dossier_id", "kind", "idempotency_key", "submitted_at")},
                       status="queued")
    event = services.tracker.find(record["dossier_id"], record["idempotency_key"])
    if event is not None:
        status.status = "completed"
        if event.type == DOCUMENT_STORED:
            status.document = DocumentInfo(**recorded_document(event).to_dict(record["dossier_id"]))
        return status
    try:
        letter = json.loads(services.store.get(dead_letter_key(job_id)))
    except ObjectNotFound:
        return _awaiting_signature(services, status)
    status.status = "failed"
    status.error = JobError(type=letter["error_type"], reason=letter["reason"])
    return status


def _awaiting_signature(services: Services, status: JobStatus) -> JobStatus:
    """A queued job whose document is issued to be signed elsewhere waits for the signer."""
    request_id = issued_request_id(services.store, status.dossier_id, status.idempotency_key)
    if request_id is not None:
        status.status = "awaiting_signature"
        status.signing_request = f"/dossiers/{status.dossier_id}/signing-requests/{request_id}"
    return status
