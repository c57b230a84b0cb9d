"""Bodies that once made the API answer 500 are refused with 400 and the reason, on every JSON
route: JSON nested deeper than the parser (or the idempotency fingerprint) can go, a lone
surrogate escape (``"\\ud800"``, which no UTF-8 text can hold), bytes that are not UTF-8.
The routes are the application's own (``app.routes``), so a route added later is covered.
Also here: what ``/openapi.json`` and ``/docs`` say of the limits, checked against the server.

The application runs in-process (httpx's ASGI transport) on a local-folder store and dramatiq's
stub broker; tests/test_api_limits.py runs it as a uvicorn process.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from api.bodies import MAX_JSON_DEPTH, accepts_json, accepts_upload
from api.guard import every_route, role_checks
from tests.support.in_process_api import (
    MAX_TOKEN_SECONDS,
    MAX_UPLOAD,
    SERVICE,
    call,
    concrete_path,
    in_process_app,
    token_for,
)

def json_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in every_route(app.router.routes) if isinstance(r, APIRoute) and accepts_json(r)]


def _json_call(app: FastAPI, route: APIRoute, body: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token_for(route)}", "Content-Type": "application/json",
               "Idempotency-Key": f"k-{uuid.uuid4()}"}
    [method] = route.methods
    return call(app, method, concrete_path(route), content=body, headers=headers)


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return in_process_app(tmp_path)


def test_the_json_routes_are_the_ones_that_take_json(app: FastAPI) -> None:
    found = {(next(iter(r.methods)), r.path_format) for r in json_routes(app)}
    assert found == {("POST", "/jobs"), ("POST", "/dossiers/{dossier_id}/facts"),
                     ("POST", "/dossiers/{dossier_id}/applicant-tokens")}


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_deeper_than_the_parser_goes_is_refused_with_400_and_logged(
    app: FastAPI, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"dossier_id": ' + b"[" * depth + b"]" * depth + b"}"
    for route in json_routes(app):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kmop.api"):
            answer = _json_call(app, route, body)
        assert answer.status_code == 400, (route.path_format, answer.text)
        refusal = answer.json()
        assert refusal["error"] == "malformed_json" and f"deeper than {MAX_JSON_DEPTH} levels" in refusal["reason"]
        assert refusal["field"] in ("body", "dossier_id" + "[0]" * (MAX_JSON_DEPTH - 1))
        assert any(r.exc_info or "nest" in r.getMessage() for r in caplog.records), route.path_format


def test_json_just_deeper_than_allowed_is_refused_naming_where(app: FastAPI) -> None:
    body = b'{"data": {"provider": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}}"
    for route in json_routes(app):
        refusal = _json_call(app, route, body).json()
        assert refusal["error"] == "malformed_json", (route.path_format, refusal)
        assert refusal["field"] == "data.provider" + "[0]" * (MAX_JSON_DEPTH - 2)


@pytest.mark.parametrize("body, field", [
    (b'{"dossier_id": "D-\\ud800"}', "dossier_id"),
    (b'{"data": {"provider": {"name": "ACME \\udfff BV"}}}', "data.provider.name"),
    (b'{"data": {"items": [1, 2, "\\ud83d"]}}', "data.items[2]"),
    (b'{"da\\ud800ta": 1}', "da\\ud800ta"),
])
def test_a_lone_surrogate_escape_is_refused_with_400_naming_the_field(
    app: FastAPI, body: bytes, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    for route in json_routes(app):
        with caplog.at_level(logging.WARNING, logger="kmop.api"):
            answer = _json_call(app, route, body)
        assert answer.status_code == 400, (route.path_format, answer.text)
        refusal = answer.json()
        assert (refusal["error"], refusal["field"]) == ("malformed_json", field), (route.path_format, refusal)
        assert "lone surrogate" in refusal["reason"]
    assert any("lone surrogate" in r.getMessage() for r in caplog.records)
    # A pair of surrogate escapes is one character (U+1F600), not a malformed body: here an
    # unknown field of a token request.
    route = next(r for r in json_routes(app) if r.path_format.endswith("/applicant-tokens"))
    answer = _json_call(app, route, b'{"ttl_seconds": 600, "\\ud83d\\ude00": 1}')
    assert answer.status_code == 422 and answer.json()["field"] == "\U0001f600"


def test_bytes_that_are_not_utf8_are_refused_with_400(app: FastAPI) -> None:
    for route in json_routes(app):
        answer = _json_call(app, route, b'{"dossier_id": "D-\xff\xfe"}')
        assert answer.status_code == 400, (route.path_format, answer.text)
        assert answer.json()["error"] == "malformed_json" and "UTF-8" in answer.json()["message"]


# --- the description says what the server does -------------------------------------------------

def test_openapi_states_this_servers_token_lifetime_and_the_server_keeps_to_it(app: FastAPI) -> None:
    described = call(app, "GET", "/openapi.json").json()
    ttl = described["components"]["schemas"]["TokenRequest"]["properties"]["ttl_seconds"]
    assert ttl["maximum"] == MAX_TOKEN_SECONDS and ttl["default"] == 86_400
    service = {"Authorization": f"Bearer {SERVICE}"}
    over = call(app, "POST", "/dossiers/D-1/applicant-tokens", json={"ttl_seconds": MAX_TOKEN_SECONDS + 1},
                headers=service)
    assert over.status_code == 422 and over.json()["field"] == "ttl_seconds"
    at_most = call(app, "POST", "/dossiers/D-1/applicant-tokens", json={"ttl_seconds": MAX_TOKEN_SECONDS},
                   headers=service)
    assert at_most.status_code == 404  # accepted; the dossier does not exist


def test_a_shorter_maximum_lowers_the_default_token_lifetime(tmp_path: Path) -> None:
    app = in_process_app(tmp_path, KMOP_API_MAX_TOKEN_SECONDS="3600")
    ttl = call(app, "GET", "/openapi.json").json()["components"]["schemas"]["TokenRequest"]["properties"]["ttl_seconds"]
    assert (ttl["maximum"], ttl["default"]) == (3600, 3600)
    answer = call(app, "POST", "/dossiers/D-1/applicant-tokens", json={}, headers={"Authorization": f"Bearer {SERVICE}"})
    assert answer.status_code == 404  # not 422: the default fits the maximum


def test_openapi_states_the_body_limits(app: FastAPI) -> None:
    described = call(app, "GET", "/openapi.json").json()
    uploads = [r for r in every_route(app.router.routes) if isinstance(r, APIRoute) and accepts_upload(r)]
    assert len(uploads) == 2
    for route in uploads:
        body = described["paths"][route.path_format][next(iter(route.methods)).lower()]["requestBody"]
        assert body["content"]["application/pdf"]["schema"]["maxLength"] == MAX_UPLOAD
        assert body["content"]["multipart/form-data"]["schema"]["properties"]["file"]["maxLength"] == MAX_UPLOAD
        assert f"{MAX_UPLOAD + 64 * 1024} bytes" in body["description"]
    for route in json_routes(app):
        body = described["paths"][route.path_format]["post"]["requestBody"]
        assert "1048576 bytes" in body["description"] and f"{MAX_JSON_DEPTH} levels" in body["description"]


def test_docs_load_swagger_ui_from_this_server_not_a_cdn(app: FastAPI) -> None:
    page = call(app, "GET", "/docs")
    assert page.status_code == 200
    sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text) + re.findall(r"url: *'([^']+)'", page.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    for source in sources:
        assert call(app, "GET", source).status_code == 200, source
    assert "SwaggerUIBundle" in call(app, "GET", "/docs/assets/swagger-ui-bundle.js").text
    assert '"validatorUrl": null' in page.text  # Swagger UI would fetch a badge from validator.swagger.io


# --- every route: the token first ------------------------------------------------------------------

PUBLIC = {("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/docs")}


def test_every_route_but_the_public_ones_wants_a_token_before_it_looks_at_the_body(app: FastAPI) -> None:
    routes = [r for r in every_route(app.router.routes) if isinstance(r, APIRoute)]
    assert len(routes) >= 16
    for route in routes:
        for method in route.methods - {"HEAD"}:
            if (method, route.path_format) in PUBLIC:
                assert call(app, method, route.path_format).status_code == 200
                continue
            assert role_checks(route), f"{method} {route.path_format} names no role (require(...))"
            answer = call(app, method, concrete_path(route), content=b'{"not json',
                          headers={"Content-Type": "application/json"})
            assert answer.status_code == 401, (method, route.path_format, answer.text)
            assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_route_added_later_is_guarded_too(app: FastAPI) -> None:
    seen: list[bytes] = []

    @app.post("/added-later")
    async def added(request: Request) -> dict[str, int]:
        seen.append(await request.body())
        return {"size": len(seen[-1])}

    assert call(app, "POST", "/added-later", content=b"x" * 10).status_code == 401
    service = {"Authorization": f"Bearer {SERVICE}"}
    too_large = call(app, "POST", "/added-later", content=b"x" * (1024 * 1024 + 1), headers=service)
    assert too_large.status_code == 413 and "1048576 bytes" in too_large.json()["message"]
    assert seen == []
    assert call(app, "POST", "/added-later", content=b"x" * 10, headers=service).json() == {"size": 10}
