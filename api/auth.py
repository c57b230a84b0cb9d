"""Who is calling: one bearer token per request, resolved to a role.

| role | credential | may |
|---|---|---|
| ``service`` | ``KMOP_API_SERVICE_TOKEN`` | submit jobs, record facts, read any dossier, issue applicant tokens, list webhook deliveries |
| ``applicant`` | a token from ``POST /dossiers/{id}/applicant-tokens`` | list and download the documents of that one dossier |
| ``agency`` | ``KMOP_API_AGENCY_TOKEN`` | verify uploaded PDFs |

No credentials, or ones that are invalid or expired: 401 with ``WWW-Authenticate: Bearer``. A
role that may not use the operation: 403. An applicant asking for another dossier gets the very
404 a dossier that does not exist gets.

Both checks run in ``api.guard.RequestGuard`` before a byte of the body is read: ``identify``
resolves the token, and the ``RoleCheck`` dependency that ``require`` gives a route names the
roles the guard checks. The dependencies below then only pick up what the guard found.
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
from .settings import ApiSettings
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


PRINCIPAL_SCOPE_KEY = "kmop.principal"
"""Where ``RequestGuard`` leaves the caller it identified, in the ASGI scope."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, None without one."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def identify(settings: ApiSettings, token: str | None) -> Principal:
    """The caller a bearer token stands for; 401 (``ApiError``) when there is none or it is not valid."""
    if token is None:
        raise _unauthorized("missing_credentials", "send 'Authorization: Bearer <token>'")
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


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    """The caller ``RequestGuard`` identified (``bearer`` declares the scheme in OpenAPI)."""
    found = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(found, Principal):
        return found
    return identify(request.app.state.services.settings, credentials.credentials if credentials else None)


class RoleCheck:
    """The dependency ``require`` gives a route: its ``roles`` are what ``RequestGuard`` checks
    before the body is read, and the check is repeated here for the handler."""

    def __init__(self, roles: tuple[ApiRole, ...]) -> None:
        self.roles = roles

    def check(self, principal: Principal) -> None:
        if principal.role not in self.roles:
            names = ", ".join(r.value for r in self.roles)
            raise ApiError(403, "forbidden", f"this operation is for the {names} role; you are {principal.role.value}")

    def __call__(self, principal: Principal = Depends(authenticate)) -> Principal:
        self.check(principal)
        return principal


def require(*roles: ApiRole) -> Callable[..., Principal]:
    """A dependency that lets only ``roles`` through (403 for any other authenticated caller)."""
    return RoleCheck(roles)


def check_dossier_access(principal: Principal, dossier_id: str) -> None:
    """An applicant may see only the dossier of its token; any other one does not exist for it."""
    if principal.role is ApiRole.APPLICANT and principal.dossier_id != dossier_id:
        raise not_found(f"dossier {dossier_id}")
