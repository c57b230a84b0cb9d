"""Signing requests: documents the applicant signs with its own means (an eID card).

A job submitted with ``"signature": "external"`` makes the worker issue the document with an empty
signature field (``kmop.signing_requests``); ``GET /jobs/{job_id}`` then says
``awaiting_signature`` and names the request. The applicant (a token for its own dossier; any
other dossier answers the 404 of one that does not exist) downloads the PDF, signs it and uploads
it: 201 with the recorded document when the signature is valid, chains to a root of
``KMOP_EXTERNAL_TRUST_ROOTS`` and was made on exactly the issued document; 200 for the same file
again; 422 with the reason and the verification report when it is refused; 409 when the
dossier's state no longer allows the step or the request was accepted before with another file.
The service role may follow the requests too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from kmop.settings import SettingsError
from kmop.signing_requests import (
    ExternalSignatureRefused,
    SigningRequest,
    SigningRequestClosed,
    SigningRequestNotFound,
    SigningRequests,
)
from storage.keys import signing_request_key
from workflow.state import current_state

from ..app import services_of
from ..auth import ApiRole, Principal, check_dossier_access, require
from ..bodies import PDF_UPLOAD_BODY, read_pdf_upload
from ..dossiers import recorded_document
from ..errors import ApiError, error_responses, not_found
from ..models import UUID_PATTERN, DocumentInfo, SignatureAcceptedView, SigningRequestList, SigningRequestView
from .documents import PdfResponse, pdf_attachment, pdf_responses
from .dossiers import DossierId

router = APIRouter(tags=["signing requests"])

RequestId = Annotated[str, Path(pattern=UUID_PATTERN, description="the signing request's id")]
_reader = require(ApiRole.SERVICE, ApiRole.APPLICANT)
_PREFIX = "/dossiers/{dossier_id}/signing-requests"


def _requests(request: Request) -> SigningRequests:
    services = services_of(request)
    return SigningRequests(services.store, services.tracker, trust_roots=services.external_trust_roots)


def _find(requests: SigningRequests, principal: Principal, dossier_id: str, request_id: str) -> SigningRequest:
    check_dossier_access(principal, dossier_id)
    try:
        return requests.get(dossier_id, request_id)
    except SigningRequestNotFound:
        raise not_found(f"signing request {request_id} of dossier {dossier_id}") from None


def _view(requests: SigningRequests, signing_request: SigningRequest) -> SigningRequestView:
    dossier_id, request_id = signing_request.dossier_id, signing_request.request_id
    event = requests.accepted_event(signing_request)
    href = f"/dossiers/{dossier_id}/signing-requests/{request_id}"
    return SigningRequestView(
        request_id=request_id, dossier_id=dossier_id, kind=signing_request.kind, step=signing_request.step,
        status="issued" if event is None else "accepted", field_name=signing_request.field_name,
        sha256=signing_request.sha256, size=signing_request.size, created_at=signing_request.created_at,
        href=f"{href}/document", signed_href=f"{href}/signed",
        document=None if event is None else DocumentInfo(**recorded_document(event).to_dict(dossier_id)),
    )


@router.get(
    _PREFIX,
    response_model=SigningRequestList,
    summary="The dossier's signing requests (documents to be signed elsewhere) and their status",
    responses=error_responses(401, 403, 404, 422, 503),
)
def list_signing_requests(
    request: Request, dossier_id: DossierId, principal: Annotated[Principal, Depends(_reader)]
) -> SigningRequestList:
    check_dossier_access(principal, dossier_id)
    requests = _requests(request)
    found = requests.for_dossier(dossier_id)
    if not found and not requests.tracker.history(dossier_id):
        raise not_found(f"dossier {dossier_id}")
    return SigningRequestList(dossier_id=dossier_id, signing_requests=[_view(requests, r) for r in found])


@router.get(
    _PREFIX + "/{request_id}",
    response_model=SigningRequestView,
    summary="One signing request: issued (waiting for the signed PDF) or accepted (with its document)",
    responses=error_responses(401, 403, 404, 422, 503),
)
def signing_request(
    request: Request, dossier_id: DossierId, request_id: RequestId, principal: Annotated[Principal, Depends(_reader)]
) -> SigningRequestView:
    requests = _requests(request)
    return _view(requests, _find(requests, principal, dossier_id, request_id))


@router.get(
    _PREFIX + "/{request_id}/document",
    response_class=PdfResponse,
    summary="Download the document to sign (the PDF as issued, with an empty signature field)",
    responses=pdf_responses("The PDF to sign"),
)
def issued_document(
    request: Request, dossier_id: DossierId, request_id: RequestId, principal: Annotated[Principal, Depends(_reader)]
) -> PdfResponse:
    requests = _requests(request)
    signing_request = _find(requests, principal, dossier_id, request_id)
    data = requests.store.get(signing_request_key(dossier_id, request_id, "pdf"))
    return pdf_attachment(data, signing_request.sha256, f"{signing_request.kind}-te-ondertekenen.pdf",
                          f"signing request {request_id}")


@router.post(
    _PREFIX + "/{request_id}/signed",
    status_code=201,
    response_model=SignatureAcceptedView,
    summary="Upload the signed PDF: accepted as the dossier's document, or refused with the reason",
    description=(
        "The body is the signed PDF (application/pdf, or the file field of multipart/form-data), at most "
        "KMOP_API_MAX_UPLOAD_BYTES. 201: accepted "
        "and recorded; 200: the same file was accepted before; 422 (signature_refused): not signed, "
        "signature invalid, not chaining to a trust root of KMOP_EXTERNAL_TRUST_ROOTS, or not made on "
        "exactly the issued document; the reason and the verification report are in the body and the "
        "dossier does not move; 409: the dossier's state no longer allows the step, or the request "
        "was accepted with another file; 503: no trust roots configured."
    ),
    responses={200: {"model": SignatureAcceptedView, "description": "The same signed file was accepted before"},
               **error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503)},
    openapi_extra={"requestBody": PDF_UPLOAD_BODY},
)
async def upload_signed(
    request: Request,
    dossier_id: DossierId,
    request_id: RequestId,
    principal: Annotated[Principal, Depends(require(ApiRole.APPLICANT))],
) -> JSONResponse:
    check_dossier_access(principal, dossier_id)
    returned, _ = await read_pdf_upload(request, services_of(request).settings.max_upload_bytes, "signed.pdf")
    view, created = await run_in_threadpool(_accept, _requests(request), dossier_id, request_id, returned)
    return JSONResponse(view.model_dump(), status_code=201 if created else 200)


def _accept(
    requests: SigningRequests, dossier_id: str, request_id: str, returned: bytes
) -> tuple[SignatureAcceptedView, bool]:
    try:
        accepted = requests.accept(dossier_id, request_id, returned)
    except SigningRequestNotFound:
        raise not_found(f"signing request {request_id} of dossier {dossier_id}") from None
    except ExternalSignatureRefused as exc:
        report = exc.report.to_dict() if exc.report is not None else None
        raise ApiError(422, "signature_refused", str(exc), field="body", reason=exc.reason, report=report) from None
    except SigningRequestClosed as exc:
        raise ApiError(409, "already_accepted", str(exc)) from None
    except SettingsError as exc:
        raise ApiError(503, "not_configured", f"signatures made elsewhere are not accepted here: {exc}") from None
    event = accepted.event
    view = SignatureAcceptedView(
        dossier_id=dossier_id, request_id=request_id, status="accepted", signer=accepted.signer,
        phase=current_state(requests.tracker.history(dossier_id)).phase.value,
        document=DocumentInfo(**recorded_document(event).to_dict(dossier_id)),
        report=accepted.report.to_dict() if accepted.report is not None else None,
    )
    return view, accepted.result.created
