"""The timestamp authority a signer uses: an RFC 3161 server over HTTP, or the development TSA.

The development TSA (from the development PKI's ``timestamp_authority`` identity) signs tokens
in-process; it exists so that the demo makes timestamped signatures with no network. Production
configures ``KMOP_TSA_URL`` (or ``timestamp_authority.url`` in the identities file).

Every timestamper is wrapped in ``RetryingTimeStamper``: a request that fails is tried again a
bounded number of times with exponential backoff, then ``TimestampUnavailable`` is raised (a
``TransientError``: the queue retries the whole job later). A signature is never made without
its timestamp.
"""

from __future__ import annotations

import asyncio
import logging

from asn1crypto import cms
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError

from kmop.errors import TimestampUnavailable

from .identities import IdentityStore
from .memory_keys import ParsedKeyDevTimeStamper

logger = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF = 0.5
MAX_BACKOFF = 8.0


class RetryingTimeStamper(TimeStamper):
    """Asks ``inner`` for a token; on failure waits ``backoff`` seconds (doubling, at most
    ``MAX_BACKOFF``) and asks again, ``attempts`` times in all, then raises
    ``TimestampUnavailable``. The time spent is bounded by ``attempts`` times the inner
    timestamper's own timeout plus the waits (about 3.5 s of waiting with the defaults)."""

    def __init__(self, inner: TimeStamper, attempts: int = DEFAULT_ATTEMPTS, backoff: float = DEFAULT_BACKOFF) -> None:
        if attempts < 1:
            raise ValueError("attempts: at least 1")
        super().__init__(include_nonce=inner.include_nonce)
        self.inner = inner
        self.attempts = attempts
        self.backoff = backoff
        self.requests_made = 0

    @property
    def authority(self) -> str:
        url = getattr(self.inner, "url", None)
        return url or "development TSA (in-process)"

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            self.requests_made += 1
            try:
                return await self.inner.async_timestamp(message_digest, md_algorithm)
            except (TimestampRequestError, OSError, asyncio.TimeoutError, ValueError) as exc:
                cause = exc.__cause__ or exc
                if attempt == self.attempts:
                    raise TimestampUnavailable(
                        f"timestamp authority {self.authority} failed {self.attempts} times; "
                        f"last error: {type(cause).__name__}: {cause or exc}"
                    ) from exc
                logger.warning("timestamp request %d/%d to %s failed (%s); retrying in %.1f s",
                               attempt, self.attempts, self.authority, cause, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
        raise AssertionError("unreachable")  # pragma: no cover


def timestamper_for(
    tsa_url: str | None,
    identities: IdentityStore,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = DEFAULT_BACKOFF,
) -> RetryingTimeStamper | None:
    """The configured timestamp authority: ``tsa_url`` if given, else the identities file's."""
    inner: TimeStamper | None = None
    tsa = identities.tsa
    if tsa_url:
        inner = HTTPTimeStamper(tsa_url, timeout=tsa.timeout if tsa else 10)
    elif tsa is not None and tsa.url:
        inner = HTTPTimeStamper(tsa.url, timeout=tsa.timeout)
    else:
        dev = identities.timestamp_authority()
        if dev is not None:
            inner = ParsedKeyDevTimeStamper(dev)
    return RetryingTimeStamper(inner, attempts, backoff) if inner is not None else None
