"""Webhooks on a job's completion or failure: detected in the worker, signed, retried, recorded.

A job submitted with a webhook URL (``POST /jobs`` with ``Webhook-URL``) carries dramatiq's
callback options: ``on_success`` and ``on_failure`` name the actors below, and ``webhook_url``
the receiver. The API stamps them on the message as it is enqueued (``api.callbacks``), so
``submit_job`` stays the one way jobs are enqueued. In the worker, dramatiq's ``Callbacks``
middleware enqueues them after the job:

- ``kmop_job_succeeded`` reads the job's ledger event and sends a ``job.completed`` event with the
  document (name, SHA-256, size) and the dossier's phase;
- ``kmop_job_failed`` runs after every failed attempt, but sends ``job.failed`` only once the job
  has failed for good, which the dead-letter record under ``dead-letters/`` proves (the
  ``DeadLetterRecorder`` writes it before ``Callbacks`` runs); attempts that will be retried
  send nothing.

``kmop_deliver_webhook`` POSTs the event as JSON, signed as ``api.webhook_signature`` describes,
and records every attempt under ``api/webhooks/<dossier>/<event id>/`` (``GET /webhooks/deliveries``
lists them). A non-2xx answer or a network error is retried by dramatiq's ``Retries`` with
exponential backoff (``KMOP_WEBHOOK_MIN_BACKOFF_MS`` 5 s doubling up to
``KMOP_WEBHOOK_MAX_BACKOFF_MS`` 1 h, at most ``KMOP_WEBHOOK_MAX_RETRIES`` 8 retries), then
dead-lettered like a failed job. An event already delivered is not sent again; a receiver may
still see one twice (a worker killed after the POST) and de-duplicates on ``webhook-id``.

The worker signs with ``KMOP_WEBHOOK_SECRET``. This module is imported by ``workers.app``, so
every worker knows the callback actors; it does not import FastAPI.

The URL is checked when the job is submitted and again at each attempt, and the POST goes to
the address that was checked (``api.webhook_targets``): loopback, private, link-local and other
internal addresses are refused unless ``KMOP_WEBHOOK_ALLOWED_NETWORKS`` names them, redirects
are not followed and no proxy is used. A refused attempt is recorded and not retried. See
docs/webhooks.md.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import uuid
from functools import cache
from typing import Any

import dramatiq
import httpx
from dramatiq.middleware import CurrentMessage

from kmop.errors import InvalidKeyPart, TransientError
from kmop.settings import load_settings
from storage.base import DocumentStore
from storage.keys import check_dossier_id
from workers.broker import install_broker
from workers.dead_letters import dead_letter_key
from workers.factories import store_from_settings
from workflow.ledger import Ledger
from workflow.tracker import DOCUMENT_STORED, Tracker

from .callbacks import DELIVER, DELIVERIES_PREFIX, JOB_FAILED, JOB_SUCCEEDED, WEBHOOK_QUEUE, read_records
from .dossiers import recorded_document
from .settings import int_setting
from .webhook_signature import signature_headers
from .webhook_targets import WebhookTargetRefused, WebhookTargets, WebhookTargetUnresolved, allowed_networks

install_broker()

logger = logging.getLogger("kmop.webhooks")

SECRET_ENV = "KMOP_WEBHOOK_SECRET"

MAX_RETRIES = int_setting(os.environ, "KMOP_WEBHOOK_MAX_RETRIES", 8, 0, 50)
MIN_BACKOFF_MS = int_setting(os.environ, "KMOP_WEBHOOK_MIN_BACKOFF_MS", 5_000, 100, 3_600_000)
MAX_BACKOFF_MS = int_setting(os.environ, "KMOP_WEBHOOK_MAX_BACKOFF_MS", 3_600_000, 1_000, 86_400_000)
TIMEOUT_SECONDS = int_setting(os.environ, "KMOP_WEBHOOK_TIMEOUT", 10, 1, 120)


class WebhookDeliveryFailed(TransientError):
    """The receiver did not answer 2xx; the delivery is retried with backoff."""


@cache
def _store() -> DocumentStore:
    return store_from_settings(load_settings())


def _job_of(message: dict[str, Any]) -> dict[str, Any]:
    args = message.get("args") or [None]
    return args[0] if isinstance(args[0], dict) else {}


def _event(kind: str, event_id: str, message: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    job = _job_of(message)
    return {
        "id": event_id,
        "type": kind,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {
            "job_id": message.get("message_id"),
            "dossier_id": job.get("dossier_id"),
            "kind": job.get("kind"),
            "idempotency_key": job.get("idempotency_key"),
            **data,
        },
    }


@dramatiq.actor(queue_name=WEBHOOK_QUEUE, actor_name=JOB_SUCCEEDED)
def job_succeeded(message: dict[str, Any], result: Any) -> None:
    url = (message.get("options") or {}).get("webhook_url")
    job = _job_of(message)
    if not url or not job:
        return
    dossier_id, key = job["dossier_id"], job["idempotency_key"]
    event = Tracker(Ledger(_store())).find(dossier_id, key)
    if event is None:
        logger.warning("job %s succeeded but its ledger event is missing", message.get("message_id"))
        return
    data: dict[str, Any] = {"phase": event.payload.get("state", {}).get("phase")}
    if event.type == DOCUMENT_STORED:
        document = recorded_document(event).to_dict(dossier_id)
        data["document"] = {k: document[k] for k in ("name", "kind", "step", "version", "sha256", "size", "href")}
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kmop:{dossier_id}:{key}:job.completed"))
    deliver_webhook.send(url, _event("job.completed", event_id, message, data))


@dramatiq.actor(queue_name=WEBHOOK_QUEUE, actor_name=JOB_FAILED)
def job_failed(message: dict[str, Any], error: dict[str, Any]) -> None:
    url = (message.get("options") or {}).get("webhook_url")
    message_id = str(message.get("message_id"))
    if not url or _store().head(dead_letter_key(message_id)) is None:
        return  # no webhook, or an attempt that will be retried
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kmop:{message_id}:job.failed"))
    data = {"error": {"type": str(error.get("type")), "message": str(error.get("message"))}}
    deliver_webhook.send(url, _event("job.failed", event_id, message, data))


def _retry_delivery(retries_so_far: int, exception: BaseException) -> bool:
    return isinstance(exception, TransientError) and retries_so_far < MAX_RETRIES


@dramatiq.actor(queue_name=WEBHOOK_QUEUE, actor_name=DELIVER, retry_when=_retry_delivery,
                min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS)
def deliver_webhook(url: str, event: dict[str, Any]) -> None:
    current = CurrentMessage.get_current_message()
    attempt = (current.options.get("retries", 0) if current is not None else 0) + 1
    deliver(url, event, store=_store(), secret=os.environ.get(SECRET_ENV), targets=_targets(), attempt=attempt)


ALLOWED_NETWORKS = allowed_networks(os.environ)  # a malformed list stops the worker at start-up


def _targets() -> WebhookTargets:
    return WebhookTargets(ALLOWED_NETWORKS)


def deliver(url: str, event: dict[str, Any], *, store: DocumentStore, secret: str | None, targets: WebhookTargets,
            attempt: int = 1, timeout: float = TIMEOUT_SECONDS) -> None:
    """One delivery attempt, recorded; ``WebhookDeliveryFailed`` when it is worth retrying.

    The URL is checked again here (``WebhookTargets.target``: the address it resolves to now)
    and the POST goes to that checked address; a refused target is recorded and not retried."""
    folder = _event_folder(event)
    if _delivered(store, folder):
        return
    record: dict[str, Any] = {
        "event_id": event["id"], "event_type": event["type"], "dossier_id": event["data"].get("dossier_id"),
        "job_id": event["data"].get("job_id"), "url": url, "attempt": attempt,
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
    }
    if not secret:
        _record(store, folder, {**record, "ok": False, "status_code": None, "duration_ms": 0,
                                "error": f"{SECRET_ENV} is not set on the worker; not sent"})
        return
    try:
        target = targets.target(url)
    except WebhookTargetRefused as exc:
        _record(store, folder, {**record, "ok": False, "status_code": None, "duration_ms": 0,
                                "error": f"refused, not sent: the webhook URL {exc}"})
        logger.warning("webhook %s to %s refused: %s", event["id"], url, exc)
        return
    except WebhookTargetUnresolved as exc:
        _record(store, folder, {**record, "ok": False, "status_code": None, "duration_ms": 0, "error": str(exc)})
        raise WebhookDeliveryFailed(f"webhook {event['id']} to {url}: {exc}") from None
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {"content-type": "application/json", "user-agent": "kmop-docs-webhooks/1",
               "host": target.host_header, **signature_headers(secret, event["id"], int(time.time()), body)}
    extensions = {"sni_hostname": target.server_name} if target.server_name else {}
    started = time.monotonic()
    try:
        with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout) as client:
            response = client.post(target.connect_url, content=body, headers=headers, extensions=extensions)
        status: int | None = response.status_code
        error = None if 200 <= response.status_code < 300 else f"the receiver answered HTTP {response.status_code}"
        if response.is_redirect:
            error += " (a redirect: not followed)"
    except httpx.HTTPError as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"
    duration_ms = int((time.monotonic() - started) * 1000)
    _record(store, folder, {**record, "ok": error is None, "status_code": status,
                            "duration_ms": duration_ms, "error": error})
    if error is not None:
        raise WebhookDeliveryFailed(f"webhook {event['id']} to {url}: {error}")


def _event_folder(event: dict[str, Any]) -> str:
    try:
        dossier = check_dossier_id(event["data"].get("dossier_id"))
    except InvalidKeyPart:
        dossier = "_unknown"
    return f"{DELIVERIES_PREFIX}{dossier}/{uuid.UUID(event['id'])}/"


def _record(store: DocumentStore, folder: str, record: dict[str, Any]) -> None:
    key = f"{folder}attempt-{record['attempt']:03d}-{uuid.uuid4().hex[:8]}.json"
    store.put_once(key, json.dumps(record, ensure_ascii=False).encode("utf-8"), "application/json")


def _delivered(store: DocumentStore, folder: str) -> bool:
    return any(r.get("ok") for r in read_records(store, store.list(folder)))
