"""Ledger events kept in Redis for every process that reads the same store.

A ledger event never changes once created, so its stored bytes can be kept beside the store:
a worker reading a dossier written by other processes (the API, other workers) then costs a
listing and one Redis round trip instead of a listing and one storage request per event. The
store stays the one source of truth: its listing says which events exist and gives each its
entity tag, a copy is found here only under the tag listed now, and what comes from here is
checked against the hash chain like what comes from the store (``workflow.ledger`` reads the
store again when it does not chain).

It is a cache and nothing more: entries expire (``ttl_seconds``), and when Redis cannot be
reached reads miss and writes are dropped (logged), so the ledger works on from the store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

import redis

logger = logging.getLogger("kmop.event_cache")

#: How long a cached event is kept (``KMOP_LEDGER_CACHE_SECONDS``): a day holds the steps that
#: follow each other quickly and the reads after them; an older dossier is read from the store.
TTL_SECONDS = 86_400


#: An event as the store lists it: its key and its entity tag (``DocumentStore.list_tagged``).
Entry = tuple[str, str]


class EventCache(Protocol):
    def get_many(self, entries: Sequence[Entry]) -> list[bytes | None]:
        """The cached bytes of each listed event, None where there are none."""
        ...

    def put_many(self, events: Mapping[Entry, bytes]) -> None:
        """Keep these events' stored bytes."""
        ...


class RedisEventCache:
    """Event bytes in Redis under ``{namespace}:ledger-event:{scope}:{event key}:{entity tag}``.

    The entity tag is part of the name, so an event whose stored content was changed (its tag
    changes with it) is never answered from here: the store is read and the change reported.
    An event listed without a tag (a server that gives none) is neither kept nor answered.
    ``scope`` names the store the events come from (an endpoint and bucket, a folder), so that
    two stores holding the same dossier never share entries.
    """

    def __init__(self, client: redis.Redis, namespace: str, scope: str, ttl_seconds: int = TTL_SECONDS) -> None:
        self.client = client
        self.ttl_seconds = ttl_seconds
        self._prefix = f"{namespace}:ledger-event:{hashlib.sha256(scope.encode()).hexdigest()[:16]}:"

    def get_many(self, entries: Sequence[Entry]) -> list[bytes | None]:
        tagged = [entry for entry in entries if entry[1]]  # without a tag a copy could be stale
        if not tagged:
            return [None] * len(entries)
        try:
            found = dict(zip(tagged, self.client.mget([self._name(entry) for entry in tagged])))
        except redis.RedisError as exc:
            logger.warning("ledger event cache unavailable (%s); reading the store", exc)
            return [None] * len(entries)
        return [found.get(entry) for entry in entries]

    def put_many(self, events: Mapping[Entry, bytes]) -> None:
        events = {entry: raw for entry, raw in events.items() if entry[1]}
        if not events:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for entry, raw in events.items():
                    pipe.set(self._name(entry), raw, ex=self.ttl_seconds)
                pipe.execute()
        except redis.RedisError as exc:
            logger.warning("ledger event cache unavailable (%s); events not cached", exc)

    def _name(self, entry: Entry) -> str:
        key, etag = entry
        return f"{self._prefix}{key}:{etag}"
