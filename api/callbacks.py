"""What the API process needs of webhooks: putting the callbacks on a job, and reading the deliveries.

The worker side (the callback actors, the signed POST, the retries) is ``api.webhooks``; both
share the names below. This module declares no actor and installs no broker.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from kmop.errors import ObjectNotFound
from storage.base import DocumentStore
from storage.keys import check_dossier_id

WEBHOOK_QUEUE = "webhooks"
JOB_SUCCEEDED = "kmop_job_succeeded"
JOB_FAILED = "kmop_job_failed"
DELIVER = "kmop_deliver_webhook"
DELIVERIES_PREFIX = "api/webhooks/"


def callback_options(webhook_url: str) -> dict[str, str]:
    """The dramatiq message options that make a job report its outcome to ``webhook_url``."""
    return {"on_success": JOB_SUCCEEDED, "on_failure": JOB_FAILED, "webhook_url": webhook_url}


_stamped: ContextVar[dict[str, str] | None] = ContextVar("kmop_webhook_callbacks", default=None)


class WebhookCallbacks(Middleware):
    """Puts the callback options of the enclosing ``with_webhook`` on each document job enqueued
    in it. Installed on the API process's broker only (``install_webhook_callbacks``); messages
    enqueued outside ``with_webhook`` are left as they are."""

    def before_enqueue(self, broker, message, delay):  # type: ignore[no-untyped-def]
        options = _stamped.get()
        if options and message.actor_name == "generate_document":
            message.options.update(options)


@contextmanager
def with_webhook(webhook_url: str) -> Iterator[None]:
    token = _stamped.set(callback_options(webhook_url))
    try:
        yield
    finally:
        _stamped.reset(token)


def install_webhook_callbacks(broker: dramatiq.Broker) -> None:
    if not any(isinstance(m, WebhookCallbacks) for m in broker.middleware):
        broker.add_middleware(WebhookCallbacks())


def read_records(store: DocumentStore, keys: list[str]) -> list[dict[str, Any]]:
    records = []
    for key in keys:
        try:
            records.append(json.loads(store.get(key)))
        except ObjectNotFound:
            continue
    return records


def list_deliveries(store: DocumentStore, dossier_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Every webhook event with its delivery attempts, oldest first, at most ``limit`` events."""
    prefix = f"{DELIVERIES_PREFIX}{check_dossier_id(dossier_id)}/" if dossier_id else DELIVERIES_PREFIX
    folders: dict[str, list[str]] = defaultdict(list)
    for key in store.list(prefix):
        folders[key.rsplit("/", 1)[0]].append(key)
    events = []
    for keys in folders.values():
        attempts = sorted(read_records(store, keys), key=lambda r: (r["attempt"], r["at"]))
        if not attempts:
            continue
        first = attempts[0]
        events.append({
            "event_id": first["event_id"], "event_type": first["event_type"], "dossier_id": first["dossier_id"],
            "job_id": first["job_id"], "url": first["url"], "delivered": any(a["ok"] for a in attempts),
            "attempts": [{k: a[k] for k in ("attempt", "at", "ok", "status_code", "error", "duration_ms")}
                         for a in attempts],
        })
    events.sort(key=lambda e: e["attempts"][0]["at"])
    return events[-limit:]
