"""Applicant tokens: a bearer token that opens one dossier, until it expires.

Format: ``kmop1.<payload>.<mac>``, where ``payload`` is the base64url (unpadded) JSON
``{"dossier_id": ..., "iat": ..., "exp": ...}`` (Unix seconds) and ``mac`` the base64url
HMAC-SHA256 of ``kmop1.<payload>`` under the API's applicant key (``KMOP_API_APPLICANT_KEY``).
The API issues them (``POST /dossiers/{id}/applicant-tokens``, service role) and keeps no
record: the signature and the expiry are the whole check.

Limits: a token cannot be revoked before it expires except by changing the key, which revokes
every token; keep lifetimes short.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

PREFIX = "kmop1"


class TokenInvalid(Exception):
    """Not a token this API issued (malformed, or the signature does not match)."""


class TokenExpired(Exception):
    """A genuine token whose lifetime is over."""


@dataclass(frozen=True)
class ApplicantGrant:
    dossier_id: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, signed: str) -> str:
    return _b64(hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest())


def issue_token(key: bytes, dossier_id: str, issued_at: int, expires_at: int) -> str:
    payload = _b64(json.dumps({"dossier_id": dossier_id, "iat": issued_at, "exp": expires_at},
                              separators=(",", ":"), sort_keys=True).encode())
    signed = f"{PREFIX}.{payload}"
    return f"{signed}.{_mac(key, signed)}"


def looks_like_token(text: str) -> bool:
    return text.startswith(PREFIX + ".")


def read_token(key: bytes, token: str, now: int) -> ApplicantGrant:
    """The grant a token carries; ``TokenInvalid`` or ``TokenExpired`` otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenInvalid("not an applicant token")
    signed = f"{parts[0]}.{parts[1]}"
    try:
        valid = hmac.compare_digest(_mac(key, signed).encode("ascii"), parts[2].encode("ascii"))
    except UnicodeEncodeError:
        valid = False
    if not valid:
        raise TokenInvalid("the token's signature does not match")
    try:
        claims = json.loads(_unb64(parts[1]))
        grant = ApplicantGrant(str(claims["dossier_id"]), int(claims["iat"]), int(claims["exp"]))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise TokenInvalid(f"the token's payload is malformed ({exc})") from None
    if now >= grant.expires_at:
        raise TokenExpired(f"the token expired at {grant.expires_at}")
    return grant
