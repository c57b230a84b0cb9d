"""The ASGI application: ``create_app()`` builds it from the environment; uvicorn serves it.

Handlers translate requests into calls of the functions the CLI and the workers use
(``parse_job``, ``submit_job``, the state tracker, the document store, ``verify_pdf``); this
module only wires them: settings, the shared ``Services``, the routers and the error handlers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asn1crypto import x509
from fastapi import FastAPI, Request
from pydantic import BaseModel

from kmop.settings import Settings, SettingsError, load_settings
from kmop.signing_requests import load_trust_roots
from storage.base import DocumentStore
from workflow.tracker import Tracker

from .callbacks import install_webhook_callbacks
from .errors import install_error_handlers
from .idempotency import IdempotencyRecords
from .settings import ApiSettings, load_api_settings

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
                    load_trust_roots(settings.external_trust_roots, "KMOP_EXTERNAL_TRUST_ROOTS"))


class Health(BaseModel):
    status: str


def create_app(services: Services | None = None) -> FastAPI:
    """The application; ``SettingsError`` names a missing or malformed variable."""
    from .routes import documents, dossiers, jobs, signing_requests, verifications, webhooks

    services = services or build_services()
    app = FastAPI(
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

    return app


def services_of(request: Request) -> Services:
    return request.app.state.services
