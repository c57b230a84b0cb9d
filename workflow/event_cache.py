"""Ledger events kept in Redis for every process that reads the same store.

A ledger event never changes once created, so its stored bytes can be kept beside the store:
a worker reading a dossier written by other processes (the API, other workers) then costs a
listing and one Redis round trip instead of a listing and one storage request per event. The
store stays the one source of truth: its listing says which events exist and gives each its
entity tag, a copy is found here only under the tag listed now, and what comes from here is
checked against the hash chain like what comes from the store (``workflow.ledger`` reads the
store again when it does not chain).

Beside the events, each dossier's listing is kept as last seen (the keys and tags of its
events, from a listing or an append): a worker about to append to a dossier can then build on
the events kept here and ask the store about the last of them only, instead of listing the
dossier (``Ledger.recent_history``). A listing kept here can fall behind the store (an append
whose process died before telling Redis); it never runs ahead of it, except where the store lost
events (a bucket restored from a backup), which that look-up of the last event finds.

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

    def listing(self, dossier_id: str) -> list[Entry]:
        """The dossier's events as last listed or appended here, in key order; [] if none."""
        ...

    def put_listing(self, dossier_id: str, listing: Sequence[Entry], events: Mapping[Entry, bytes]) -> None:
        """Keep ``events`` and ``listing`` as the dossier's events (replacing the one kept)."""
        ...

    def put_appended(self, dossier_id: str, entry: Entry, raw: bytes) -> None:
        """Keep an event just created, and add it to the dossier's listing."""
        ...


class RedisEventCache:
    """Event bytes in Redis under ``{namespace}:ledger-event:{scope}:{event key}:{entity tag}``.

    The entity tag is part of the name, so an event whose stored content was changed (its tag
    changes with it) is never answered from here: the store is read and the change reported.
    An event listed without a tag (a server that gives none) is neither kept nor answered.
    ``scope`` names the store the events come from (an endpoint and bucket, a folder), so that
    two stores holding the same dossier never share entries.

    A dossier's listing is a hash under ``{namespace}:ledger-listing:{scope}:{dossier id}``, one
    field per event key, its tag the value; it expires like the events, counted from its last
    change. A listing with an event without a tag is not kept.
    """

    def __init__(self, client: redis.Redis, namespace: str, scope: str, ttl_seconds: int = TTL_SECONDS) -> None:
        self.client = client
        self.ttl_seconds = ttl_seconds
        scope_hash = hashlib.sha256(scope.encode()).hexdigest()[:16]
        self._prefix = f"{namespace}:ledger-event:{scope_hash}:"
        self._listing_prefix = f"{namespace}:ledger-listing:{scope_hash}:"

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

    def listing(self, dossier_id: str) -> list[Entry]:
        try:
            fields = self.client.hgetall(self._listing_prefix + dossier_id)
        except redis.RedisError as exc:
            logger.warning("ledger event cache unavailable (%s); listing the store", exc)
            return []
        return sorted((key.decode(), tag.decode()) for key, tag in fields.items())

    def put_listing(self, dossier_id: str, listing: Sequence[Entry], events: Mapping[Entry, bytes]) -> None:
        name = self._listing_prefix + dossier_id
        try:
            with self.client.pipeline(transaction=True) as pipe:
                self._set_events(pipe, events)
                pipe.delete(name)
                if listing and all(tag for _, tag in listing):
                    pipe.hset(name, mapping=dict(listing))
                    pipe.expire(name, self.ttl_seconds)
                pipe.execute()
        except redis.RedisError as exc:
            logger.warning("ledger event cache unavailable (%s); events not cached", exc)

    def put_appended(self, dossier_id: str, entry: Entry, raw: bytes) -> None:
        if not entry[1]:
            return
        name = self._listing_prefix + dossier_id
        try:
            with self.client.pipeline(transaction=False) as pipe:
                self._set_events(pipe, {entry: raw})
                pipe.hset(name, entry[0], entry[1])
                pipe.expire(name, self.ttl_seconds)
                pipe.execute()
        except redis.RedisError as exc:
            logger.warning("ledger event cache unavailable (%s); events not cached", exc)

    def _set_events(self, pipe: redis.client.Pipeline, events: Mapping[Entry, bytes]) -> None:
        for entry, raw in events.items():
            if entry[1]:  # without a tag a copy could be stale
                pipe.set(self._name(entry), raw, ex=self.ttl_seconds)

    def _name(self, entry: Entry) -> str:
        key, etag = entry
        return f"{self._prefix}{key}:{etag}"
