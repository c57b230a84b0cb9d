"""Request bodies read with a size limit: 413 before a byte too many is held in memory.

``Content-Length`` beyond the limit is refused at once; a body without one (chunked) is read
until it passes the limit. The limit is per route: a job is JSON (1 MiB), an upload a PDF
(``KMOP_API_MAX_UPLOAD_BYTES``), sent as the body or as the ``file`` field of a form.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from .errors import ApiError

_FORM_OVERHEAD = 64 * 1024  # boundaries and part headers around the file

PDF_UPLOAD_BODY: dict[str, Any] = {"required": True, "content": {
    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
}}
"""The OpenAPI request body of a PDF upload (``read_pdf_upload``)."""


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the request body is larger than {limit} bytes")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON: 415 unless it is declared JSON, 413 if too large, 400 if it does not parse."""
    kind = media_type(request)
    if kind != "application/json" and not kind.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", f"send the body as application/json, not {kind or 'nothing'}")
    body = await read_limited(request, limit)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


async def read_pdf_upload(request: Request, limit: int, name: str) -> tuple[bytes, str]:
    """An uploaded file and its name: the body as ``application/pdf``, or the ``file`` field of a
    ``multipart/form-data`` form; 413 beyond ``limit`` bytes, 415 for another media type."""
    kind = media_type(request)
    if kind == "application/pdf":
        return await read_limited(request, limit), name
    if kind == "multipart/form-data":
        raw = await read_limited(request, limit + _FORM_OVERHEAD)
        parser = MultiPartParser(request.headers, _once(raw), max_files=1, max_fields=10)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise ApiError(400, "malformed_form", f"the multipart body cannot be read: {exc}") from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "invalid_request", "file: is required (the PDF as a file field)",
                           field="file", reason="is required")
        data = await upload.read()
        await form.close()
        if len(data) > limit:
            raise ApiError(413, "too_large", f"the file is larger than {limit} bytes")
        return data, upload.filename or name
    raise ApiError(415, "unsupported_media_type",
                   f"send the PDF as application/pdf or as the file field of multipart/form-data, not {kind or 'nothing'}")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
