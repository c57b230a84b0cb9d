"""Idempotency-Key records, kept durably in the document store under ``api/idempotency/``.

A request that carries an ``Idempotency-Key`` is fingerprinted (SHA-256 of its canonical JSON
body). Per key there are two objects, each written once with a conditional create:

- ``request.json``, the *claim*: the fingerprint the key is bound to. It is written before the
  effect, so a request with the same key and another body is refused (422) even while the first
  one is still in flight;
- ``response.json``: the first answer (status and body), replayed to every later request with
  the same key and body.

A request that finds the claim but no response yet (the first is in flight, or died between
claim and answer) goes ahead: the effect it repeats (enqueueing a job with the same job
idempotency key) is idempotent downstream, and whichever answer is stored first is the one
every request gets.

Parameters:
    store: the document store (S3 or local folder); records are never overwritten or deleted.

Limits: records are kept for good (the store never deletes); a bucket lifecycle rule on
``api/idempotency/`` may expire them, after which a key may be used again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kmop.errors import ObjectExists, ObjectNotFound
from storage.base import DocumentStore

from .errors import ApiError

PREFIX = "api/idempotency/"
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # printable ASCII without spaces


def fingerprint(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


def _reused(key: str) -> ApiError:
    return ApiError(
        422, "idempotency_key_reused",
        f"Idempotency-Key {key!r} was already used with a different request body; use a new key for a new request",
        field="Idempotency-Key", reason="already used with a different request body",
    )


class IdempotencyRecords:
    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    def replay(self, scope: str, key: str, request_hash: str) -> StoredResponse | None:
        """The stored answer for this key and body, None if there is none; 422 for another body."""
        record = self._read(self._key(scope, key, "response.json"))
        if record is None:
            return None
        if record["fingerprint"] != request_hash:
            raise _reused(key)
        return StoredResponse(record["status"], record["body"])

    def claim(self, scope: str, key: str, request_hash: str) -> None:
        """Bind the key to this body before the effect; 422 if it is bound to another body."""
        location = self._key(scope, key, "request.json")
        try:
            self.store.put_once(location, _encode({"fingerprint": request_hash}), "application/json")
        except ObjectExists:
            existing = self._read(location)
            if existing is not None and existing["fingerprint"] != request_hash:
                raise _reused(key) from None

    def complete(self, scope: str, key: str, request_hash: str, status: int, body: dict[str, Any]) -> StoredResponse:
        """Store the answer; when another request stored one first, that one is returned."""
        location = self._key(scope, key, "response.json")
        record = {"fingerprint": request_hash, "status": status, "body": body}
        try:
            self.store.put_once(location, _encode(record), "application/json")
        except ObjectExists:
            winner = self._read(location)
            if winner is not None:
                if winner["fingerprint"] != request_hash:
                    raise _reused(key) from None
                return StoredResponse(winner["status"], winner["body"])
        return StoredResponse(status, body)

    def _key(self, scope: str, key: str, name: str) -> str:
        digest = hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()
        return f"{PREFIX}{digest}/{name}"

    def _read(self, location: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.store.get(location))
        except ObjectNotFound:
            return None


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")
