"""A dossier for producers: its state, facts without a document, and applicant tokens.

``GET /dossiers/{id}`` answers what ``kmop status`` prints; ``POST /dossiers/{id}/facts`` records
what ``kmop record-fact`` records (``Tracker.record_fact``: 409 when the dossier's state does not
allow it); ``POST /dossiers/{id}/applicant-tokens`` issues a token that opens that one dossier.
A dossier without any event does not exist (404).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse

from signing.roles import Role
from workflow.ledger import Event
from workflow.state import current_state
from workflow.tracker import expected_next

from ..app import services_of
from ..auth import ApiRole, Principal, require
from ..dossiers import documents_of
from ..errors import ApiError, error_responses, not_found
from ..models import (
    DOSSIER_ID_PATTERN,
    DocumentInfo,
    DossierView,
    EventView,
    ExpectedStep,
    FactIn,
    FactRecorded,
    TokenIssued,
    TokenRequest,
)
from ..tokens import issue_token

router = APIRouter(tags=["dossiers"])

DossierId = Annotated[str, Path(pattern=DOSSIER_ID_PATTERN, description="the dossier's id")]


def existing_history(request: Request, dossier_id: str) -> list[Event]:
    history = services_of(request).tracker.history(dossier_id)
    if not history:
        raise not_found(f"dossier {dossier_id}")
    return history


def _expected(history: list[Event]) -> list[ExpectedStep]:
    return [ExpectedStep(action=e.action, role=e.role.value, description=e.description)
            for e in expected_next(current_state(history))]


@router.get(
    "/dossiers/{dossier_id}",
    response_model=DossierView,
    summary="A dossier's phase, what is expected next, its events and documents",
    responses=error_responses(401, 403, 404, 422, 503),
)
def dossier(
    request: Request,
    dossier_id: DossierId,
    principal: Annotated[Principal, Depends(require(ApiRole.SERVICE))],
) -> DossierView:
    history = existing_history(request, dossier_id)
    state = current_state(history)
    return DossierView(
        dossier_id=dossier_id,
        phase=state.phase.value,
        cycle=state.cycle.value,
        state=state.to_dict(),
        expected_next=_expected(history),
        events=[EventView(**{k: v for k, v in e.to_dict().items() if k != "dossier_id"}) for e in history],
        documents=[DocumentInfo(**d.to_dict(dossier_id)) for d in documents_of(history)],
    )


@router.post(
    "/dossiers/{dossier_id}/facts",
    status_code=201,
    response_model=FactRecorded,
    summary="Record a fact without a document: the knowledge test passed, the audit visit held",
    description=(
        "201 when recorded; 200 when the same idempotency_key was recorded before with the same "
        "fact and data (the first record is returned); 422 when it was recorded with another fact "
        "or other data; 409 when the dossier's state does not allow the fact now."
    ),
    responses={200: {"model": FactRecorded, "description": "Already recorded under this idempotency_key"},
               **error_responses(400, 401, 403, 409, 422, 503)},
)
def record_fact(
    request: Request,
    dossier_id: DossierId,
    fact: Annotated[FactIn, Body()],
    principal: Annotated[Principal, Depends(require(ApiRole.SERVICE))],
) -> JSONResponse:
    tracker = services_of(request).tracker
    data = fact.data.model_dump()
    earlier = tracker.find(dossier_id, fact.idempotency_key)
    if earlier is not None and (earlier.type != fact.fact or earlier.payload.get("data") != data):
        raise ApiError(422, "idempotency_key_reused",
                       f"idempotency_key {fact.idempotency_key!r} already recorded {earlier.type} with other data",
                       field="idempotency_key", reason="already used for another fact or other data")
    event, created = tracker.record_fact(dossier_id, fact.fact, Role(fact.role), data, fact.idempotency_key)
    history = tracker.history(dossier_id)
    answer = FactRecorded(dossier_id=dossier_id, fact=fact.fact, event_sequence=event.sequence, created=created,
                          phase=current_state(history).phase.value, expected_next=_expected(history))
    return JSONResponse(answer.model_dump(), status_code=201 if created else 200)


@router.post(
    "/dossiers/{dossier_id}/applicant-tokens",
    status_code=201,
    response_model=TokenIssued,
    summary="Issue a token that lets the applicant list and download this dossier's documents",
    responses=error_responses(400, 401, 403, 404, 422, 503),
)
def applicant_token(
    request: Request,
    dossier_id: DossierId,
    principal: Annotated[Principal, Depends(require(ApiRole.SERVICE))],
    body: Annotated[TokenRequest | None, Body()] = None,
) -> TokenIssued:
    settings = services_of(request).settings
    given = body or TokenRequest()
    ttl = given.ttl_seconds if "ttl_seconds" in given.model_fields_set else min(given.ttl_seconds,
                                                                                settings.max_token_seconds)
    if ttl > settings.max_token_seconds:
        raise ApiError(422, "invalid_request", f"ttl_seconds: at most {settings.max_token_seconds}",
                       field="ttl_seconds", reason=f"must be at most {settings.max_token_seconds}")
    existing_history(request, dossier_id)
    now = int(time.time())
    token = issue_token(settings.applicant_key, dossier_id, now, now + ttl)
    expires = dt.datetime.fromtimestamp(now + ttl, dt.timezone.utc).isoformat(timespec="seconds")
    return TokenIssued(token=token, dossier_id=dossier_id, expires_at=expires, expires_in=ttl)
