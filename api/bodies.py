"""Request bodies read with a size limit: 413 before a byte too many is held in memory.

``Content-Length`` beyond the limit is refused at once; a body without one (chunked) is read
until it passes the limit. The limit is per route: a job is JSON (1 MiB), an upload a PDF
(``KMOP_API_MAX_UPLOAD_BYTES``).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from .errors import ApiError


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
