"""Refusals at the HTTP edge: every error becomes a status and a JSON body that names the problem.

The body is always ``ErrorBody``: a machine-readable ``error`` code, a ``message`` a person can
act on and, for invalid input, the ``field`` at fault and the ``reason``. kmop's own error types
are raised where the fact is known and mapped here:

| error | status |
|---|---|
| ``InvalidJob`` (a field of a job or a fact) | 422, with ``field`` and ``reason`` |
| ``StepOutOfOrder`` (the dossier's state does not allow it) | 409 |
| ``TransientError`` (storage, the dossier lock), broker unreachable | 503 with ``Retry-After`` |
| request validation (path, query, header, body model) | 422 (400 for a bad ``Idempotency-Key``) |
| anything unexpected | 500, logged, without internals in the body |
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kmop.errors import InvalidJob, InvalidKeyPart, KmopError, StepOutOfOrder, StorageUnavailable, TransientError

from .models import VerificationReport

logger = logging.getLogger("kmop.api")

RETRY_AFTER_SECONDS = "5"


class ErrorBody(BaseModel):
    """What every refused request gets back."""

    error: str = Field(description="machine-readable code, e.g. invalid_job, step_out_of_order, not_found")
    message: str = Field(description="what is wrong, in words a user can act on")
    field: str | None = Field(default=None, description="the field at fault (dotted path), for invalid input")
    reason: str | None = Field(default=None, description="why the field is refused")
    report: VerificationReport | None = Field(
        default=None, description="for a refused signed document: the verification report of the upload")


class ApiError(Exception):
    """A refusal with its HTTP status; raised by handlers and dependencies."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        field: str | None = None,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
        report: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(error=error, message=message, field=field, reason=reason,
                              report=VerificationReport(**report) if report is not None else None)
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


_DESCRIPTIONS = {
    400: "Malformed request: a body that is not UTF-8 JSON, is nested too deeply or holds a lone surrogate "
         "(field names where), a missing or malformed Idempotency-Key",
    401: "No credentials, or credentials that are invalid or expired",
    403: "The credentials' role may not use this operation",
    404: "Not found (a dossier that is not yours looks exactly like one that does not exist)",
    409: "Conflict with the dossier's state (a step out of order), with a request in progress, or with a "
         "signing request accepted before",
    413: "The request body is larger than the operation's limit (the message names it): 1 MiB of JSON, or "
         "KMOP_API_MAX_UPLOAD_BYTES for a PDF upload",
    415: "The request body's media type is not accepted here",
    422: "Invalid input: the body names the field and the reason (for a refused signed document, with its "
         "verification report)",
    502: "The storage returned bytes that do not match the SHA-256 the ledger recorded",
    503: "Storage or broker unreachable, or the service is not configured for this; try again later",
}


def error_responses(*statuses: int, beside_other_media: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given refusal statuses, all with ``ErrorBody``.

    ``beside_other_media``: for a route whose own answers are not JSON (a PDF), where FastAPI
    would give a ``model`` the route's media type; the schema is then named explicitly.
    """
    if beside_other_media:
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        return {status: {"description": _DESCRIPTIONS[status], "content": content} for status in statuses}
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses}


def _respond(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def error_response(error: ApiError) -> JSONResponse:
    """The answer to a refusal raised outside the handlers (``api.guard``)."""
    return _respond(error.status, error.body, error.headers)


# Pydantic names the chosen member of a tagged union in an error's location
# (body.knowledge_test_passed.data.passed_on); the field a client sent has no such part.
_UNION_TAGS = {"knowledge_test_passed", "audit_visit_held"}


def _field_of(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location]
    if parts and parts[0] == "body":
        parts = [p for p in parts[1:] if p not in _UNION_TAGS]
    return ".".join(parts) or "request"


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("request",), "msg": "is invalid"}
    location = tuple(first.get("loc", ()))
    field = _field_of(location)
    reason = "is required" if first.get("type") == "missing" else str(first.get("msg", "is invalid"))
    if location[:2] == ("header", "idempotency-key") or location[:2] == ("header", "Idempotency-Key"):
        return _respond(400, ErrorBody(error="invalid_idempotency_key", message=f"Idempotency-Key: {reason}",
                                       field="Idempotency-Key", reason=reason))
    if location and location[0] == "body" and len(location) == 1 and first.get("type") == "json_invalid":
        return _respond(400, ErrorBody(error="malformed_json", message=f"the body is not valid JSON: {reason}"))
    return _respond(422, ErrorBody(error="invalid_request", message=f"{field}: {reason}", field=field, reason=reason))


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
    error = codes.get(exc.status_code, "http_error")
    return _respond(exc.status_code, ErrorBody(error=error, message=str(exc.detail)), getattr(exc, "headers", None))


def _kmop_error(request: Request, exc: KmopError) -> JSONResponse:
    if isinstance(exc, InvalidJob):
        return _respond(422, ErrorBody(error="invalid_job", message=str(exc), field=exc.field, reason=exc.reason))
    if isinstance(exc, InvalidKeyPart):
        return _respond(422, ErrorBody(error="invalid_request", message=str(exc), field=exc.field,
                                       reason=str(exc).split(": ", 1)[-1]))
    if isinstance(exc, StepOutOfOrder):
        return _respond(409, ErrorBody(error="step_out_of_order", message=str(exc)))
    if isinstance(exc, TransientError):
        logger.warning("unavailable: %s: %s", type(exc).__name__, exc)
        what = "storage" if isinstance(exc, StorageUnavailable) else "a shared resource (the dossier lock)"
        return _respond(503, ErrorBody(error="unavailable", message=f"{what} cannot be reached now; try again later"),
                        {"Retry-After": RETRY_AFTER_SECONDS})
    logger.error("request failed: %s: %s", type(exc).__name__, exc)
    return _respond(500, ErrorBody(error="internal_error", message=f"{type(exc).__name__}: the failure was logged"))


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return _respond(500, ErrorBody(error="internal_error", message="an unexpected error occurred; it was logged"))


def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(KmopError, _kmop_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
