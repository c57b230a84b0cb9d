"""Which failures the queue retries, how often, and how long it waits.

Only ``TransientError`` (storage unreachable, converter crashed or hung, timestamp authority
down) and dramatiq's own time limit are retried: a retry can fix those. Invalid data, a template
that cannot render or a missing signing identity fail at once: retrying would fail the same way.
"""

from __future__ import annotations

from dramatiq.middleware import TimeLimitExceeded

from kmop.errors import TransientError

MIN_BACKOFF_MS = 2_000
MAX_BACKOFF_MS = 120_000


def is_retryable(exception: BaseException) -> bool:
    return isinstance(exception, (TransientError, TimeLimitExceeded))


def make_retry_when(max_retries: int):
    def retry_when(retries_so_far: int, exception: BaseException) -> bool:
        return is_retryable(exception) and retries_so_far < max_retries

    return retry_when
