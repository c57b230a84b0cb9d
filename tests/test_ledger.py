"""The dossier ledger: ordered, hash-chained, idempotent, one winner per sequence number."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from kmop.errors import InvalidKeyPart
from storage.keys import document_key, event_key, events_prefix
from workflow.ledger import GENESIS, Ledger, LedgerCorrupted


class CountingReads:
    """The store, counting the objects read, looked up and the listings made."""

    def __init__(self, store) -> None:
        self.store = store
        self.gets = self.heads = self.listings = 0

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def get(self, key: str) -> bytes:
        self.gets += 1
        return self.store.get(key)

    def head(self, key: str):
        self.heads += 1
        return self.store.head(key)

    def list_tagged(self, prefix: str) -> list[tuple[str, str]]:
        self.listings += 1
        return self.store.list_tagged(prefix)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "local":
        from storage.local import LocalFolderStore

        return LocalFolderStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")


def test_events_chain_in_order(store) -> None:
    ledger = Ledger(store)
    first, created = ledger.append("D-1", "document_stored", "k1", "applicant", {"n": 1})
    second, _ = ledger.append("D-1", "document_stored", "k2", "auditor", {"n": 2})
    assert created and first.previous_hash == GENESIS
    assert second.previous_hash == first.hash
    assert [e.sequence for e in ledger.history("D-1")] == [1, 2]
    assert ledger.history("D-2") == []


def test_append_with_known_idempotency_key_returns_the_recorded_event(store) -> None:
    ledger = Ledger(store)
    first, _ = ledger.append("D-1", "document_stored", "k1", "applicant", {"n": 1})
    again, created = ledger.append("D-1", "document_stored", "k1", "applicant", {"n": 999})
    assert not created and again == first
    assert len(ledger.history("D-1")) == 1


def test_refused_append_leaves_history_unchanged(store) -> None:
    ledger = Ledger(store)
    ledger.append("D-1", "document_stored", "k1", "applicant", {})

    def refuse(history) -> dict:
        raise ValueError(f"refused after {len(history)} events")

    with pytest.raises(ValueError, match="after 1 events"):
        ledger.append("D-1", "document_stored", "k2", "applicant", refuse)
    assert len(ledger.history("D-1")) == 1


def test_append_on_a_stale_known_history_decides_again_on_the_fresh_one(store) -> None:
    writer, other = Ledger(store), Ledger(store)
    writer.append("D-1", "document_stored", "k1", "applicant", {})
    stale = writer.history("D-1")
    other.append("D-1", "document_stored", "k2", "auditor", {})  # lands after the reading
    seen: list[int] = []

    def decide(history) -> dict:
        seen.append(len(history))
        return {"after": len(history)}

    event, created = writer.append("D-1", "document_stored", "k3", "applicant", decide, known=stale)
    assert created and seen == [1, 2]  # decided on the stale history, its number was taken: again
    assert (event.sequence, event.payload) == (3, {"after": 2})
    assert [e.idempotency_key for e in Ledger(store).history("D-1")] == ["k1", "k2", "k3"]


def test_append_on_a_stale_known_history_finds_its_twin(store) -> None:
    writer, twin = Ledger(store), Ledger(store)
    stale = writer.history("D-1")
    recorded, _ = twin.append("D-1", "document_stored", "k1", "applicant", {"by": "twin"})
    event, created = writer.append("D-1", "document_stored", "k1", "applicant", {"by": "us"}, known=stale)
    assert not created and event == recorded
    assert len(Ledger(store).history("D-1")) == 1


def test_altered_event_is_detected(tmp_path: Path) -> None:
    from storage.local import LocalFolderStore

    store = LocalFolderStore(tmp_path / "store")
    ledger = Ledger(store)
    ledger.append("D-1", "document_stored", "k1", "applicant", {"sha256": "a" * 64})
    ledger.append("D-1", "document_stored", "k2", "applicant", {"sha256": "b" * 64})
    path = tmp_path / "store" / event_key("D-1", 1)
    body = json.loads(path.read_text())
    body["payload"]["sha256"] = "c" * 64
    path.chmod(0o644)
    path.write_text(json.dumps(body))
    with pytest.raises(LedgerCorrupted, match="event 1"):
        Ledger(store).history("D-1")  # a reader that has not seen the events before


def test_a_reader_fetches_only_events_it_has_not_verified_yet(tmp_path: Path) -> None:
    from storage.local import LocalFolderStore

    store = CountingReads(LocalFolderStore(tmp_path / "store"))
    writer, reader = Ledger(store), Ledger(store)
    for number in range(3):
        writer.append("D-1", "document_stored", f"k{number}", "applicant", {"n": number})
    assert [e.idempotency_key for e in reader.history("D-1")] == ["k0", "k1", "k2"]
    store.gets = 0
    assert len(reader.history("D-1")) == 3 and store.gets == 0
    writer.append("D-1", "document_stored", "k3", "applicant", {"n": 3})
    assert reader.history("D-1")[-1].idempotency_key == "k3" and store.gets == 1


def test_a_caching_reader_still_sees_events_removed(tmp_path: Path) -> None:
    from storage.local import LocalFolderStore

    store = LocalFolderStore(tmp_path / "store")
    ledger = Ledger(store)
    for number in range(4):
        ledger.append("D-1", "document_stored", f"k{number}", "applicant", {"n": number})
    assert len(ledger.history("D-1")) == 4
    (tmp_path / "store" / event_key("D-1", 4)).unlink()
    assert [e.idempotency_key for e in ledger.history("D-1")] == ["k0", "k1", "k2"]
    (tmp_path / "store" / event_key("D-1", 2)).unlink()
    with pytest.raises(LedgerCorrupted, match="event 2"):
        ledger.history("D-1")


def test_racing_appends_of_different_events_all_land_once_each(tmp_path: Path) -> None:
    from storage.local import LocalFolderStore

    ledger = Ledger(LocalFolderStore(tmp_path / "store"))
    threads = [
        threading.Thread(target=ledger.append, args=("D-1", "document_stored", f"k{i}", "w", {"i": i}))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    history = ledger.history("D-1")
    assert sorted(e.idempotency_key for e in history) == sorted(f"k{i}" for i in range(8))


@pytest.mark.parametrize("dossier_id", ["../x", "a/b", "", "é", "x" * 65, ".hidden"])
def test_keys_cannot_escape_their_dossier(dossier_id: str) -> None:
    with pytest.raises(InvalidKeyPart):
        document_key(dossier_id, 1, "sworn_statement", 1)


class CheckThenWrite:
    """The S3 store as a server that checks ``If-None-Match`` apart from the write (moto does, see
    ``storage.s3.S3Store``, the reason the ledger takes a lock): ``put_once`` looks for the key,
    passes through ``window(key)``, then writes, whatever happened in between."""

    def __init__(self, store, window) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self.window = window

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.store, name)

    def put_once(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        import hashlib

        from kmop.errors import ObjectExists
        from storage.base import StoredObject
        from storage.s3 import stored_user_metadata

        if self.store.head(key) is not None:
            raise ObjectExists(key)
        self.window(key)
        sha256 = hashlib.sha256(data).hexdigest()
        stored = stored_user_metadata(metadata, sha256)
        answer = self.store.client.put_object(Bucket=self.store.bucket, Key=key, Body=data, ContentType=content_type,
                                              Metadata=stored)
        return StoredObject(key, sha256, len(data), content_type, stored, answer.get("ETag", ""))


def test_redis_lock_serialises_racing_appends_on_s3(s3_store, redis_client) -> None:
    """The first appender is held between its check and its write until the second has either
    asked for the lock (which must then keep it out) or reached the same window (no lock)."""
    from workflow.locks import RedisDossierLock

    lock = RedisDossierLock(redis_client, namespace=f"test-{s3_store.bucket}")
    progress = threading.Condition()
    seen = {"asked": 0, "in_window": 0, "held_too_long": 0}

    class Announced:
        def __init__(self, dossier_id: str) -> None:
            self.held = lock(dossier_id)

        def __enter__(self) -> object:
            with progress:
                seen["asked"] += 1
                progress.notify_all()
            return self.held.__enter__()

        def __exit__(self, *exc: object) -> None:
            self.held.__exit__(*exc)

    def window(key: str) -> None:
        with progress:
            seen["in_window"] += 1
            progress.notify_all()
            if not progress.wait_for(lambda: seen["in_window"] >= 2 or seen["asked"] >= 2, timeout=60):
                seen["held_too_long"] += 1

    ledger = Ledger(CheckThenWrite(s3_store, window), lock=Announced)
    appenders = [threading.Thread(target=ledger.append, args=("D-1", "document_stored", f"k{i}", "w", {"i": i}))
                 for i in range(2)]
    appenders[0].start()
    with progress:
        assert progress.wait_for(lambda: seen["in_window"] == 1, timeout=60), "the first append never got to write"
    appenders[1].start()
    for thread in appenders:
        thread.join()
    assert seen["held_too_long"] == 0
    history = Ledger(s3_store).history("D-1")
    assert [(e.sequence, e.idempotency_key) for e in history] == [(1, "k0"), (2, "k1")]


def test_redis_lock_taken_again_by_its_holder_but_not_by_another_thread(redis_client) -> None:
    """Storing and recording a document run under one lock that the ledger's append takes again:
    the holder's second take is free, another thread still waits (and gives up here)."""
    import uuid

    import redis

    from kmop.errors import TransientError
    from workflow.locks import RedisDossierLock

    client = redis_client
    lock = RedisDossierLock(client, namespace=f"test-{uuid.uuid4().hex[:8]}", timeout=0.5)
    key = f"{lock.namespace}:ledger-lock:D-1"
    other: list[BaseException | None] = []

    def take_elsewhere() -> None:
        try:
            with lock("D-1"):
                other.append(None)
        except TransientError as exc:
            other.append(exc)

    with lock("D-1"):
        with lock("D-1"):  # without re-entry: waits 0.5 s for itself, then TransientError
            assert client.exists(key)
        assert client.exists(key)  # the inner exit left the lock held
        thread = threading.Thread(target=take_elsewhere)
        thread.start()
        thread.join()
    assert isinstance(other[0], TransientError)
    assert not client.exists(key)
    with lock("D-1"):  # free again, for this thread too
        assert client.exists(key)


# Events shared between processes through Redis (workflow.event_cache)


def change_past_the_store(store, key: str, change) -> None:
    """Rewrite a stored event as someone with write access to the bucket or folder could."""
    from storage.local import LocalFolderStore

    body = json.loads(store.get(key))
    change(body)
    data = json.dumps(body).encode()
    if isinstance(store, LocalFolderStore):
        path = store.root / key
        path.chmod(0o600)
        path.write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=key, Body=data)


@pytest.fixture
def event_cache(redis_url: str, namespace: str):
    """A factory of Redis event caches (each with its own connection: another process's)."""
    import redis

    from workflow.event_cache import RedisEventCache

    clients: list[redis.Redis] = []

    def make(scope: str = "the store") -> RedisEventCache:
        clients.append(redis.Redis.from_url(redis_url))
        return RedisEventCache(clients[-1], namespace, scope)

    yield make
    for client in clients:
        client.close()


def test_events_another_process_wrote_are_read_from_the_shared_cache(store, event_cache) -> None:
    writer = Ledger(store, shared_cache=event_cache())
    for number in range(3):
        writer.append("D-1", "document_stored", f"k{number}", "applicant", {"n": number})

    reader = Ledger(CountingReads(store), shared_cache=event_cache())
    assert reader.history("D-1") == writer.history("D-1") and reader.store.gets == 0
    writer.append("D-1", "document_stored", "k3", "applicant", {"n": 3})
    assert [e.idempotency_key for e in reader.history("D-1")] == ["k0", "k1", "k2", "k3"]
    assert reader.store.gets == 0

    elsewhere = Ledger(CountingReads(store), shared_cache=event_cache("another store"))
    assert elsewhere.history("D-1") == writer.history("D-1") and elsewhere.store.gets == 4


def test_events_read_from_the_store_are_shared_with_the_next_reader(store, event_cache) -> None:
    writer = Ledger(store)  # a process without Redis
    for number in range(3):
        writer.append("D-1", "document_stored", f"k{number}", "applicant", {"n": number})
    first = Ledger(CountingReads(store), shared_cache=event_cache())
    second = Ledger(CountingReads(store), shared_cache=event_cache())
    assert first.history("D-1") == writer.history("D-1") and first.store.gets == 3
    assert second.history("D-1") == writer.history("D-1") and second.store.gets == 0


# a reader of the history looks at every event; a worker about to append, at the last one
CHANGE_NOTICED_BY = [("history", 1), ("history", 2), ("recent_history", 2)]


@pytest.mark.parametrize("read, changed", CHANGE_NOTICED_BY)
def test_an_event_changed_in_the_store_is_reported_though_its_copy_is_cached(
    store, event_cache, read: str, changed: int
) -> None:
    writer = Ledger(store, shared_cache=event_cache())
    writer.append("D-1", "document_stored", "k1", "applicant", {"sha256": "a" * 64})
    writer.append("D-1", "document_stored", "k2", "applicant", {"sha256": "b" * 64})
    assert len(writer.history("D-1")) == 2  # the writer saw both, and keeps them

    change_past_the_store(store, event_key("D-1", changed), lambda body: body["payload"].update(sha256="c" * 64))
    with pytest.raises(LedgerCorrupted, match=f"event {changed}"):
        getattr(Ledger(store, shared_cache=event_cache()), read)("D-1")
    with pytest.raises(LedgerCorrupted, match=f"event {changed}"):
        getattr(writer, read)("D-1")


@pytest.mark.parametrize("read", ["history", "recent_history"])
def test_a_cached_copy_that_does_not_chain_gives_way_to_the_store(s3_store, event_cache, read: str) -> None:
    cache = event_cache()
    writer = Ledger(s3_store, shared_cache=cache)
    writer.append("D-1", "document_stored", "k1", "applicant", {"n": 1})
    writer.append("D-1", "document_stored", "k2", "applicant", {"n": 2})
    first = s3_store.list_tagged(events_prefix("D-1"))[0]
    forged = json.loads(cache.get_many([first])[0])
    forged["payload"] = {"n": 99}
    cache.put_appended("D-1", first, json.dumps(forged).encode())

    reader = Ledger(CountingReads(s3_store), shared_cache=event_cache())
    assert getattr(reader, read)("D-1") == writer.history("D-1") and reader.store.gets == 2
    assert json.loads(cache.get_many([first])[0])["payload"] == {"n": 1}  # the copy is mended
    assert Ledger(CountingReads(s3_store), shared_cache=event_cache()).history("D-1")[0].payload == {"n": 1}


def test_an_event_listed_without_a_tag_is_neither_kept_nor_answered(event_cache) -> None:
    cache = event_cache()
    cache.put_appended("D-1", ("dossiers/D-1/events/00000001.json", ""), b"{}")
    cache.put_appended("D-1", ("dossiers/D-1/events/00000002.json", '"t2"'), b"{}")
    assert cache.get_many([("dossiers/D-1/events/00000001.json", ""),
                           ("dossiers/D-1/events/00000002.json", '"t2"')]) == [None, b"{}"]


# A worker about to append reads the recent history: the store asked about the last event only


def remove_past_the_store(store, key: str) -> None:
    """Remove a stored event, as restoring the bucket or folder from an older backup would."""
    from storage.local import LocalFolderStore

    if isinstance(store, LocalFolderStore):
        (store.root / key).unlink()
    else:
        store.client.delete_object(Bucket=store.bucket, Key=key)


def test_recent_history_asks_the_store_about_the_last_event_only(store, event_cache) -> None:
    writer = Ledger(store, shared_cache=event_cache())
    for number in range(3):
        writer.append("D-1", "document_stored", f"k{number}", "applicant", {"n": number})

    reader = Ledger(CountingReads(store), shared_cache=event_cache())
    assert reader.recent_history("D-1") == writer.history("D-1")
    assert (reader.store.listings, reader.store.heads, reader.store.gets) == (0, 1, 0)
    event, created = reader.append("D-1", "document_stored", "k3", "applicant", {"n": 3},
                                   reader.recent_history("D-1"))
    assert created and event.sequence == 4 and reader.store.listings == 0
    assert writer.history("D-1")[-1] == event  # and the writer, which listed before, sees it


def test_recent_history_of_a_dossier_known_nowhere_lists_it(store, event_cache) -> None:
    Ledger(store).append("D-1", "document_stored", "k1", "applicant", {"n": 1})  # Redis not told
    reader = Ledger(CountingReads(store), shared_cache=event_cache())
    assert [e.idempotency_key for e in reader.recent_history("D-1")] == ["k1"]
    assert reader.store.listings == 1
    assert reader.recent_history("D-1") == Ledger(store).history("D-1") and reader.store.listings == 1


def test_an_append_missed_by_the_recent_history_is_found_by_the_conditional_create(store, event_cache) -> None:
    writer = Ledger(store, shared_cache=event_cache())
    writer.append("D-1", "document_stored", "k1", "applicant", {"n": 1})
    # another process appends and dies before telling Redis
    unseen, _ = Ledger(store).append("D-1", "document_stored", "k2", "applicant", {"n": 2})

    reader = Ledger(store, shared_cache=event_cache())
    recent = reader.recent_history("D-1")
    assert [e.idempotency_key for e in recent] == ["k1"]
    event, created = reader.append("D-1", "document_stored", "k3", "applicant",
                                   lambda history: {"after": history[-1].idempotency_key}, recent)
    assert created and event.sequence == 3 and event.previous_hash == unseen.hash
    assert event.payload == {"after": "k2"}  # decided on the history it extends
    # and a redelivery of the unseen append is recognised though the recent history lacks it
    again, created = reader.append("D-1", "document_stored", "k2", "applicant", {"n": 2}, recent)
    assert not created and again == unseen


def test_recent_history_after_events_vanished_from_the_store_builds_on_what_is_there(store, event_cache) -> None:
    writer = Ledger(store, shared_cache=event_cache())
    for number in range(3):
        writer.append("D-1", "document_stored", f"k{number}", "applicant", {"n": number})
    remove_past_the_store(store, event_key("D-1", 3))  # the bucket restored from an older backup

    reader = Ledger(store, shared_cache=event_cache())
    recent = reader.recent_history("D-1")
    assert [e.idempotency_key for e in recent] == ["k0", "k1"]
    event, _ = reader.append("D-1", "document_stored", "k9", "applicant", {"n": 9}, recent)
    assert event.sequence == 3 and event.previous_hash == recent[-1].hash  # no gap in the chain
    assert Ledger(store).history("D-1") == [*recent, event]


@pytest.mark.slow
def test_the_ledger_works_on_without_redis(s3_store, caplog: pytest.LogCaptureFixture) -> None:
    import redis

    from testing.processes import free_port
    from workflow.event_cache import RedisEventCache

    unreachable = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)  # nothing listens
    ledger = Ledger(s3_store, shared_cache=RedisEventCache(unreachable, "kmop", "the store"))
    first, created = ledger.append("D-1", "document_stored", "k1", "applicant", {"n": 1})
    assert created
    assert Ledger(s3_store, shared_cache=RedisEventCache(unreachable, "kmop", "the store")).history("D-1") == [first]
    reader = Ledger(s3_store, shared_cache=RedisEventCache(unreachable, "kmop", "the store"))
    assert reader.recent_history("D-1") == [first]
    assert "ledger event cache unavailable" in caplog.text


def test_workers_share_events_for_as_long_as_configured(s3_store, redis_url: str, namespace: str) -> None:
    import redis

    from kmop.settings import load_settings
    from workers.factories import tracker_from_settings

    env = {"KMOP_BROKER": "redis", "KMOP_REDIS_URL": redis_url, "KMOP_REDIS_NAMESPACE": namespace, "KMOP_STORAGE": "s3",
           "KMOP_S3_BUCKET": s3_store.bucket, "KMOP_LEDGER_CACHE_SECONDS": "600"}
    ledger = tracker_from_settings(load_settings(env), s3_store).ledger
    ledger.append("D-1", "document_stored", "k1", "applicant", {"n": 1})
    client = redis.Redis.from_url(redis_url)
    try:
        names = list(client.scan_iter(f"{namespace}:ledger-event:*"))
        assert len(names) == 1 and 0 < client.ttl(names[0]) <= 600
    finally:
        client.close()
    off = tracker_from_settings(load_settings({**env, "KMOP_LEDGER_CACHE_SECONDS": "0"}), s3_store).ledger
    assert off.shared_cache is None
    assert tracker_from_settings(load_settings({**env, "KMOP_BROKER": "stub"}), s3_store).ledger.shared_cache is None
