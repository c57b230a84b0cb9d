"""``POST /verifications``: the agency uploads a PDF and gets its signature report.

The report is ``signing.verify.verify_pdf`` against the configured trust roots
(``KMOP_API_TRUST_ROOTS``): the same report ``kmop verify --json`` prints for one file. The PDF
comes as the body (``Content-Type: application/pdf``) or as the ``file`` field of a
``multipart/form-data`` form. Larger than ``KMOP_API_MAX_UPLOAD_BYTES``: 413; another media
type: 415; a body that is not a PDF at all: 422. A PDF that is damaged or unsigned is not
refused: its report says what is wrong (``ok: false``), also when ``verify_pdf`` itself raises
on it (pyHanko on deeply nested objects or an unparsable CMS blob; see tests/test_hostile_input.py).

Verification is CPU work in Python: in the API's own process it would hold the interpreter
lock and slow every other route. It runs in a pool of worker processes
(``KMOP_API_VERIFY_WORKERS``) with a bounded number of requests waiting for one
(``KMOP_API_VERIFY_QUEUE``); a request beyond that is answered 503 with ``Retry-After``. The
work per file is bounded (``signing.limits``): more signatures or revisions than allowed, or
not done within ``KMOP_VERIFY_SECONDS``, is answered 422 ``verification_limit`` saying what was
not checked; a worker that overruns that time by far is stopped by an alarm in the worker.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from signing.limits import VerificationPoolSettings
from signing.verify_worker import GRACE_SECONDS, verify_in_worker

from ..app import services_of
from ..auth import ApiRole, Principal, require
from ..bodies import PDF_UPLOAD_BODY, read_pdf_upload
from ..errors import RETRY_AFTER_SECONDS, ApiError, error_responses
from ..models import VerificationReport

router = APIRouter(tags=["verification"])
logger = logging.getLogger("kmop.api")

_PDF_MAGIC = b"%PDF-"


class VerificationPool:
    """Worker processes for verifications, at most ``workers + queue`` requests at a time.

    ``function`` is what runs in a worker (``verify_in_worker``; a test passes its own, which
    must be importable by name). Processes start on first use, from a fresh interpreter (spawn:
    the API process has threads, which a fork would copy in whatever state they are)."""

    def __init__(self, settings: VerificationPoolSettings,
                 function: Callable[..., dict[str, Any]] = verify_in_worker) -> None:
        self.settings = settings
        self.function = function
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.in_flight = 0

    @property
    def capacity(self) -> int:
        return self.settings.workers + self.settings.queue

    def try_submit(self, *args: Any) -> Future[dict[str, Any]] | None:
        """The running verification, or None when ``capacity`` requests are already in flight.
        A request counts until its worker is done, even when its caller gave up waiting."""
        with self._lock:
            if self.in_flight >= self.capacity:
                return None
            if self._executor is None:
                self._executor = ProcessPoolExecutor(max_workers=self.settings.workers,
                                                     mp_context=multiprocessing.get_context("spawn"))
            self.in_flight += 1
            future = self._executor.submit(self.function, *args)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[dict[str, Any]]) -> None:
        with self._lock:
            self.in_flight -= 1

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def verification_pool(request: Request) -> VerificationPool:
    """The application's pool, made on first use from its settings."""
    state = request.app.state
    pool = getattr(state, "verification_pool", None)
    if pool is None:
        pool = state.verification_pool = VerificationPool(services_of(request).settings.verification_pool)
    return pool


@router.post(
    "/verifications",
    response_model=VerificationReport,
    summary="Verify every signature of an uploaded PDF against the configured trust roots",
    responses=error_responses(400, 401, 403, 413, 415, 422, 503),
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
    limits = services.settings.verification_limits
    pool = verification_pool(request)
    future = pool.try_submit(data, [root.dump() for root in services.trust_roots], filename, asdict(limits))
    if future is None:
        raise ApiError(503, "busy", f"{pool.capacity} verifications are running or waiting; try again later",
                       headers={"Retry-After": RETRY_AFTER_SECONDS})
    try:
        report = await asyncio.wait_for(asyncio.wrap_future(future), timeout=limits.seconds + 2 * GRACE_SECONDS)
    except asyncio.TimeoutError:
        raise ApiError(503, "busy", "the verification did not finish in time; try again later",
                       headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    except Exception as exc:  # noqa: BLE001 - a worker that died (killed, out of memory): no report
        logger.error("verification worker failed on %s: %s: %s", filename, type(exc).__name__, exc)
        if isinstance(exc, BrokenProcessPool):
            pool.shutdown()  # the next request starts fresh workers
        raise ApiError(503, "unavailable", "the verification could not be completed; try again later",
                       headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    if report.get("unchecked"):
        raise ApiError(422, "verification_limit", f"not verified: {report['unchecked']}", field="file",
                       reason=report["unchecked"])
    return VerificationReport(**report)
