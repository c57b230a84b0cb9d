"""Webhook signatures a receiver can check: HMAC-SHA256 over id, timestamp and body.

The scheme is the Standard Webhooks one (standardwebhooks.com), so its receiver libraries work:

- ``webhook-id``: the event id, the same for every retry of one event: de-duplicate on it;
- ``webhook-timestamp``: Unix seconds when this attempt was signed;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``.

The key is ``KMOP_WEBHOOK_SECRET``: either ``whsec_<base64>`` (the key is the decoded bytes, as
Standard Webhooks generates them) or any other string of at least 32 characters (its UTF-8
bytes). A receiver refuses a timestamp further than ``tolerance`` seconds from its clock, which
bounds replays of a captured delivery; ``verify`` does all of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(Exception):
    """A delivery whose signature, timestamp or headers do not check out."""


def signing_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    return secret.encode("utf-8")


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(signing_key(secret), f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def signature_headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, event_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check a delivery; returns its event id, raises ``WebhookVerificationError`` otherwise."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        event_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except KeyError as exc:
        raise WebhookVerificationError(f"missing header {exc.args[0]}") from None
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a whole number") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(f"timestamp {timestamp} is more than {tolerance} s from now")
    expected = sign(secret, event_id, timestamp, body).encode("ascii")
    if not any(hmac.compare_digest(expected, s.encode("ascii", "replace")) for s in signatures):
        raise WebhookVerificationError("no signature matches")
    return event_id
