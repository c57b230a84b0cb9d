"""Every request is authenticated, authorised and has its body bounded before a handler runs.

``RequestGuard`` is a pure ASGI middleware around the whole application, so it holds for every
route, including ones added later. For each HTTP request it

1. finds the route the request goes to;
2. unless the route is public (``GET``/``HEAD`` of ``/health``, ``/openapi.json``, ``/docs`` and
   the Swagger UI files), resolves the bearer token (401 without a valid one) and, when the
   route was declared with ``require(...)``, checks the role (403), both before a byte of the
   body is read; a route that is not public and names no role still needs a valid token;
3. reads the body, counting while it streams: a ``Content-Length`` above the route's limit is
   refused at once, a chunked body as soon as it passes the limit (413, naming the limit), and
   no more of it is kept (uvicorn discards the rest of the upload);
4. for a route that takes JSON, parses the body once (``api.bodies.parse_json``): a body that
   is not UTF-8 JSON, is nested deeper than ``MAX_JSON_DEPTH`` or holds a lone surrogate is
   refused with 400 naming where;

and only then hands the request on, with the body it read. Limits: ``KMOP_API_MAX_UPLOAD_BYTES``
for a PDF upload (plus ``FORM_OVERHEAD`` for a multipart form around it), ``MAX_JOB_BYTES``
(1 MiB) for every other body. See docs/api.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import PRINCIPAL_SCOPE_KEY, RoleCheck, bearer_token, identify
from .bodies import JSON_SCOPE_KEY, FORM_OVERHEAD, accepts_json, accepts_upload, is_json_media, parse_json
from .errors import ApiError, error_response
from .settings import MAX_JOB_BYTES, ApiSettings

logger = logging.getLogger("kmop.api")

_READ_ONLY = frozenset({"GET", "HEAD"})


def role_checks(route: BaseRoute) -> list[RoleCheck]:
    """The ``require(...)`` dependencies of a route (none for a public one)."""
    found: list[RoleCheck] = []

    def walk(dependant: Dependant) -> None:
        if isinstance(dependant.call, RoleCheck):
            found.append(dependant.call)
        for sub in dependant.dependencies:
            walk(sub)

    if isinstance(route, APIRoute):
        walk(route.dependant)
    return found


def body_limit(route: BaseRoute | None, media_type: str, settings: ApiSettings) -> int:
    """How many body bytes the request may carry."""
    if route is not None and accepts_upload(route):
        if media_type == "multipart/form-data":
            return settings.max_upload_bytes + FORM_OVERHEAD
        if media_type == "application/pdf":
            return settings.max_upload_bytes
    return MAX_JOB_BYTES


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the request body is larger than the limit of {limit} bytes",
                    field="body", reason=f"is larger than {limit} bytes")


class RequestGuard:
    """See the module's docstring. ``public_paths`` and ``public_prefixes`` are answered without
    credentials for ``GET`` and ``HEAD``; ``routes`` is read per request (routes added later count)."""

    def __init__(self, app: ASGIApp, *, settings: ApiSettings, routes: Callable[[], list[BaseRoute]],
                 public_paths: frozenset[str], public_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.settings = settings
        self.routes = routes
        self.public_paths = public_paths
        self.public_prefixes = public_prefixes

    def is_public(self, method: str, path: str) -> bool:
        return method in _READ_ONLY and (path in self.public_paths or path.startswith(self.public_prefixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._admit(scope, receive)
        except ApiError as refusal:
            await error_response(refusal)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _admit(self, scope: MutableMapping[str, Any], receive: Receive) -> bytes:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        route = self._route(scope)
        if not self.is_public(scope["method"], scope["path"]):
            principal = identify(self.settings, bearer_token(headers.get("authorization")))
            for check in role_checks(route) if route is not None else ():
                check.check(principal)
            scope[PRINCIPAL_SCOPE_KEY] = principal
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        limit = body_limit(route, media_type, self.settings)
        body = await _read_bounded(receive, headers.get("content-length"), limit)
        if body and route is not None and accepts_json(route) and is_json_media(media_type):
            scope[JSON_SCOPE_KEY] = parse_json(body)
        return body

    def _route(self, scope: Scope) -> BaseRoute | None:
        return route_for(self.routes(), scope)


def every_route(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Every route of the application, the included routers' ones too, as declared."""
    return [context.original_route for context in iter_route_contexts(routes)]


def route_for(routes: list[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route (as declared) that serves ``scope``'s method and path; None when none does."""
    for context in iter_route_contexts(routes):
        match, _ = context.matches(dict(scope))
        if match is Match.FULL and not isinstance(context.original_route, Mount):
            return context.original_route
    return None


async def _read_bounded(receive: Receive, declared: str | None, limit: int) -> bytes:
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number", field="Content-Length",
                           reason="is not a number") from None
        if length > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "bad_request", "the client went away before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A ``receive`` that gives the body once, then passes on what the server says (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
