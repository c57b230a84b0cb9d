"""Who is calling: one bearer token per request, resolved to a role.

| role | credential | may |
|---|---|---|
| ``service`` | ``KMOP_API_SERVICE_TOKEN`` | submit jobs, record facts, read any dossier, issue applicant tokens, list webhook deliveries |
| ``applicant`` | a token from ``POST /dossiers/{id}/applicant-tokens`` | list and download the documents of that one dossier |
| ``agency`` | ``KMOP_API_AGENCY_TOKEN`` | verify uploaded PDFs |

No credentials, or ones that are invalid or expired: 401 with ``WWW-Authenticate: Bearer``. A
role that may not use the operation: 403. An applicant asking for another dossier gets the very
404 a dossier that does not exist gets.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError, not_found
from .tokens import TokenExpired, TokenInvalid, looks_like_token, read_token


class ApiRole(str, Enum):
    SERVICE = "service"
    APPLICANT = "applicant"
    AGENCY = "agency"


@dataclass(frozen=True)
class Principal:
    role: ApiRole
    dossier_id: str | None = None  # the one dossier an applicant's token opens


bearer = HTTPBearer(
    auto_error=False,
    description="The service or agency token, or an applicant token issued for one dossier",
)


def _unauthorized(error: str, message: str) -> ApiError:
    return ApiError(401, error, message, headers={"WWW-Authenticate": 'Bearer realm="kmop"'})


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    if credentials is None:
        raise _unauthorized("missing_credentials", "send 'Authorization: Bearer <token>'")
    settings = request.app.state.services.settings
    token = credentials.credentials
    if _same(token, settings.service_token):
        return Principal(ApiRole.SERVICE)
    if _same(token, settings.agency_token):
        return Principal(ApiRole.AGENCY)
    if looks_like_token(token):
        try:
            grant = read_token(settings.applicant_key, token, int(time.time()))
        except TokenExpired:
            raise _unauthorized("token_expired", "the applicant token has expired; ask for a new one") from None
        except TokenInvalid:
            raise _unauthorized("invalid_credentials", "the token is not valid") from None
        return Principal(ApiRole.APPLICANT, grant.dossier_id)
    raise _unauthorized("invalid_credentials", "the token is not valid")


def require(*roles: ApiRole) -> Callable[..., Principal]:
    """A dependency that lets only ``roles`` through (403 for any other authenticated caller)."""
    names = ", ".join(r.value for r in roles)

    def check(principal: Principal = Depends(authenticate)) -> Principal:
        if principal.role not in roles:
            raise ApiError(403, "forbidden", f"this operation is for the {names} role; you are {principal.role.value}")
        return principal

    return check


def check_dossier_access(principal: Principal, dossier_id: str) -> None:
    """An applicant may see only the dossier of its token; any other one does not exist for it."""
    if principal.role is ApiRole.APPLICANT and principal.dossier_id != dossier_id:
        raise not_found(f"dossier {dossier_id}")
