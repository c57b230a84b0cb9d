"""How much work one verification may take: a file is verified only up to these bounds, and the
report says what was left unchecked (``FileReport.unchecked``) instead of spending unbounded CPU.
Each signature costs tens of milliseconds (its chain, revocation data, the comparison of what was
appended after it); a file with a thousand signatures costs half a minute.

| variable | meaning | default |
|---|---|---|
| ``KMOP_VERIFY_MAX_SIGNATURES`` | signatures and document timestamps verified in one file; a file with more is not verified | 50 |
| ``KMOP_VERIFY_MAX_REVISIONS`` | revisions (incremental updates) in one file; a file with more is not verified | 200 |
| ``KMOP_VERIFY_SECONDS`` | time one file may take; past it the signatures not yet verified are reported unchecked | 30 |
| ``KMOP_API_VERIFY_WORKERS`` | processes the API verifies in, beside the routes' own | 2 |
| ``KMOP_API_VERIFY_QUEUE`` | verifications that may wait for a worker; more at once are answered 503 | 2 |

The documents the service issues have one or two signatures, a document timestamp per renewal
and some ten revisions; the defaults leave them room for decades of renewals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kmop.settings import int_setting


@dataclass(frozen=True)
class VerificationLimits:
    max_signatures: int = 50
    max_revisions: int = 200
    seconds: int = 30


@dataclass(frozen=True)
class VerificationPoolSettings:
    """Where the API verifies: ``workers`` processes, ``queue`` more waiting; beyond, 503."""

    workers: int = 2
    queue: int = 2


def load_verification_limits(env: Mapping[str, str] | None = None) -> VerificationLimits:
    env = os.environ if env is None else env
    return VerificationLimits(
        max_signatures=int_setting(env, "KMOP_VERIFY_MAX_SIGNATURES", 50, 1, 10_000),
        max_revisions=int_setting(env, "KMOP_VERIFY_MAX_REVISIONS", 200, 1, 100_000),
        seconds=int_setting(env, "KMOP_VERIFY_SECONDS", 30, 1, 3_600),
    )


def load_verification_pool(env: Mapping[str, str] | None = None) -> VerificationPoolSettings:
    env = os.environ if env is None else env
    return VerificationPoolSettings(
        workers=int_setting(env, "KMOP_API_VERIFY_WORKERS", 2, 1, 64),
        queue=int_setting(env, "KMOP_API_VERIFY_QUEUE", 2, 0, 1_000),
    )
