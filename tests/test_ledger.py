"""The dossier ledger: ordered, hash-chained, idempotent, one winner per sequence number."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from kmop.errors import InvalidKeyPart
from storage.keys import document_key, event_key
from workflow.ledger import GENESIS, Ledger, LedgerCorrupted


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

    class CountingStore(LocalFolderStore):
        gets = 0

        def get(self, key: str) -> bytes:
            CountingStore.gets += 1
            return super().get(key)

    store = CountingStore(tmp_path / "store")
    writer, reader = Ledger(store), Ledger(store)
    for number in range(3):
        writer.append("D-1", "document_stored", f"k{number}", "applicant", {"n": number})
    assert [e.idempotency_key for e in reader.history("D-1")] == ["k0", "k1", "k2"]
    CountingStore.gets = 0
    assert len(reader.history("D-1")) == 3 and CountingStore.gets == 0
    writer.append("D-1", "document_stored", "k3", "applicant", {"n": 3})
    assert reader.history("D-1")[-1].idempotency_key == "k3" and CountingStore.gets == 1


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


def test_redis_lock_serialises_racing_appends_on_s3(s3_store) -> None:
    import redis

    from workflow.locks import RedisDossierLock

    lock = RedisDossierLock(redis.Redis.from_url("redis://127.0.0.1:6379/0"), namespace=f"test-{s3_store.bucket}")
    ledger = Ledger(s3_store, lock=lock)
    threads = [
        threading.Thread(target=ledger.append, args=("D-1", "document_stored", f"k{i}", "w", {"i": i}))
        for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    history = ledger.history("D-1")
    assert sorted(e.idempotency_key for e in history) == sorted(f"k{i}" for i in range(6))
