"""Makes failed jobs visible: a job that will not be retried again is written down with its reason.

dramatiq itself moves such a message to the queue's dead-letter set (Redis ``<queue>.XQ``, kept 7
days); this middleware also records it durably in storage under ``dead-letters/`` so that
``kmop dead-letters`` can list it with the job and the reason, without reading Redis internals.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable

from dramatiq.middleware import Middleware

from kmop.errors import ObjectExists
from storage.base import DocumentStore

DEAD_LETTER_PREFIX = "dead-letters/"

logger = logging.getLogger("kmop.dead_letters")


def dead_letter_key(message_id: str) -> str:
    return f"{DEAD_LETTER_PREFIX}{message_id}.json"


class DeadLetterRecorder(Middleware):
    """Records every message that failed for good. Must stand before ``Retries`` in the list
    (``after_*`` hooks run in reverse order), so that it sees the decision Retries made."""

    def __init__(self, store_provider: Callable[[], DocumentStore]) -> None:
        self.store_provider = store_provider

    def after_process_message(self, broker, message, *, result=None, exception=None):  # type: ignore[no-untyped-def]
        if exception is None or not message.failed:
            return
        record = {
            "message_id": message.message_id,
            "queue": message.queue_name,
            "actor": message.actor_name,
            "args": list(message.args),
            "retries": message.options.get("retries", 0),
            "error_type": type(exception).__name__,
            "reason": str(exception),
            "failed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        logger.error(
            "job failed for good: %s: %s", record["error_type"], record["reason"],
            extra={"message_id": message.message_id},
        )
        try:
            self.store_provider().put_once(
                dead_letter_key(message.message_id),
                json.dumps(record, ensure_ascii=False, indent=2).encode(),
                "application/json",
            )
        except ObjectExists:
            pass


def list_dead_letters(store: DocumentStore) -> list[dict[str, object]]:
    return [json.loads(store.get(key)) for key in store.list(DEAD_LETTER_PREFIX)]

