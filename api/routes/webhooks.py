"""``GET /webhooks/deliveries``: every webhook event sent for job outcomes, with its attempts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ..app import services_of
from ..auth import ApiRole, Principal, require
from ..errors import error_responses
from ..models import DOSSIER_ID_PATTERN, WebhookDeliveries, WebhookDelivery

router = APIRouter(tags=["webhooks"])


@router.get(
    "/webhooks/deliveries",
    response_model=WebhookDeliveries,
    summary="Webhook events and their delivery attempts (status, error, duration), oldest first",
    responses=error_responses(401, 403, 422, 503),
)
def deliveries(
    request: Request,
    principal: Annotated[Principal, Depends(require(ApiRole.SERVICE))],
    dossier_id: Annotated[str | None, Query(pattern=DOSSIER_ID_PATTERN, description="only this dossier's")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many events (the latest)")] = 100,
) -> WebhookDeliveries:
    from ..callbacks import list_deliveries

    events = list_deliveries(services_of(request).store, dossier_id, limit)
    return WebhookDeliveries(deliveries=[WebhookDelivery(**e) for e in events])
