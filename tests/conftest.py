"""Fixtures for the storage tests: an S3 endpoint for the session and a fresh bucket per test.

``KMOP_TEST_S3_ENDPOINT`` names an endpoint that is already running (CI may start MinIO or
moto itself); without it a moto server is started in a child process for the session.
``KMOP_TEST_S3_ACCESS_KEY`` and ``KMOP_TEST_S3_SECRET_KEY`` give that endpoint's credentials;
they default to fake ones, which moto accepts.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from storage.s3 import S3Store
from tests.s3server import MotoServer

pytest_plugins = ["tests.pki_fixtures"]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    configured = os.environ.get("KMOP_TEST_S3_ENDPOINT")
    if configured:
        yield configured.rstrip("/")
        return
    with MotoServer() as server:
        yield server.url


@pytest.fixture
def s3_store(s3_endpoint: str) -> Iterator[S3Store]:
    store = S3Store.from_settings(
        endpoint_url=s3_endpoint,
        bucket=f"kmop-test-{uuid.uuid4().hex}",
        region="us-east-1",
        access_key=os.environ.get("KMOP_TEST_S3_ACCESS_KEY", "testing"),
        secret_key=os.environ.get("KMOP_TEST_S3_SECRET_KEY", "testing"),
    )
    store.ensure_bucket()
    yield store
    _remove_bucket(store)


def _remove_bucket(store: S3Store) -> None:
    """Leave a shared endpoint as it was found (a moto server dies with the session anyway)."""
    for key in store.list(""):
        store.client.delete_object(Bucket=store.bucket, Key=key)
    store.client.delete_bucket(Bucket=store.bucket)


# --- signing and conversion: one development PKI and one warm LibreOffice pool per session ---

TEST_PASSPHRASE = "test-passphrase"


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from signing.devpki import generate_dev_pki

    return generate_dev_pki(tmp_path_factory.mktemp("session-pki"), TEST_PASSPHRASE.encode()).directory


@pytest.fixture(scope="session")
def identities(pki_dir: Path):
    from signing.devpki import PASSPHRASE_ENV
    from signing.identities import IdentityStore

    return IdentityStore.from_file(pki_dir / "identities.json", {PASSPHRASE_ENV: TEST_PASSPHRASE})


@pytest.fixture(scope="session")
def nss_dir(pki_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.pdftools import nss_trust_store

    return nss_trust_store(tmp_path_factory.mktemp("nss"), pki_dir / "root.pem")


@pytest.fixture(scope="session")
def converter_pool():
    from conversion import ConverterPool

    with ConverterPool(size=1, conversion_timeout=120) as pool:
        yield pool


@pytest.fixture
def namespace() -> Iterator[str]:
    """A private Redis key namespace on the machine's Redis (127.0.0.1:6379), removed afterwards."""
    name = f"kmop-test-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = list(client.scan_iter(f"{name}*"))
    if keys:
        client.delete(*keys)
    client.close()
