"""One document job, start to end: check -> render -> convert -> sign -> store -> record.

Every effect is idempotent under redelivery: a job whose idempotency key is already in the
dossier's ledger is done; one whose document is stored but not recorded (a crash between the
two) is only recorded; the ledger records an idempotency key once. The workflow is checked
before any work is done and again, atomically, when the document is recorded.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from signing.policy import policy_for
from signing.signer import DocumentSigner
from storage.base import DocumentStore, StoredObject
from storage.keys import document_key, version_of
from templates.render import render_docx
from workflow.tracker import Tracker

from .errors import ObjectExists, StepOutOfOrder, StorageError
from .jobs import DocumentJob

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


def _envelope(job: DocumentJob) -> dict[str, Any]:
    kind = job.document_kind
    return {
        "dossier_id": job.dossier_id,
        "document_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"kmop:{job.dossier_id}:{job.idempotency_key}")),
        "kind": kind.name,
        "kind_title": kind.title,
        "template_version": kind.template_version,
        "issued_at": dt.datetime.now(_BRUSSELS).strftime("%Y-%m-%d %H:%M %Z"),
    }


class Pipeline:
    def __init__(
        self, store: DocumentStore, converter: Converter, signer: DocumentSigner, tracker: Tracker
    ) -> None:
        self.store = store
        self.converter = converter
        self.signer = signer
        self.tracker = tracker

    def run(self, job: DocumentJob) -> DocumentResult:
        timings = StageTimings()
        with _timed(timings, "record"):
            history = self.tracker.history(job.dossier_id)
        recorded = next((e for e in history if e.idempotency_key == job.idempotency_key), None)
        if recorded is not None:
            return self._result(job, recorded.payload, recorded.sequence, False, timings)
        with _timed(timings, "store"):
            stored = self._find_stored(job, self.tracker.documents_recorded(job.dossier_id, job.kind, history) + 1)
        created = False
        if stored is None:
            state = self.tracker.check(job.dossier_id, job.kind, job.role, job.data, history)
            signed = self._produce(job, timings, state.documents)
            with _timed(timings, "store"):
                stored, created = self._store(job, signed)
        with _timed(timings, "record"):
            event, _ = self.tracker.record_document(
                job.dossier_id, job.kind, job.role, job.data, job.idempotency_key,
                {"kind": job.kind, "step": job.document_kind.step, "key": stored.key,
                 "sha256": stored.sha256, "size": stored.size},
            )
        return self._result(job, event.payload, event.sequence, created, timings)

    def _produce(self, job: DocumentJob, timings: StageTimings, documents: dict[str, str]) -> bytes:
        kind = job.document_kind
        policy = policy_for(kind.name)
        if kind.countersigns:
            source_key = documents.get(kind.countersigns)
            if source_key is None:
                raise StepOutOfOrder(f"dossier {job.dossier_id}: no {kind.countersigns} to countersign")
            with _timed(timings, "store"):
                pdf = self.store.get(source_key)
        else:
            with _timed(timings, "render"):
                docx = render_docx(kind, job.data, _envelope(job))
            with _timed(timings, "convert"):
                pdf = self.converter.convert(docx)
        with _timed(timings, "sign"):
            return self.signer.sign(
                pdf,
                policy,
                field_name=f"Handtekening-{policy.role.value}-{kind.name}",
                reason=f"{kind.title} ({policy.role.dutch})",
                location="Vlaanderen",
            )

    def _result(
        self, job: DocumentJob, payload: dict[str, Any], sequence: int, created: bool, timings: StageTimings
    ) -> DocumentResult:
        return DocumentResult(
            dossier_id=job.dossier_id,
            kind=job.kind,
            step=payload["step"],
            key=payload["key"],
            version=version_of(payload["key"]),
            sha256=payload["sha256"],
            size=payload["size"],
            idempotency_key=job.idempotency_key,
            event_sequence=sequence,
            created=created,
            timings=timings,
        )

    def _first_version(self, job: DocumentJob) -> int:
        """Versions below this one belong to documents the ledger has recorded."""
        return self.tracker.documents_recorded(job.dossier_id, job.kind) + 1

    def _find_stored(self, job: DocumentJob, first_version: int) -> StoredObject | None:
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

    def _store(self, job: DocumentJob, pdf: bytes) -> tuple[StoredObject, bool]:
        """Store as the first free version above the recorded ones, never overwriting.

        A racing twin of the same job targets the same key: one creates it, the other finds
        the winner's object by its idempotency key and records that one. A version left by
        another, unrecorded job is stepped over.
        """
        kind = job.document_kind
        metadata = {"idempotency-key": job.idempotency_key, "kind": kind.name, "dossier-id": job.dossier_id}
        with self.tracker.lock(job.dossier_id):
            # Read the version before looking for a recorded twin: a twin that records in
            # between is then found by the second look, or its object by the version walk.
            version = self._first_version(job)
            recorded = self.tracker.find(job.dossier_id, job.idempotency_key)
            if recorded is not None:
                head = self.store.head(recorded.payload["key"])
                if head is not None:
                    return head, False
            for _ in range(_MAX_VERSION_RACES):
                key = document_key(job.dossier_id, kind.step, kind.name, version)
                head = self.store.head(key)
                if head is not None:
                    if head.metadata.get("idempotency-key") == job.idempotency_key:
                        return head, False
                    version += 1
                    continue
                try:
                    return self.store.put_once(key, pdf, "application/pdf", metadata), True
                except ObjectExists:
                    continue  # look again at the same version: the winner may be our twin
        raise StorageError(f"{job.dossier_id}/{job.kind}: no free version after {_MAX_VERSION_RACES} attempts")
