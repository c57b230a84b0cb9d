"""The HTTP API in-process (httpx's ASGI transport) on a local-folder store and dramatiq's stub
broker, with the tokens of each role: for tests of what the API refuses before any work starts."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.app import Services, create_app
from api.auth import ApiRole
from api.guard import role_checks
from api.idempotency import IdempotencyRecords
from api.settings import load_api_settings
from api.tokens import issue_token
from api.webhook_targets import WebhookTargets
from kmop.settings import load_settings
from storage.local import LocalFolderStore
from workflow.ledger import Ledger
from workflow.tracker import Tracker

SERVICE = "s" * 32
AGENCY = "a" * 32
APPLICANT_KEY = "k" * 32
WEBHOOK_SECRET = "w" * 40
MAX_TOKEN_SECONDS = 7 * 86_400
MAX_UPLOAD = 64 * 1024


def in_process_app(tmp_path: Path, targets: WebhookTargets | None = None, **env: str) -> FastAPI:
    """The API on a local-folder store and a stub broker, as ``kmop api`` builds it otherwise."""
    root = tmp_path / "root.pem"
    root.write_text("not read here")
    settings = load_api_settings({
        "KMOP_API_SERVICE_TOKEN": SERVICE, "KMOP_API_AGENCY_TOKEN": AGENCY, "KMOP_API_APPLICANT_KEY": APPLICANT_KEY,
        "KMOP_API_TRUST_ROOTS": str(root), "KMOP_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "KMOP_API_MAX_TOKEN_SECONDS": str(MAX_TOKEN_SECONDS), "KMOP_API_MAX_UPLOAD_BYTES": str(MAX_UPLOAD), **env})
    core = load_settings({"KMOP_BROKER": "stub", "KMOP_STORAGE": "local", "KMOP_LOCAL_STORAGE_DIR": str(tmp_path)})
    store = LocalFolderStore(tmp_path / "store")
    return create_app(Services(settings, core, store, Tracker(Ledger(store)), [], IdempotencyRecords(store),
                               webhook_targets=targets or WebhookTargets()))


def call(app: FastAPI, method: str, path: str, **options: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.request(method, path, **options)

    return asyncio.run(run())


def token_for(route: APIRoute, dossier_id: str = "D-1") -> str:
    """A valid token of a role the route admits."""
    role = role_checks(route)[0].roles[0]
    if role is ApiRole.APPLICANT:
        now = int(time.time())
        return issue_token(APPLICANT_KEY.encode(), dossier_id, now, now + 600)
    return SERVICE if role is ApiRole.SERVICE else AGENCY


def concrete_path(route: APIRoute) -> str:
    values = {"dossier_id": "D-1", "request_id": str(uuid.uuid4()), "job_id": str(uuid.uuid4()),
              "name": "01-sworn_statement-v1"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path_format)
