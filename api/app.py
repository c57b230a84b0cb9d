"""The ASGI application: ``create_app()`` builds it from the environment; uvicorn serves it.

Handlers translate requests into calls of the functions the CLI and the workers use
(``parse_job``, ``submit_job``, the state tracker, the document store, ``verify_pdf``); this
module only wires them: settings, the shared ``Services``, the routers, the error handlers, the
``RequestGuard`` every request passes first (``api.guard``), ``/docs`` with Swagger UI served
from the ``swagger-ui-bundle-v2`` package (no CDN), and the limits the settings impose written
into ``/openapi.json`` so that it describes what this server accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from typing import Any

import swagger_ui_bundle
from asn1crypto import x509
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from kmop.settings import Settings, SettingsError, load_settings
from kmop.signing_requests import load_trust_roots
from storage.base import DocumentStore
from workflow.tracker import Tracker

from .bodies import FORM_OVERHEAD, MAX_FORM_FIELDS, MAX_JSON_DEPTH
from .callbacks import install_webhook_callbacks
from .errors import install_error_handlers
from .guard import RequestGuard
from .idempotency import IdempotencyRecords
from .models import DEFAULT_TOKEN_SECONDS
from .settings import MAX_JOB_BYTES, ApiSettings, load_api_settings
from .webhook_targets import WebhookTargets, targets_from_env

API_VERSION = "1.0.0"


@dataclass
class Services:
    """What the handlers share: built once at start-up."""

    settings: ApiSettings
    core: Settings
    store: DocumentStore
    tracker: Tracker
    trust_roots: list[x509.Certificate]
    idempotency: IdempotencyRecords
    external_trust_roots: list[x509.Certificate] = field(default_factory=list)
    """What signatures made elsewhere must chain to (``KMOP_EXTERNAL_TRUST_ROOTS``)."""
    webhook_targets: WebhookTargets = field(default_factory=WebhookTargets)
    """Where webhooks may go (``KMOP_WEBHOOK_ALLOWED_NETWORKS``; public addresses otherwise)."""


def _load_roots(paths: tuple[Path, ...]) -> list[x509.Certificate]:
    roots = load_trust_roots(paths, "KMOP_API_TRUST_ROOTS")
    if not roots:
        raise SettingsError("no trust root could be loaded for POST /verifications")
    return roots


def build_services(settings: ApiSettings | None = None, core: Settings | None = None) -> Services:
    from workers.broker import install_broker
    from workers.factories import store_from_settings, tracker_from_settings

    settings = settings or load_api_settings()
    core = core or load_settings()
    install_webhook_callbacks(install_broker(core))
    store = store_from_settings(core)
    return Services(settings, core, store, tracker_from_settings(core, store),
                    _load_roots(settings.trust_roots), IdempotencyRecords(store),
                    load_trust_roots(settings.external_trust_roots, "KMOP_EXTERNAL_TRUST_ROOTS"),
                    targets_from_env())


class Health(BaseModel):
    status: str


def create_app(services: Services | None = None) -> FastAPI:
    """The application; ``SettingsError`` names a missing or malformed variable."""
    from .routes import documents, dossiers, jobs, signing_requests, verifications, webhooks

    services = services or build_services()
    app = FastAPI(
        docs_url=None,
        redoc_url=None,
        title="kmop-docs API",
        version=API_VERSION,
        description=(
            "Signed documents for kmo-portefeuille registration dossiers. Producers (role service) "
            "submit document jobs and facts and follow dossiers; applicants (a token for one dossier) "
            "download their documents and return the ones they sign with their own means (signing "
            "requests); the agency verifies signed PDFs. Every refusal is a JSON "
            "ErrorBody naming the problem."
        ),
    )
    app.state.services = services
    install_error_handlers(app)
    for module in (jobs, dossiers, documents, signing_requests, verifications, webhooks):
        app.include_router(module.router)

    @app.get("/health", response_model=Health, tags=["health"], summary="Liveness (no authentication)")
    def health() -> Health:
        return Health(status="ok")

    _install_docs(app)
    app.openapi = lambda: _openapi(app, services.settings)  # type: ignore[method-assign]
    app.add_middleware(RequestGuard, settings=services.settings, routes=lambda: app.router.routes,
                       public_paths=frozenset({"/health", OPENAPI_PATH, DOCS_PATH}),
                       public_prefixes=(DOCS_ASSETS_PATH + "/",))
    return app


OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
DOCS_ASSETS_PATH = "/docs/assets"


def _install_docs(app: FastAPI) -> None:
    """Swagger UI from the pinned package's files, served by this API: no browser fetches a CDN."""
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)), name="swagger-ui")

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_PATH, title=f"{app.title} - Swagger UI", oauth2_redirect_url=None,
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        )


def _openapi(app: FastAPI, settings: ApiSettings) -> dict[str, Any]:
    """FastAPI's description with the limits this server's settings impose written in."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    description = FastAPI.openapi(app)
    ttl = description["components"]["schemas"]["TokenRequest"]["properties"]["ttl_seconds"]
    ttl["maximum"] = settings.max_token_seconds
    ttl["default"] = min(DEFAULT_TOKEN_SECONDS, settings.max_token_seconds)
    for item in description["paths"].values():
        for operation in item.values():
            body = operation.get("requestBody")
            if body is None:
                continue
            content = body.get("content", {})
            if "application/pdf" in content:
                limit = settings.max_upload_bytes
                content["application/pdf"]["schema"]["maxLength"] = limit
                content["multipart/form-data"]["schema"]["properties"]["file"]["maxLength"] = limit
                body["description"] = (
                    f"The PDF, at most {limit} bytes (KMOP_API_MAX_UPLOAD_BYTES): as the body (application/pdf), "
                    f"or as the file field of multipart/form-data, whose whole body may be at most "
                    f"{limit + FORM_OVERHEAD} bytes with one file and at most {MAX_FORM_FIELDS} fields. "
                    "Larger: 413."
                )
            elif "application/json" in content:
                body["description"] = (
                    f"JSON of at most {MAX_JOB_BYTES} bytes (larger: 413), nested at most {MAX_JSON_DEPTH} levels, "
                    "UTF-8 without lone surrogates (otherwise: 400 naming where)."
                )
    app.openapi_schema = description
    return description


def services_of(request: Request) -> Services:
    return request.app.state.services
