"""Session-wide parts the tests share, each started once and owned by the test session.

- Redis: ``KMOP_TEST_REDIS_URL`` names a Redis the tests may use (CI may start one); without it
  the session starts a redis-server of its own on a free loopback port. This is the one place
  that reads the setting: tests take the ``redis_url`` fixture, and keep to their own key
  namespace (``namespace``) and their own connections' clients.
- S3: ``KMOP_TEST_S3_ENDPOINT`` names an endpoint that is already running (MinIO, moto);
  without it a moto server is started in a child process. ``KMOP_TEST_S3_ACCESS_KEY`` and
  ``KMOP_TEST_S3_SECRET_KEY`` give its credentials (fake ones by default, which moto accepts).
- A development PKI, an NSS trust store and a warm LibreOffice pool.

``--no-skips`` (CI runs with it) turns every skipped test into a failure: a part the tests
need and cannot find is an error there, not a quiet green run. The tests run in random order
(pytest-randomly); the seed is printed at the end of the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from storage.s3 import S3Store
from testing.processes import RedisServer
from testing.s3server import MotoServer
from tests.support.s3 import remove_bucket

pytest_plugins = ["tests.pki_fixtures", "tests.support.softhsm", "tests.support.pipeline"]

REDIS_URL_ENV = "KMOP_TEST_REDIS_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-skips", action="store_true", default=False,
                     help="report every skipped test as failed (CI: a missing part must not pass quietly)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and item.config.getoption("--no-skips"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, and --no-skips makes a skip a failure: {reason}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The order's seed (pytest-randomly), also under -q: a failure that depends on the order is
    replayed with ``-p randomly --randomly-seed=N``."""
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None and config.pluginmanager.hasplugin("randomly"):
        terminalreporter.write_line(f"tests ran in random order: --randomly-seed={seed}")


# --- Redis ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis the tests use: ``KMOP_TEST_REDIS_URL``, or a server of the session's own."""
    configured = os.environ.get(REDIS_URL_ENV)
    if configured:
        yield configured
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A connection of the test's own to the tests' Redis."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A private Redis key namespace on the tests' Redis, removed afterwards."""
    name = f"kmop-test-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}*"))
    if keys:
        client.delete(*keys)
    client.close()


# --- S3 -------------------------------------------------------------------------------------------

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
    remove_bucket(store)


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
