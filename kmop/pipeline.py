"""One document job, start to end: render -> convert -> sign -> store -> record.

Every effect is idempotent under redelivery: a job whose idempotency key already has a stored
document skips straight to recording it, and the ledger records an idempotency key once. A crash
between storing and recording is completed by the next attempt of the same job.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo

from signing.policy import policy_for
from signing.signer import DocumentSigner
from storage.base import DocumentStore, StoredObject
from storage.keys import document_key, document_prefix, version_of
from templates.render import render_docx
from workflow.ledger import Event, Ledger

from .errors import ObjectExists, StorageError
from .jobs import DocumentJob

DOCUMENT_STORED = "document_stored"
_BRUSSELS = ZoneInfo("Europe/Brussels")
_MAX_VERSION_RACES = 20


class Converter(Protocol):
    def convert(self, docx: bytes) -> bytes: ...


@dataclass
class StageTimings:
    render: float = 0.0
    convert: float = 0.0
    sign: float = 0.0
    store: float = 0.0
    record: float = 0.0


@dataclass(frozen=True)
class DocumentResult:
    dossier_id: str
    kind: str
    step: int
    key: str
    version: int
    sha256: str
    size: int
    idempotency_key: str
    event_sequence: int
    created: bool
    timings: StageTimings = field(default_factory=StageTimings)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@contextmanager
def _timed(timings: StageTimings, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        setattr(timings, stage, getattr(timings, stage) + time.perf_counter() - start)


class Pipeline:
    def __init__(
        self, store: DocumentStore, converter: Converter, signer: DocumentSigner, ledger: Ledger
    ) -> None:
        self.store = store
        self.converter = converter
        self.signer = signer
        self.ledger = ledger

    def run(self, job: DocumentJob) -> DocumentResult:
        timings = StageTimings()
        kind = job.document_kind
        with _timed(timings, "store"):
            stored = self._find_stored(job)
        created = stored is None
        if stored is None:
            envelope = {
                "dossier_id": job.dossier_id,
                "document_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"kmop:{job.dossier_id}:{job.idempotency_key}")),
                "kind": kind.name,
                "kind_title": kind.title,
                "template_version": kind.template_version,
                "issued_at": dt.datetime.now(_BRUSSELS).strftime("%Y-%m-%d %H:%M %Z"),
            }
            with _timed(timings, "render"):
                docx = render_docx(kind, job.data, envelope)
            with _timed(timings, "convert"):
                pdf = self.converter.convert(docx)
            policy = policy_for(kind.name)
            with _timed(timings, "sign"):
                signed = self.signer.sign(
                    pdf,
                    policy,
                    field_name=f"Handtekening-{policy.role.value}",
                    reason=f"{kind.title} ({policy.role.dutch})",
                    location="Vlaanderen",
                )
            with _timed(timings, "store"):
                stored, created = self._store(job, signed)
        with _timed(timings, "record"):
            event, _ = self._record(job, stored)
        return DocumentResult(
            dossier_id=job.dossier_id,
            kind=kind.name,
            step=kind.step,
            key=stored.key,
            version=version_of(stored.key),
            sha256=stored.sha256,
            size=stored.size,
            idempotency_key=job.idempotency_key,
            event_sequence=event.sequence,
            created=created,
            timings=timings,
        )

    def _versions(self, job: DocumentJob) -> list[str]:
        prefix = document_prefix(job.dossier_id, job.document_kind.step, job.kind)
        return [key for key in self.store.list(prefix) if key.endswith(".pdf")]

    def _find_stored(self, job: DocumentJob) -> StoredObject | None:
        for key in self._versions(job):
            head = self.store.head(key)
            if head is not None and head.metadata.get("idempotency-key") == job.idempotency_key:
                return head
        return None

    def _store(self, job: DocumentJob, pdf: bytes) -> tuple[StoredObject, bool]:
        """Store as the next free version; a racing twin of the same job wins or loses cleanly."""
        kind = job.document_kind
        for _ in range(_MAX_VERSION_RACES):
            existing = self._find_stored(job)
            if existing is not None:
                return existing, False
            versions = [version_of(key) for key in self._versions(job)]
            key = document_key(job.dossier_id, kind.step, kind.name, max(versions, default=0) + 1)
            try:
                stored = self.store.put_once(
                    key,
                    pdf,
                    "application/pdf",
                    {"idempotency-key": job.idempotency_key, "kind": kind.name, "dossier-id": job.dossier_id},
                )
            except ObjectExists:
                continue
            return stored, True
        raise StorageError(f"{job.dossier_id}/{job.kind}: no free version after {_MAX_VERSION_RACES} races")

    def _record(self, job: DocumentJob, stored: StoredObject) -> tuple[Event, bool]:
        return self.ledger.append(
            job.dossier_id,
            DOCUMENT_STORED,
            job.idempotency_key,
            job.requested_by,
            {
                "kind": job.kind,
                "step": job.document_kind.step,
                "key": stored.key,
                "sha256": stored.sha256,
                "size": stored.size,
            },
        )
