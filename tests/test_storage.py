"""The two storage backends keep the DocumentStore promises: put once, get, head, list, presign.

The S3 tests talk real HTTP to a moto server in a child process (see conftest.py), or to the
endpoint named by ``KMOP_TEST_S3_ENDPOINT``; nothing is mocked in-process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import socket
import threading
import urllib.request
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from kmop.errors import (
    InvalidKeyPart,
    ObjectExists,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
)
from storage.base import DocumentStore
from storage.keys import document_key, dossier_prefix, event_key
from storage.local import LocalFolderStore
from storage.s3 import S3Store

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SWORN_STATEMENT = document_key("D-0001", 1, "sworn_statement", 1)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> DocumentStore:
    if request.param == "local":
        return LocalFolderStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")


def read_past_the_store(store: DocumentStore, key: str) -> tuple[bytes, dict[str, str]]:
    """The object's bytes and user metadata as stored: via boto3 for S3, the files for local."""
    if isinstance(store, S3Store):
        response = store.client.get_object(Bucket=store.bucket, Key=key)
        # header names are case-insensitive (the test server title-cases them)
        return response["Body"].read(), {name.lower(): value for name, value in response["Metadata"].items()}
    assert isinstance(store, LocalFolderStore)
    path = store.root / key
    sidecar = json.loads(path.with_name(path.name + ".meta.json").read_text())
    return path.read_bytes(), sidecar["metadata"]


def fetch(url: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return response.read()


# Behaviour both backends share


def test_put_then_get_returns_the_bytes(store: DocumentStore) -> None:
    store.put_once(SWORN_STATEMENT, PDF, "application/pdf")

    assert store.get(SWORN_STATEMENT) == PDF


def test_sha256_read_back_equals_the_returned_and_stored_one(store: DocumentStore) -> None:
    stored = store.put_once(SWORN_STATEMENT, PDF, "application/pdf", {"signer": "notary"})

    raw_bytes, raw_metadata = read_past_the_store(store, SWORN_STATEMENT)
    assert hashlib.sha256(raw_bytes).hexdigest() == stored.sha256
    assert raw_metadata == {"signer": "notary", "sha256": stored.sha256} == stored.metadata
    assert store.head(SWORN_STATEMENT) == stored
    assert stored.size == len(PDF)


def test_content_type_is_kept(store: DocumentStore) -> None:
    store.put_once(SWORN_STATEMENT, PDF, "application/pdf")

    described = store.head(SWORN_STATEMENT)
    assert described is not None and described.content_type == "application/pdf"


def test_second_put_once_raises_object_exists_and_keeps_the_original(
    store: DocumentStore,
) -> None:
    first = store.put_once(SWORN_STATEMENT, PDF, "application/pdf", {"signer": "notary"})

    with pytest.raises(ObjectExists) as refused:
        store.put_once(SWORN_STATEMENT, b"%PDF-1.7 forged", "application/pdf", {"signer": "x"})

    assert refused.value.key == SWORN_STATEMENT
    assert store.get(SWORN_STATEMENT) == PDF
    assert store.head(SWORN_STATEMENT) == first


def test_list_returns_the_keys_under_a_prefix_sorted_and_nothing_else(
    store: DocumentStore,
) -> None:
    wanted = [
        document_key("D1", 2, "audit_report", 1),
        event_key("D1", 2),
        document_key("D1", 1, "sworn_statement", 2),
        event_key("D1", 1),
        document_key("D1", 1, "sworn_statement", 1),
    ]
    others = [document_key("D10", 1, "sworn_statement", 1), document_key("D2", 1, "quote", 1)]
    for key in wanted + others:
        store.put_once(key, PDF, "application/pdf")

    assert store.list(dossier_prefix("D1")) == sorted(wanted)
    assert store.list("dossiers/D1/documents/01-") == [
        document_key("D1", 1, "sworn_statement", 1),
        document_key("D1", 1, "sworn_statement", 2),
    ]
    assert store.list("dossiers/none/") == []


def write_past_the_store(store: DocumentStore, key: str, data: bytes) -> None:
    """Replace an object's bytes as someone with write access to the bucket or folder could."""
    if isinstance(store, S3Store):
        store.client.put_object(Bucket=store.bucket, Key=key, Body=data)
        return
    assert isinstance(store, LocalFolderStore)
    path = store.root / key
    path.chmod(0o600)
    path.write_bytes(data)


def test_listed_tags_are_the_tags_put_once_returned_and_change_with_the_content(
    store: DocumentStore,
) -> None:
    first = store.put_once(event_key("D1", 1), b'{"n": 1}', "application/json")
    second = store.put_once(event_key("D1", 2), b'{"n": 2}', "application/json")
    assert first.etag and second.etag and first.etag != second.etag
    assert store.list_tagged(dossier_prefix("D1")) == [(first.key, first.etag), (second.key, second.etag)]
    head = store.head(first.key)
    assert head is not None and head.etag == first.etag

    write_past_the_store(store, first.key, b'{"n": 9}')
    assert store.list_tagged(dossier_prefix("D1"))[0] != (first.key, first.etag)
    assert store.list_tagged(dossier_prefix("D1"))[1] == (second.key, second.etag)


def test_head_of_a_missing_key_is_none(store: DocumentStore) -> None:
    assert store.head(SWORN_STATEMENT) is None


def test_get_of_a_missing_key_raises_object_not_found(store: DocumentStore) -> None:
    with pytest.raises(ObjectNotFound) as missing:
        store.get(SWORN_STATEMENT)

    assert missing.value.key == SWORN_STATEMENT


def test_presigned_url_hands_out_the_bytes(store: DocumentStore) -> None:
    store.put_once(SWORN_STATEMENT, PDF, "application/pdf")

    assert fetch(store.presign(SWORN_STATEMENT, expires_in=60)) == PDF


@pytest.mark.parametrize("expires_in", [0, -1, 604_801])
def test_presign_refuses_a_lifetime_out_of_range(store: DocumentStore, expires_in: int) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        store.presign(SWORN_STATEMENT, expires_in=expires_in)


def test_metadata_name_sha256_is_reserved_for_the_store(store: DocumentStore) -> None:
    with pytest.raises(ValueError, match="sha256"):
        store.put_once(SWORN_STATEMENT, PDF, "application/pdf", {"sha256": "0" * 64})

    assert store.head(SWORN_STATEMENT) is None


def test_sixteen_threads_racing_put_once_on_one_key_leave_exactly_one_winner(
    store: DocumentStore,
) -> None:
    """Exactly one racer creates the object and its bytes are the ones kept.

    Known limitation of moto (not of S3Store): moto's server checks ``If-None-Match: *`` and
    then writes, without a lock between the two, so this test can see two winners there. It
    passed on every run we made with these small payloads; with payloads over ~5 MB (which
    moto spills to disk between the check and the write) moto lets several racers win.
    """
    racers = 16
    start = threading.Barrier(racers)
    winners: list[bytes] = []
    refused: list[ObjectExists] = []
    errors: list[Exception] = []

    def race(number: int) -> None:
        payload = PDF + f"% racer {number}\n".encode()
        start.wait()
        try:
            store.put_once(SWORN_STATEMENT, payload, "application/pdf")
            winners.append(payload)
        except ObjectExists as error:
            refused.append(error)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=race, args=(number,)) for number in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(winners) == 1, f"{len(winners)} racers created {SWORN_STATEMENT!r}"
    assert len(refused) == racers - 1
    assert store.get(SWORN_STATEMENT) == winners[0]
    described = store.head(SWORN_STATEMENT)
    assert described is not None
    assert described.sha256 == hashlib.sha256(winners[0]).hexdigest()


# Local folder only


def _put_once_in_a_process(
    root: str, number: int, start: Barrier, results: Queue[tuple[str, bytes]]
) -> None:
    store = LocalFolderStore(Path(root))
    payload = PDF + f"% process {number}\n".encode()
    start.wait()
    try:
        store.put_once(SWORN_STATEMENT, payload, "application/pdf")
        results.put(("won", payload))
    except ObjectExists:
        results.put(("refused", b""))
    except Exception as error:
        results.put((f"error: {error!r}", b""))


def test_processes_racing_put_once_on_one_local_key_leave_exactly_one_winner(
    tmp_path: Path,
) -> None:
    racers = 8
    context = multiprocessing.get_context("fork")
    start = context.Barrier(racers)
    results: Queue[tuple[str, bytes]] = context.Queue()
    processes = [
        context.Process(target=_put_once_in_a_process, args=(str(tmp_path), n, start, results))
        for n in range(racers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=20) for _ in processes]
    for process in processes:
        process.join(timeout=20)

    assert sorted(outcome for outcome, _ in outcomes) == ["refused"] * (racers - 1) + ["won"]
    [winning_payload] = [payload for outcome, payload in outcomes if outcome == "won"]
    store = LocalFolderStore(tmp_path)
    assert store.get(SWORN_STATEMENT) == winning_payload
    described = store.head(SWORN_STATEMENT)
    assert described is not None
    assert described.sha256 == hashlib.sha256(winning_payload).hexdigest()


@pytest.mark.parametrize(
    "key", ["../x", "/etc/passwd", "a/../../b", "a/./b", "a//b", "a\\..\\b", "a\x00b", ""]
)
def test_local_store_refuses_keys_that_could_leave_its_folder(tmp_path: Path, key: str) -> None:
    store = LocalFolderStore(tmp_path / "store")

    with pytest.raises(InvalidKeyPart):
        store.put_once(key, PDF, "application/pdf")
    with pytest.raises(InvalidKeyPart):
        store.get(key)
    with pytest.raises(InvalidKeyPart):
        store.head(key)
    with pytest.raises(InvalidKeyPart):
        store.presign(key)
    assert [path.name for path in tmp_path.iterdir()] == ["store"]
    assert list((tmp_path / "store").iterdir()) == []


@pytest.mark.parametrize("prefix", ["../", "/etc/", "a/../../"])
def test_local_store_refuses_prefixes_that_could_leave_its_folder(
    tmp_path: Path, prefix: str
) -> None:
    with pytest.raises(InvalidKeyPart):
        LocalFolderStore(tmp_path / "store").list(prefix)


def test_local_list_skips_sidecars_and_temporary_files(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put_once(SWORN_STATEMENT, PDF, "application/pdf")
    folder = (tmp_path / SWORN_STATEMENT).parent
    (folder / ".kmop-tmp-left-by-a-crash").write_bytes(PDF)
    (folder / "v0002.pdf.meta.json").write_text("{}")  # orphan sidecar of an unfinished put

    assert store.list("") == [SWORN_STATEMENT]
    assert store.list(dossier_prefix("D-0001")) == [SWORN_STATEMENT]


def test_local_presign_is_a_file_url_of_the_object(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put_once(SWORN_STATEMENT, PDF, "application/pdf")

    assert store.presign(SWORN_STATEMENT) == (tmp_path.resolve() / SWORN_STATEMENT).as_uri()


# S3 only


def test_s3_object_carries_the_sha256_checksum(s3_store: S3Store) -> None:
    stored = s3_store.put_once(SWORN_STATEMENT, PDF, "application/pdf")

    response = s3_store.client.get_object(
        Bucket=s3_store.bucket, Key=SWORN_STATEMENT, ChecksumMode="ENABLED"
    )
    expected = base64.b64encode(bytes.fromhex(stored.sha256)).decode("ascii")
    assert response["ChecksumSHA256"] == expected


def test_s3_refusal_names_the_s3_error_code(s3_store: S3Store) -> None:
    missing_bucket = S3Store("kmop-test-no-such-bucket", s3_store.client)

    with pytest.raises(StorageError, match="NoSuchBucket") as refused:
        missing_bucket.put_once(SWORN_STATEMENT, PDF, "application/pdf")

    assert not isinstance(refused.value, StorageUnavailable)


def test_unreachable_endpoint_raises_storage_unavailable_after_the_configured_attempts() -> None:
    """Bounded: each call tries the endpoint as often as ``max_attempts`` says, then gives up
    (counted as requests botocore sends, not as time)."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    store = S3Store.from_settings(
        endpoint_url=endpoint,
        bucket="kmop-test-down",
        region="us-east-1",
        access_key="testing",
        secret_key="testing",
        connect_timeout=1,
        read_timeout=1,
        max_attempts=2,
    )
    sent: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.method))

    for attempt in (
        lambda: store.put_once(SWORN_STATEMENT, PDF, "application/pdf"),
        lambda: store.get(SWORN_STATEMENT),
        lambda: store.head(SWORN_STATEMENT),
        lambda: store.list("dossiers/"),
    ):
        sent.clear()
        with pytest.raises(StorageUnavailable, match=endpoint):
            attempt()
        assert len(sent) == 2, sent


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_s3_head_reads_metadata_names_in_any_case(s3_store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP header names are case-insensitive: a server or proxy may send ``x-amz-meta-Sha256``
    (waitress title-cases them), and the names come back as they were stored."""
    stored = s3_store.put_once(SWORN_STATEMENT, PDF, "application/pdf", {"idempotency-key": "job-1"})
    head_object = s3_store.client.head_object

    def title_cased(**request: object) -> dict:
        response = head_object(**request)
        response["Metadata"] = {name.title(): value for name, value in response["Metadata"].items()}
        return response

    monkeypatch.setattr(s3_store.client, "head_object", title_cased)
    head = s3_store.head(SWORN_STATEMENT)
    assert head is not None
    assert head.metadata == {"idempotency-key": "job-1", "sha256": stored.sha256}
