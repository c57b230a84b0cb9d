"""``POST /verifications``: the agency uploads a PDF and gets its signature report.

The report is ``signing.verify.verify_pdf`` against the configured trust roots
(``KMOP_API_TRUST_ROOTS``): the same report ``kmop verify --json`` prints for one file. The PDF
comes as the body (``Content-Type: application/pdf``) or as the ``file`` field of a
``multipart/form-data`` form. Larger than ``KMOP_API_MAX_UPLOAD_BYTES``: 413; another media
type: 415; a body that is not a PDF at all: 422. A PDF that is damaged or unsigned is not
refused: its report says what is wrong (``ok: false``), also when ``verify_pdf`` itself raises
on it (pyHanko on deeply nested objects or an unparsable CMS blob; see tests/test_hostile_input.py).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from signing.verify import FileReport, verify_pdf

from ..app import services_of
from ..auth import ApiRole, Principal, require
from ..bodies import PDF_UPLOAD_BODY, read_pdf_upload
from ..errors import ApiError, error_responses
from ..models import VerificationReport

router = APIRouter(tags=["verification"])
logger = logging.getLogger("kmop.api")

_PDF_MAGIC = b"%PDF-"


def _report(data: bytes, roots: list, name: str) -> FileReport:
    """``verify_pdf``'s report; a file it cannot get through is reported, never a 500."""
    try:
        return verify_pdf(data, roots, name=name)
    except Exception as exc:  # noqa: BLE001 - RecursionError, AttributeError from pyHanko on hostile files
        logger.warning("verify_pdf raised on %s: %s: %s", name, type(exc).__name__, exc)
        return FileReport(name=name, problems=[f"the file cannot be verified: {type(exc).__name__} while reading it"])


@router.post(
    "/verifications",
    response_model=VerificationReport,
    summary="Verify every signature of an uploaded PDF against the configured trust roots",
    responses=error_responses(400, 401, 403, 413, 415, 422),
    openapi_extra={"requestBody": PDF_UPLOAD_BODY},
)
async def verify(
    request: Request,
    principal: Annotated[Principal, Depends(require(ApiRole.AGENCY))],
    name: Annotated[str, Query(min_length=1, max_length=200, description="the name the report gives the file")]
    = "upload.pdf",
) -> VerificationReport:
    services = services_of(request)
    data, filename = await read_pdf_upload(request, services.settings.max_upload_bytes, name)
    if _PDF_MAGIC not in data[:1024]:
        raise ApiError(422, "not_a_pdf", "the upload is not a PDF (no %PDF- header)", field="file",
                       reason="is not a PDF")
    report = await run_in_threadpool(_report, data, services.trust_roots, filename)
    return VerificationReport(**report.to_dict())
