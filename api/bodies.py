"""Request bodies: what a route takes, how JSON is parsed, how an uploaded PDF is read.

``api.guard.RequestGuard`` reads every body before the handler, bounded (413) and, for a route
that takes JSON, parsed with ``parse_json`` (400 for a body that is not UTF-8 JSON, is nested
deeper than ``MAX_JSON_DEPTH`` or holds a lone surrogate, naming where). The limit is per route:
JSON is at most 1 MiB, an upload a PDF (``KMOP_API_MAX_UPLOAD_BYTES``), sent as the body or as
the ``file`` field of a form. The readers below check the limits again, so a handler stands
on its own.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from .errors import ApiError

logger = logging.getLogger("kmop.api")

FORM_OVERHEAD = 64 * 1024  # boundaries and part headers around the file
MAX_JSON_DEPTH = 32  # a job's data nests about six levels deep
MAX_FORM_FIELDS = 10
JSON_SCOPE_KEY = "kmop.json"
"""Where ``RequestGuard`` leaves the parsed JSON body, in the ASGI scope."""

PDF_UPLOAD_BODY: dict[str, Any] = {"required": True, "content": {
    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
}}
"""The OpenAPI request body of a PDF upload (``read_pdf_upload``); ``api.app`` adds the limits."""


def _request_body(route: BaseRoute) -> dict[str, Any]:
    extra = route.openapi_extra if isinstance(route, APIRoute) else None
    return (extra or {}).get("requestBody") or {}


def accepts_upload(route: BaseRoute) -> bool:
    """Whether the route takes a PDF upload (its OpenAPI request body offers application/pdf)."""
    return "application/pdf" in _request_body(route).get("content", {})


def accepts_json(route: BaseRoute) -> bool:
    """Whether the route takes a JSON body: a body parameter, or a JSON request body it reads itself."""
    if isinstance(route, APIRoute) and route.body_field is not None:
        return True
    return "application/json" in _request_body(route).get("content", {})


def is_json_media(kind: str) -> bool:
    return kind == "application/json" or kind.endswith("+json")


def _malformed(message: str, field: str | None = None, reason: str | None = None) -> ApiError:
    return ApiError(400, "malformed_json", message, field=field, reason=reason)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _member(path: str, key: str) -> str:
    shown = key.encode("utf-8", "backslashreplace").decode("utf-8")
    return f"{path}.{shown}" if path else shown


def _check_parsed(value: Any) -> None:
    """Depth and lone surrogates (in names and values), walked without recursion: a body deep
    enough to overflow ``json.loads`` is refused before, one just below it must not overflow here."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                field = path or "body"
                reason = f"holds a lone surrogate \\u{ord(found.group()):04x}, which is not a character"
                raise _malformed(f"{field}: {reason}", field, reason)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            field = path or "body"
            raise _malformed(f"{field}: nests deeper than {MAX_JSON_DEPTH} levels", field,
                             f"nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, member in item.items():
                inner = _member(path, key)
                stack.append((key, inner, depth))
                stack.append((member, inner, depth + 1))
        else:
            stack.extend((member, f"{path}[{index}]", depth + 1) for index, member in enumerate(item))


def parse_json(raw: bytes) -> Any:
    """The body as JSON; ``ApiError`` 400 naming what is wrong and, where it can, the field."""
    try:
        value = json.loads(raw)
    except RecursionError as exc:
        logger.warning("refused a JSON body nested too deeply to parse", exc_info=exc)
        raise _malformed(f"the body nests deeper than {MAX_JSON_DEPTH} levels", "body",
                         f"nests deeper than {MAX_JSON_DEPTH} levels") from None
    except UnicodeDecodeError as exc:
        logger.warning("refused a JSON body that is not UTF-8", exc_info=exc)
        raise _malformed(f"the body is not UTF-8: {exc.reason} at byte {exc.start}", "body",
                         "is not UTF-8") from None
    except ValueError as exc:
        raise _malformed(f"the body is not valid JSON: {exc}") from None
    try:
        _check_parsed(value)
    except ApiError as refusal:
        logger.warning("refused a JSON body: %s", refusal.body.message)
        raise
    return value


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
    """The body as JSON: 415 unless it is declared JSON, 413 if too large, 400 if it does not parse
    (``parse_json``); the guard's parse is taken when it made one."""
    kind = media_type(request)
    if not is_json_media(kind):
        raise ApiError(415, "unsupported_media_type", f"send the body as application/json, not {kind or 'nothing'}")
    if JSON_SCOPE_KEY in request.scope:
        return request.scope[JSON_SCOPE_KEY]
    return parse_json(await read_limited(request, limit))


async def read_pdf_upload(request: Request, limit: int, name: str) -> tuple[bytes, str]:
    """An uploaded file and its name: the body as ``application/pdf``, or the ``file`` field of a
    ``multipart/form-data`` form; 413 beyond ``limit`` bytes, 415 for another media type."""
    kind = media_type(request)
    if kind == "application/pdf":
        return await read_limited(request, limit), name
    if kind == "multipart/form-data":
        raw = await read_limited(request, limit + FORM_OVERHEAD)
        parser = MultiPartParser(request.headers, _once(raw), max_files=1, max_fields=MAX_FORM_FIELDS)
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
