"""One document job, start to end: check -> render -> convert -> sign -> store -> record.

Every effect is idempotent under redelivery: a job whose idempotency key is already in the
dossier's ledger is done; one whose document is stored but not recorded (a crash between the
two) is made again, finds its earlier document in the version it goes to, and records that one
(the rare crash pays a conversion, so that no job pays a look-up request for it); the ledger
records an idempotency key once.

The workflow is checked before a document is signed, and again, atomically, when it is
recorded. The dossier's history is read while the .docx is rendered and converted (one waits
for storage, the other for LibreOffice), so a job that turns out to be done already or out of
order has cost a conversion, thrown away; every other job is spared the wait for its history.
It is read as far as this process and the shared cache know it, the store asked only whether
it holds the last event (``Tracker.recent_history``): a job refused on it is decided again on
the whole history, and events it lacks are found by the conditional creates (a redelivered job
whose event is missing from it finds its document and its event taken, and returns those). A
render or conversion error counts only once the history says the job is to be made and may be.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from signing.policy import policy_for
from signing.signer import DocumentSigner
from storage.base import DocumentStore
from storage.keys import version_of
from templates.enrich import uses_dossier
from templates.render import render_docx
from workflow.ledger import Event
from workflow.registration_numbers import NUMBERED_KIND, RegistrationNumbers
from workflow.state import DossierState
from workflow.tracker import Tracker

from .document_versions import DocumentVersions
from .errors import InvalidJob, KmopError, StepOutOfOrder
from .jobs import DocumentJob
from .signature_layout import signature_layout

_BRUSSELS = ZoneInfo("Europe/Brussels")

#: Dossier histories read at once beside the renders and conversions of one process (one per
#: worker thread suffices; a few more cost nothing while idle).
LOOKUP_THREADS = 4


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


def envelope(job: DocumentJob) -> dict[str, Any]:
    """What every template gets beside the job's data: ids, the kind's title, the issue time."""
    kind = job.document_kind
    return {
        "dossier_id": job.dossier_id,
        "document_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"kmop:{job.dossier_id}:{job.idempotency_key}")),
        "kind": kind.name,
        "kind_title": kind.title,
        "template_version": kind.template_version,
        "issued_at": dt.datetime.now(_BRUSSELS).strftime("%Y-%m-%d %H:%M %Z"),
    }


def document_result(
    job: DocumentJob, payload: dict[str, Any], sequence: int, created: bool, timings: StageTimings | None = None
) -> DocumentResult:
    """The result of a job from its ledger event's payload."""
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
        timings=timings or StageTimings(),
    )


class Pipeline:
    def __init__(
        self, store: DocumentStore, converter: Converter, signer: DocumentSigner, tracker: Tracker,
        registration_numbers: RegistrationNumbers | None = None,
    ) -> None:
        self.store = store
        self.converter = converter
        self.signer = signer
        self.tracker = tracker
        self.versions = DocumentVersions(store, tracker)
        self.registration_numbers = registration_numbers or RegistrationNumbers(store)
        self._lookups = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="pipeline-lookup")

    def run(self, job: DocumentJob) -> DocumentResult:
        timings = StageTimings()
        job = self._numbered(job)
        lookup = self._lookups.submit(self.tracker.recent_history, job.dossier_id)
        draft = self._draft(job, timings)
        with _timed(timings, "record"):  # only the wait beyond render and conversion counts
            history = lookup.result()
        history, decided = self._decide(job, history)
        if isinstance(decided, Event):
            return document_result(job, decided.payload, decided.sequence, False, timings)
        state = decided
        if isinstance(draft, KmopError):
            raise draft
        facts = state.document_facts()
        if facts and draft is not None and uses_dossier(job.kind):
            draft = self._draft(job, timings, facts)  # rare: drafted without what the dossier adds
            if isinstance(draft, KmopError):
                raise draft
        signed = self._produce(job, timings, state.documents, draft)
        with ExitStack() as locked:  # one dossier lock for both; they take it again for free
            with _timed(timings, "store"):
                locked.enter_context(self.tracker.lock(job.dossier_id))
                stored, created = self.versions.store_once(job, signed, history)
            with _timed(timings, "record"):
                event = self.versions.record(job, stored, known=history)
        return document_result(job, event.payload, event.sequence, created, timings)

    def _numbered(self, job: DocumentJob) -> DocumentJob:
        """A certificate job with the dossier's registration number: the one the job names (taken
        for the dossier, refused when another dossier holds it), else the one the dossier holds,
        else the next free one of the sequence."""
        if job.kind != NUMBERED_KIND:
            return job
        service = job.data["service"]
        given = job.data.get("registration_number")
        if given is None:
            number = self.registration_numbers.number_for(job.dossier_id, service)
        else:
            number = self.registration_numbers.claim(job.dossier_id, given, service)
        return dataclasses.replace(job, data={**job.data, "registration_number": str(number)})

    def _decide(self, job: DocumentJob, recent: list[Event]) -> tuple[list[Event], Event | DossierState]:
        """The history the job builds on, and the job's event if it is recorded there, else the
        state it leads to.

        ``recent`` may lack the latest events (``Tracker.recent_history``): a job refused on it
        is decided again on the dossier's whole history, which then stands.
        """
        try:
            return recent, self._recorded_or_checked(job, recent)
        except (StepOutOfOrder, InvalidJob):
            history = self.tracker.history(job.dossier_id)
            return history, self._recorded_or_checked(job, history)

    def _recorded_or_checked(self, job: DocumentJob, history: list[Event]) -> Event | DossierState:
        recorded = next((e for e in history if e.idempotency_key == job.idempotency_key), None)
        if recorded is not None:
            return recorded
        return self.tracker.check(job.dossier_id, job.kind, job.role, job.data, history)

    def _draft(
        self, job: DocumentJob, timings: StageTimings, dossier: dict[str, Any] | None = None
    ) -> bytes | KmopError | None:
        """The job's unsigned PDF (None for a countersignature), or why it cannot be made.

        It is drafted while the dossier's history is read, so without what the history tells
        the document (a declared involvement); a dossier that has something to tell has the
        document drafted again with it (``dossier``)."""
        kind = job.document_kind
        if kind.countersigns:
            return None
        try:
            with _timed(timings, "render"):
                docx = render_docx(kind, job.data, envelope(job), dossier)
            with _timed(timings, "convert"):
                return self.converter.convert(docx)
        except KmopError as exc:
            return exc

    def _produce(
        self, job: DocumentJob, timings: StageTimings, documents: dict[str, str], pdf: bytes | None
    ) -> bytes:
        kind = job.document_kind
        policy = policy_for(kind.name)
        if pdf is None:
            source_key = documents.get(kind.countersigns or "")
            if source_key is None:
                raise StepOutOfOrder(f"dossier {job.dossier_id}: no {kind.countersigns} to countersign")
            with _timed(timings, "store"):
                pdf = self.store.get(source_key)
        with _timed(timings, "sign"):
            return self.signer.sign(
                pdf,
                policy,
                field_name=f"Handtekening-{policy.role.value}-{kind.name}",
                reason=f"{kind.title} ({policy.role.dutch})",
                location="Vlaanderen",
                layout=signature_layout(kind),
            )
