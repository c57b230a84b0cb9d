"""Signatures made elsewhere, in the service: the document is issued to be signed by the signer's
own means (an eID card, a signing app), and the signed PDF is accepted back only when
``signing.external.accept_external_signature`` accepts it.

``issue`` (in the worker: it needs LibreOffice) renders and converts the job's document, adds an
empty signature field for the signer and stores it once, with a small JSON record, under
``storage.keys.signing_request_key``. The request id follows from the dossier id and the job's
idempotency key, so a redelivered job finds its request and does nothing.

``accept`` checks that the dossier's state still allows the step, verifies the returned PDF
against the issued one and the trust roots of ``KMOP_EXTERNAL_TRUST_ROOTS``, then stores and
records it as the dossier's document exactly as the pipeline does (``DocumentVersions``), under
the job's idempotency key: the same signed file again is answered with the first acceptance, a
different one is refused. A refusal stores nothing in the dossier and leaves its ledger as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from asn1crypto import x509

from signing.external import ExternalSignatureAccepted, ExternalSignatureRefused, accept_external_signature
from signing.placement import SignatureLayout, place_fields
from signing.policy import signature_field_name
from signing.report import FileReport
from storage.base import DocumentStore, StoredObject
from storage.keys import signing_request_key, signing_requests_prefix
from templates.render import render_docx
from workflow.ledger import Event
from workflow.tracker import DOCUMENT_STORED, Tracker

from .document_versions import DocumentVersions
from .errors import InvalidJob, KmopError, ObjectExists, ObjectNotFound, StorageError
from .jobs import DocumentJob, parse_job
from .pipeline import Converter, DocumentResult, document_result, envelope
from .settings import SettingsError
from .signature_layout import signature_layout

TRUST_ROOTS_ENV = "KMOP_EXTERNAL_TRUST_ROOTS"
ISSUED = "issued"
ACCEPTED = "accepted"

__all__ = [
    "ExternalSignatureRefused", "SignatureAccepted", "SigningRequest", "SigningRequestClosed",
    "SigningRequestNotFound", "SigningRequests", "external_trust_roots", "issued_request_id", "request_id_for",
]


class SigningRequestNotFound(KmopError):
    def __init__(self, dossier_id: str, request_id: str) -> None:
        super().__init__(f"signing request {request_id} of dossier {dossier_id} not found")


class SigningRequestClosed(KmopError):
    """The request was accepted already, with another signed file."""


def request_id_for(dossier_id: str, idempotency_key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kmop:signing-request:{dossier_id}:{idempotency_key}"))


def issued_request_id(store: DocumentStore, dossier_id: str, idempotency_key: str) -> str | None:
    """The id of the signing request the job ``idempotency_key`` has issued, if it has one
    (the job then waits for the signer: it is neither lost nor done)."""
    request_id = request_id_for(dossier_id, idempotency_key)
    found = store.head(signing_request_key(dossier_id, request_id, "json"))
    return request_id if found is not None else None


@dataclass(frozen=True)
class SigningRequest:
    request_id: str
    dossier_id: str
    kind: str
    step: int
    field_name: str
    """The empty signature field the signer signs into."""
    sha256: str
    size: int
    created_at: str
    job: dict[str, Any]
    status: str = ISSUED
    """As stored; ``SigningRequests.status`` says whether it has been accepted since."""

    def document_job(self) -> DocumentJob:
        return parse_job(self.job)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SignatureAccepted:
    request: SigningRequest
    result: DocumentResult
    event: Event
    signer: str | None
    report: FileReport | None
    """The verification report; None when the same file was accepted before (``result.created``
    is then false)."""


class SigningRequests:
    """Issues documents to be signed elsewhere and accepts them back signed.

    :param converter: the LibreOffice pool; only ``issue`` needs it.
    :param trust_roots: what a signer's certificate must chain to; only ``accept`` needs them
        (``external_trust_roots()`` reads them from the environment).
    :param online: fetch revocation data (OCSP, CRL) that the returned file does not carry.
    """

    def __init__(
        self,
        store: DocumentStore,
        tracker: Tracker,
        converter: Converter | None = None,
        trust_roots: list[x509.Certificate] | None = None,
        *,
        online: bool = True,
    ) -> None:
        self.store = store
        self.tracker = tracker
        self.converter = converter
        self.trust_roots = trust_roots or []
        self.online = online
        self.versions = DocumentVersions(store, tracker)

    # --- issuing --------------------------------------------------------------------------------

    def issue(self, job: DocumentJob) -> SigningRequest:
        """The signing request of ``job``: made once, found again on a redelivery."""
        if not job.signed_elsewhere:
            raise InvalidJob("signature", "must be 'external' for a document signed elsewhere")
        request_id = request_id_for(job.dossier_id, job.idempotency_key)
        existing = self._read(job.dossier_id, request_id)
        if existing is not None:
            if existing.job != job.to_message():
                raise InvalidJob("idempotency_key", "was already used for another signing request")
            return existing
        history = self.tracker.history(job.dossier_id)
        if any(e.idempotency_key == job.idempotency_key for e in history):
            raise InvalidJob("idempotency_key", "is already recorded in the dossier's ledger for another job")
        state = self.tracker.check(job.dossier_id, job.kind, job.role, job.data, history)
        pdf_key = signing_request_key(job.dossier_id, request_id, "pdf")
        stored = self.store.head(pdf_key) or self._store_issued(job, request_id, pdf_key, state.document_facts())
        request = SigningRequest(
            request_id=request_id, dossier_id=job.dossier_id, kind=job.kind, step=job.document_kind.step,
            field_name=signature_field_name(job.kind, job.role), sha256=stored.sha256, size=stored.size,
            created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), job=job.to_message(),
        )
        body = json.dumps(request.to_dict(), ensure_ascii=False, sort_keys=True).encode("utf-8")
        try:
            self.store.put_once(signing_request_key(job.dossier_id, request_id, "json"), body, "application/json")
        except ObjectExists:
            return self.get(job.dossier_id, request_id)  # a racing twin wrote it first
        return request

    def _store_issued(self, job: DocumentJob, request_id: str, key: str, dossier: dict[str, Any]) -> StoredObject:
        if self.converter is None:
            raise KmopError("issuing a document to sign needs the converter (run it in a worker)")
        pdf = self.converter.convert(render_docx(job.document_kind, job.data, envelope(job), dossier))
        pdf = _with_empty_signature_field(pdf, signature_field_name(job.kind, job.role), signature_layout(job.document_kind))
        metadata = {"dossier-id": job.dossier_id, "kind": job.kind, "request-id": request_id,
                    "idempotency-key": job.idempotency_key}
        try:
            return self.store.put_once(key, pdf, "application/pdf", metadata)
        except ObjectExists:
            stored = self.store.head(key)  # a racing twin's document: that one is issued
            if stored is None:
                raise StorageError(f"{key}: exists and then does not") from None
            return stored

    # --- reading --------------------------------------------------------------------------------

    def get(self, dossier_id: str, request_id: str) -> SigningRequest:
        request = self._read(dossier_id, request_id)
        if request is None:
            raise SigningRequestNotFound(dossier_id, request_id)
        return request

    def for_dossier(self, dossier_id: str) -> list[SigningRequest]:
        keys = [k for k in self.store.list(signing_requests_prefix(dossier_id)) if k.endswith(".json")]
        requests = [_from_record(self.store.get(key)) for key in keys]
        return sorted(requests, key=lambda r: (r.created_at, r.request_id))

    def issued_pdf(self, request: SigningRequest) -> bytes:
        """The document as issued, checked against the SHA-256 of the request."""
        data = self.store.get(signing_request_key(request.dossier_id, request.request_id, "pdf"))
        if hashlib.sha256(data).hexdigest() != request.sha256:
            raise StorageError(f"signing request {request.request_id}: the stored document does not match its SHA-256")
        return data

    def accepted_event(self, request: SigningRequest) -> Event | None:
        """The ledger event of the accepted document, if the request has been accepted."""
        event = self.tracker.find(request.dossier_id, request.job["idempotency_key"])
        return event if event is not None and event.type == DOCUMENT_STORED else None

    def status(self, request: SigningRequest) -> str:
        return ACCEPTED if self.accepted_event(request) is not None else ISSUED

    def _read(self, dossier_id: str, request_id: str) -> SigningRequest | None:
        try:
            return _from_record(self.store.get(signing_request_key(dossier_id, request_id, "json")))
        except ObjectNotFound:
            return None

    # --- accepting ------------------------------------------------------------------------------

    def accept(self, dossier_id: str, request_id: str, returned: bytes) -> SignatureAccepted:
        """Accept the signed PDF as the dossier's document, or raise: ``SigningRequestNotFound``,
        ``ExternalSignatureRefused`` (with the reason and the report), ``StepOutOfOrder`` (the
        dossier's state no longer allows the step), ``SigningRequestClosed`` (accepted before with
        another file), ``SettingsError`` (no trust roots configured)."""
        request = self.get(dossier_id, request_id)
        job = request.document_job()
        digest = hashlib.sha256(returned).hexdigest()
        history = self.tracker.history(dossier_id)
        recorded = next((e for e in history if e.idempotency_key == job.idempotency_key), None)
        if recorded is not None:
            return self._accepted_before(request, job, recorded, digest)
        stored = self.versions.find_stored(job, self.tracker.documents_recorded(dossier_id, job.kind, history) + 1)
        created = False
        if stored is None:
            self.tracker.check(dossier_id, job.kind, job.role, job.data, history)
            accepted = self._verify(request, returned)
            stored, created = self.versions.store_once(job, returned)
        else:  # accepted before, stored, not recorded (a crash in between): finish that one
            accepted = self._verify(request, self.store.get(stored.key))
        event = self.versions.record(job, stored, {"signing_request": request_id, "signer": accepted.signer})
        if stored.sha256 != digest:
            raise _closed(request, stored.sha256)
        return SignatureAccepted(request, document_result(job, event.payload, event.sequence, created), event,
                                 accepted.signer, accepted.report)

    def _verify(self, request: SigningRequest, returned: bytes) -> ExternalSignatureAccepted:
        if not self.trust_roots:
            raise SettingsError(f"{TRUST_ROOTS_ENV} is not set: name the trust roots (PEM files) that "
                                "signatures made elsewhere must chain to")
        return accept_external_signature(self.issued_pdf(request), returned, self.trust_roots, online=self.online)

    def _accepted_before(
        self, request: SigningRequest, job: DocumentJob, recorded: Event, digest: str
    ) -> SignatureAccepted:
        if recorded.type != DOCUMENT_STORED or recorded.payload.get("sha256") != digest:
            raise _closed(request, recorded.payload.get("sha256"))
        result = document_result(job, recorded.payload, recorded.sequence, False)
        return SignatureAccepted(request, result, recorded, recorded.payload.get("signer"), None)


def external_trust_roots(env: Mapping[str, str] | None = None) -> list[x509.Certificate]:
    """The certificates of ``KMOP_EXTERNAL_TRUST_ROOTS`` (PEM or DER files, comma-separated);
    empty when it is unset. ``SettingsError`` names a file that cannot be read."""
    return load_trust_roots(trust_root_paths(env), TRUST_ROOTS_ENV)


def trust_root_paths(env: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    env = os.environ if env is None else env
    paths = tuple(Path(p.strip()) for p in (env.get(TRUST_ROOTS_ENV) or "").split(",") if p.strip())
    for path in paths:
        if not path.is_file():
            raise SettingsError(f"{TRUST_ROOTS_ENV}: {path} is not a readable file")
    return paths


def load_trust_roots(paths: tuple[Path, ...] | list[Path], source: str) -> list[x509.Certificate]:
    from signing.identities import load_certificates

    roots: list[x509.Certificate] = []
    for path in paths:
        try:
            roots.extend(load_certificates(Path(path)))
        except (OSError, ValueError) as exc:
            raise SettingsError(f"{source}: {path} is not a readable certificate ({exc})") from exc
    return roots


def _closed(request: SigningRequest, sha256: str | None) -> SigningRequestClosed:
    return SigningRequestClosed(
        f"signing request {request.request_id} was already accepted with another signed file "
        f"(sha256 {sha256}); the dossier keeps that one")


def _from_record(raw: bytes) -> SigningRequest:
    return SigningRequest(**json.loads(raw))


def _with_empty_signature_field(pdf: bytes, field_name: str, layout: SignatureLayout) -> bytes:
    """``pdf`` with an empty, visible signature field where the service would put its own:
    below the signer's label (``signing.placement``)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field

    block = layout.block(field_name)
    [place] = place_fields(pdf, layout, [(field_name, block.signer if block else field_name)])
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    append_signature_field(writer, SigFieldSpec(field_name, on_page=place.page, box=place.box))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()

