"""Where a job's document goes: the first free version above the recorded ones, stored once and
recorded once in the dossier's ledger, whoever made the document (the pipeline's signature, or a
signature made elsewhere and accepted by ``kmop.signing_requests``)."""

from __future__ import annotations

from typing import Any

from storage.base import DocumentStore, StoredObject
from storage.keys import document_key
from workflow.ledger import Event
from workflow.tracker import Tracker

from .errors import ObjectExists, StorageError
from .jobs import DocumentJob

_MAX_VERSION_RACES = 20


class DocumentVersions:
    def __init__(self, store: DocumentStore, tracker: Tracker) -> None:
        self.store = store
        self.tracker = tracker

    def find_stored(self, job: DocumentJob, first_version: int) -> StoredObject | None:
        """The unrecorded document this job already stored (a crash before recording), if any.

        Walks the versions above the recorded ones; every attempt of the same job walks the same
        keys, so it finds what an earlier attempt left without listing the bucket.
        """
        kind = job.document_kind
        version = first_version
        for _ in range(_MAX_VERSION_RACES):
            head = self.store.head(document_key(job.dossier_id, kind.step, kind.name, version))
            if head is None:
                return None
            if head.metadata.get("idempotency-key") == job.idempotency_key:
                return head
            version += 1
        raise StorageError(f"{job.dossier_id}/{job.kind}: more than {_MAX_VERSION_RACES} unrecorded versions")

    def store_once(
        self, job: DocumentJob, pdf: bytes, known: list[Event] | None = None
    ) -> tuple[StoredObject, bool]:
        """Store as the first free version above the recorded ones, never overwriting.

        A racing twin of the same job targets the same key: one creates it, the other finds
        the winner's object by its idempotency key and records that one. A version left by
        another, unrecorded job is stepped over. ``known`` is the dossier's history as the
        caller read it before making the document; without it the history is read here.
        The dossier lock is held around the create for servers that check its condition
        non-atomically (see ``storage.s3.S3Store``): twins create one after the other.
        """
        kind = job.document_kind
        metadata = {"idempotency-key": job.idempotency_key, "kind": kind.name, "dossier-id": job.dossier_id}
        with self.tracker.lock(job.dossier_id):
            # The history gives both the first free version and a twin that recorded already; a
            # version recorded after that reading is a taken key below, and stepped over or, when
            # it is our twin's, taken as ours: the conditional create decides, not the reading.
            history = self.tracker.history(job.dossier_id) if known is None else known
            version = self.tracker.documents_recorded(job.dossier_id, job.kind, history) + 1
            recorded = next((e for e in history if e.idempotency_key == job.idempotency_key), None)
            if recorded is not None:
                head = self.store.head(recorded.payload["key"])
                if head is not None:
                    return head, False
            for _ in range(_MAX_VERSION_RACES):
                key = document_key(job.dossier_id, kind.step, kind.name, version)
                try:  # the conditional create decides; a taken version is looked at only then
                    return self.store.put_once(key, pdf, "application/pdf", metadata), True
                except ObjectExists:
                    head = self.store.head(key)
                if head is None:
                    continue  # gone again: try the same version
                if head.metadata.get("idempotency-key") == job.idempotency_key:
                    return head, False  # our twin's
                version += 1  # another job's unrecorded document
        raise StorageError(f"{job.dossier_id}/{job.kind}: no free version after {_MAX_VERSION_RACES} attempts")

    def record(
        self, job: DocumentJob, stored: StoredObject, extra: dict[str, Any] | None = None,
        known: list[Event] | None = None,
    ) -> Event:
        """The ledger event of the stored document (the one already there for a redelivery).

        ``extra`` adds facts about the document to the event (who signed it elsewhere);
        ``known`` is the history as the caller read it (see ``workflow.ledger.Ledger.append``).
        """
        event, _ = self.tracker.record_document(
            job.dossier_id, job.kind, job.role, job.data, job.idempotency_key,
            {"kind": job.kind, "step": job.document_kind.step, "key": stored.key,
             "sha256": stored.sha256, "size": stored.size, **(extra or {})},
            known,
        )
        return event
