"""A dossier's signed documents: list, download (the PDF itself) or a presigned link.

Open to the service role for any dossier and to an applicant for the dossier of its token; for
an applicant any other dossier answers the same 404 as a dossier that does not exist. A download
is checked against the SHA-256 the ledger recorded before a byte is sent.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from ..app import services_of
from ..auth import ApiRole, Principal, check_dossier_access, require
from ..dossiers import DOCUMENT_NAME_PATTERN, RecordedDocument, documents_of, find_document
from ..errors import ApiError, error_responses, not_found
from ..models import DocumentInfo, DocumentList, DownloadLink
from .dossiers import DossierId, existing_history

router = APIRouter(tags=["documents"])

DocumentName = Annotated[str, Path(pattern=DOCUMENT_NAME_PATTERN, description="e.g. 01-sworn_statement-v1")]
_reader = require(ApiRole.SERVICE, ApiRole.APPLICANT)


class PdfResponse(Response):
    media_type = "application/pdf"


def pdf_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of a PDF download: the PDF, or a refusal."""
    return {
        200: {"description": f"{description}; Repr-Digest carries its SHA-256",
              "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses(401, 403, 404, 422, 502, 503, beside_other_media=True),
    }


def pdf_attachment(data: bytes, sha256: str, filename: str, what: str) -> PdfResponse:
    """``data`` as a download, once it matches the SHA-256 recorded for it (502 otherwise)."""
    digest = hashlib.sha256(data).digest()
    if digest.hex() != sha256:
        raise ApiError(502, "integrity_error", f"{what}: the stored bytes do not match the recorded SHA-256")
    return PdfResponse(content=data, headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Repr-Digest": f"sha-256=:{base64.b64encode(digest).decode('ascii')}:",
        "ETag": f'"{sha256}"',
        "Cache-Control": "private, no-store",
    })


def _document(request: Request, principal: Principal, dossier_id: str, name: str) -> RecordedDocument:
    check_dossier_access(principal, dossier_id)
    document = find_document(existing_history(request, dossier_id), name)
    if document is None:
        raise not_found(f"document {name} of dossier {dossier_id}")
    return document


@router.get(
    "/dossiers/{dossier_id}/documents",
    response_model=DocumentList,
    summary="The dossier's signed documents",
    responses=error_responses(401, 403, 404, 422, 503),
)
def list_documents(
    request: Request, dossier_id: DossierId, principal: Annotated[Principal, Depends(_reader)]
) -> DocumentList:
    check_dossier_access(principal, dossier_id)
    history = existing_history(request, dossier_id)
    return DocumentList(dossier_id=dossier_id, documents=[DocumentInfo(**d.to_dict(dossier_id))
                                                          for d in documents_of(history)])


@router.get(
    "/dossiers/{dossier_id}/documents/{name}",
    response_class=PdfResponse,
    summary="Download a signed document (the PDF)",
    responses=pdf_responses("The signed PDF"),
)
def download(
    request: Request, dossier_id: DossierId, name: DocumentName, principal: Annotated[Principal, Depends(_reader)]
) -> PdfResponse:
    document = _document(request, principal, dossier_id, name)
    data = services_of(request).store.get(document.key)
    return pdf_attachment(data, document.sha256, f"{name}.pdf", f"document {name}")


@router.get(
    "/dossiers/{dossier_id}/documents/{name}/link",
    response_model=DownloadLink,
    summary="A short-lived presigned URL of the document (S3 storage)",
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
def download_link(
    request: Request, dossier_id: DossierId, name: DocumentName, principal: Annotated[Principal, Depends(_reader)]
) -> DownloadLink:
    document = _document(request, principal, dossier_id, name)
    services = services_of(request)
    seconds = services.settings.presign_seconds
    url = services.store.presign(document.key, seconds)
    if not url.startswith(("https://", "http://")):
        raise ApiError(409, "not_available", "presigned links need S3 storage; download the document instead")
    return DownloadLink(url=url, expires_in=seconds, sha256=document.sha256)
