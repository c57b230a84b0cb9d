"""The dossier ledger: an append-only, hash-chained event log per dossier, kept in object storage.

Each event is one object (``storage.keys.event_key``) created with a conditional create, so two
writers racing for the same sequence number cannot both win; the loser re-reads and tries the
next number. Each event carries the SHA-256 of the previous event, so the history is
tamper-evident. The history is the dossier's source of truth; nothing else is needed to
rebuild its state. Appending is idempotent: an event whose idempotency key is already in the log is
returned as it was recorded, not written again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from typing import Any

from kmop.errors import KmopError, ObjectExists, StorageError, StorageUnavailable
from storage.base import DocumentStore
from storage.keys import event_key, events_prefix

from .event_cache import EventCache

logger = logging.getLogger("kmop.ledger")

GENESIS = "0" * 64
_MAX_RACE_ATTEMPTS = 50
#: Dossiers whose verified events a ledger keeps in memory (least recently read dropped first).
CACHED_DOSSIERS = 256
#: Events of one history fetched at once: a dossier read for the first time costs one round
#: trip per event, which add up for a late step (its whole history, one after the other).
PARALLEL_FETCHES = 8

_fetcher: ThreadPoolExecutor | None = None
_fetcher_lock = threading.Lock()


def _fetch(store: DocumentStore, keys: list[str]) -> list[bytes]:
    """The objects under ``keys``, in order; fetched side by side when there are several."""
    global _fetcher
    if len(keys) < 2:
        return [store.get(key) for key in keys]
    with _fetcher_lock:
        if _fetcher is None:
            _fetcher = ThreadPoolExecutor(PARALLEL_FETCHES, thread_name_prefix="ledger-fetch")
    return list(_fetcher.map(store.get, keys))


class LedgerCorrupted(KmopError):
    """The stored history does not hash-chain: an event was altered, removed or inserted."""


@dataclass(frozen=True)
class Event:
    dossier_id: str
    sequence: int
    type: str
    idempotency_key: str
    actor: str
    at: str
    payload: dict[str, Any]
    previous_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "dossier_id": self.dossier_id,
            "sequence": self.sequence,
            "type": self.type,
            "idempotency_key": self.idempotency_key,
            "actor": self.actor,
            "at": self.at,
            "payload": self.payload,
            "previous_hash": self.previous_hash,
            "hash": self.hash,
        }


_EVENT_FIELDS = frozenset(field.name for field in fields(Event))


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _event_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in body.items() if k != "hash"})).hexdigest()


def _chained(dossier_id: str, known: list[Event], keys: list[str], raws: list[bytes]) -> list[Event]:
    """``known`` extended by the events stored under ``keys``, each checked against the chain."""
    events = list(known)
    previous = events[-1].hash if events else GENESIS
    for index, (key, raw) in enumerate(zip(keys, raws), start=len(events) + 1):
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or set(body) != _EVENT_FIELDS:
            raise LedgerCorrupted(f"dossier {dossier_id}: event {index} is not a ledger event")
        if body.get("sequence") != index or key != event_key(dossier_id, index):
            raise LedgerCorrupted(f"dossier {dossier_id}: event {index} is missing or misplaced")
        if body.get("previous_hash") != previous or _event_hash(body) != body.get("hash"):
            raise LedgerCorrupted(f"dossier {dossier_id}: event {index} does not match its hash chain")
        events.append(Event(**body))
        previous = body["hash"]
    return events


@dataclass(frozen=True)
class _Seen:
    """A dossier's events as verified, and the listing entries (key, tag) they were read from."""

    events: list[Event]
    entries: list[tuple[str, str]]


_EMPTY = _Seen([], [])


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def no_lock(dossier_id: str) -> AbstractContextManager[object]:
    return nullcontext()


class Ledger:
    """The event log of every dossier in one store.

    ``lock`` serialises appends per dossier on top of the conditional create, for S3-compatible
    servers that check ``If-None-Match`` non-atomically (see ``storage.s3.S3Store``); the
    conditional create alone decides on servers that honour it, and the lock holds nothing that
    cannot be lost.

    Events never change once created, so the events of recently read dossiers are kept, as
    verified, in memory (``cached_dossiers``, 0 for none): reading a history lists the
    dossier's event keys (the storage stays the one source of truth about what exists) and
    fetches only the events not seen before, checking that they extend the known chain. A
    listing shorter than what was seen, or a key out of place, drops the cache and reads all
    again, so a history rewritten behind our back is reported as it would be without a cache.

    ``shared_cache`` (``workflow.event_cache``) keeps the events' bytes for other processes:
    events this ledger creates or fetches are put there, and events not seen before are taken
    from there before the store is asked. They are checked against the chain the same way; a
    cached event that does not chain makes the ledger read the store instead, which decides.

    ``history`` is what the dossier holds now, for whoever reads it. A worker about to append
    asks ``recent_history`` instead: the events known here or in the shared cache, with the
    store asked only whether it holds the last of them (a HEAD instead of a listing, which the
    S3 server answers for less, and which does not grow with the bucket); the conditional
    create decides whether anything was appended since.
    """

    def __init__(
        self,
        store: DocumentStore,
        clock: Callable[[], str] = _utc_now,
        lock: Callable[[str], AbstractContextManager[object]] = no_lock,
        cached_dossiers: int = CACHED_DOSSIERS,
        shared_cache: EventCache | None = None,
    ) -> None:
        self.store = store
        self.shared_cache = shared_cache
        self.clock = clock
        self.lock = lock
        self._cached_dossiers = cached_dossiers
        self._cache: OrderedDict[str, _Seen] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._observers: list[Callable[[Event], None]] = []

    def observe(self, observer: Callable[[Event], None]) -> None:
        """Call ``observer`` with each event an append creates or finds already recorded (a read
        model kept beside the ledger). It runs after the event is stored; whatever it raises is
        logged and swallowed, so an observer can never fail or undo an append."""
        self._observers.append(observer)

    def _notify(self, event: Event) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # noqa: BLE001 - the append stands whatever a read model does
                logger.exception("ledger observer failed on %s event %d", event.dossier_id, event.sequence)

    def history(self, dossier_id: str) -> list[Event]:
        """Every event of the dossier in order; ``LedgerCorrupted`` if the chain is broken."""
        listing = self.store.list_tagged(events_prefix(dossier_id))
        seen = self._cached(dossier_id)
        if len(seen.entries) > len(listing) or any(
            listing[i] != entry for i, entry in enumerate(seen.entries)
        ):
            seen = _EMPTY  # the stored history is not the one we saw: read and check all of it
        new = listing[len(seen.entries):]
        shared = self._shared_events(new)
        missing = [entry for entry in new if entry not in shared]
        fetched = dict(zip(missing, _fetch(self.store, [key for key, _ in missing])))
        keys = [key for key, _ in new]
        try:
            events = _chained(dossier_id, seen.events, keys,
                              [shared[entry] if entry in shared else fetched[entry] for entry in new])
        except LedgerCorrupted:
            if not shared:
                raise
            # a shared copy does not chain (the cache is not the truth): the store decides
            fetched = dict(zip(new, _fetch(self.store, keys)))
            events = _chained(dossier_id, seen.events, keys, list(fetched.values()))
        if self.shared_cache is not None:
            self.shared_cache.put_listing(dossier_id, listing, fetched)
        self._remember(dossier_id, _Seen(events, listing))
        return events

    def recent_history(self, dossier_id: str) -> list[Event]:
        """The dossier's events up to the last one known here, for deciding an append.

        Built from the events this process has verified and those kept in the shared cache
        with the dossier's listing, checked against the hash chain; the store is asked only
        whether it holds the last of them under the same tag (a HEAD, where ``history`` lists
        the dossier). That event's hash commits to every event before it, and events are never
        removed, so what is returned is the store's history up to it; events appended since
        may be missing, and ``append`` then finds their sequence number taken and decides again
        on ``history``. Wherever that cannot be said (nothing known, a copy missing or not
        chaining, the last event gone or changed in the store) this is ``history``. An earlier
        event changed in the store is not looked for here: every reader of ``history`` is
        told, and what is appended still chains onto the events as they were recorded.
        """
        seen = self._cached(dossier_id)
        events, entries = seen.events, seen.entries
        if self.shared_cache is not None:
            shared = self.shared_cache.listing(dossier_id)
            if shared[:len(entries)] != entries[:len(shared)]:
                return self.history(dossier_id)  # the two disagree: the store decides
            if len(shared) > len(entries):
                new = shared[len(entries):]
                raws = [raw for raw in self.shared_cache.get_many(new) if raw is not None]
                if len(raws) < len(new):
                    return self.history(dossier_id)
                try:
                    events = _chained(dossier_id, events, [key for key, _ in new], raws)
                except LedgerCorrupted:
                    return self.history(dossier_id)
                entries = shared
        if not entries or not entries[-1][1]:
            return self.history(dossier_id)
        last_key, last_tag = entries[-1]
        try:
            last = self.store.head(last_key)
        except StorageUnavailable:
            raise
        except StorageError:  # not stored as put_once stores: the listing and the chain decide
            last = None
        if last is None or last.etag != last_tag:
            return self.history(dossier_id)
        self._remember(dossier_id, _Seen(events, entries))
        return events

    def _shared_events(self, entries: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        if self.shared_cache is None or not entries:
            return {}
        return {entry: raw for entry, raw in zip(entries, self.shared_cache.get_many(entries)) if raw is not None}

    def _cached(self, dossier_id: str) -> _Seen:
        with self._cache_lock:
            return self._cache.get(dossier_id, _EMPTY)

    def _remember(self, dossier_id: str, seen: _Seen) -> None:
        if self._cached_dossiers <= 0:
            return
        with self._cache_lock:
            if len(seen.events) >= len(self._cache.get(dossier_id, _EMPTY).events):
                self._cache[dossier_id] = seen
            self._cache.move_to_end(dossier_id)
            while len(self._cache) > self._cached_dossiers:
                self._cache.popitem(last=False)

    def _remember_appended(self, dossier_id: str, history: list[Event], event: Event, etag: str) -> None:
        """Extend what we saw by the event we created, when we saw exactly the history it extends."""
        seen = self._cached(dossier_id)
        if len(seen.events) == len(history) and (not history or seen.events[-1].hash == history[-1].hash):
            entry = (event_key(dossier_id, event.sequence), etag)
            self._remember(dossier_id, _Seen([*history, event], [*seen.entries, entry]))

    def find(self, dossier_id: str, idempotency_key: str) -> Event | None:
        for event in self.history(dossier_id):
            if event.idempotency_key == idempotency_key:
                return event
        return None

    def append(
        self,
        dossier_id: str,
        type: str,
        idempotency_key: str,
        actor: str,
        payload: dict[str, Any] | Callable[[list[Event]], dict[str, Any]],
        known: list[Event] | None = None,
    ) -> tuple[Event, bool]:
        """Record an event once; returns it and whether this call created it.

        ``payload`` may be a function of the history before the append: it decides what the
        event says and raises to refuse it. It runs again whenever a racing writer took the
        sequence number first, so a decision is always taken on the history it extends.

        ``known`` is a history the caller read (through ``history``) moments ago: the first
        attempt builds on it instead of reading again. Events are only ever added, by a
        conditional create per sequence number, so an append that extends a stale history
        finds its number taken and tries again on a fresh reading.
        """
        for attempt in range(_MAX_RACE_ATTEMPTS):
            with self.lock(dossier_id):
                history = known if attempt == 0 and known is not None else self.history(dossier_id)
                found = next((e for e in history if e.idempotency_key == idempotency_key), None)
                if found is not None:
                    break
                body = self._body(dossier_id, history, type, idempotency_key, actor, payload)
                try:
                    key, raw = event_key(dossier_id, body["sequence"]), _canonical(body)
                    etag = self.store.put_once(key, raw, "application/json",
                                               {"idempotency-key": idempotency_key}).etag
                except ObjectExists:
                    continue
            if self.shared_cache is not None:
                self.shared_cache.put_appended(dossier_id, (key, etag), raw)
            event = Event(**body)
            self._remember_appended(dossier_id, history, event, etag)
            self._notify(event)
            return event, True
        else:
            raise KmopError(f"dossier {dossier_id}: gave up appending after {_MAX_RACE_ATTEMPTS} lost races")
        self._notify(found)
        return found, False

    def _body(
        self,
        dossier_id: str,
        history: list[Event],
        type: str,
        idempotency_key: str,
        actor: str,
        payload: dict[str, Any] | Callable[[list[Event]], dict[str, Any]],
    ) -> dict[str, Any]:
        if callable(payload):
            payload = payload(history)
        sequence = len(history) + 1
        body: dict[str, Any] = {
            "dossier_id": dossier_id,
            "sequence": sequence,
            "type": type,
            "idempotency_key": idempotency_key,
            "actor": actor,
            "at": self.clock(),
            "payload": payload,
            "previous_hash": history[-1].hash if history else GENESIS,
        }
        body["hash"] = _event_hash(body)
        return body
