"""Connecting to the index's database and bringing its schema to the current revision."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from kmop.errors import KmopError

MIGRATIONS = Path(__file__).with_name("migrations")
#: Seconds to wait for PostgreSQL to answer a connection: the pipeline must not stall on it.
CONNECT_TIMEOUT = 3

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class IndexUrlError(KmopError):
    """``KMOP_INDEX_URL`` names no database this index can use."""


def normalized_url(url: str) -> str:
    """``url`` with the driver the project ships (psycopg 3) for a plain ``postgresql://``."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several types for a malformed URL
        raise IndexUrlError(f"KMOP_INDEX_URL: {url!r} is not a database URL ({exc})") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise IndexUrlError(f"KMOP_INDEX_URL: {parsed.get_backend_name()!r} is not supported "
                            "(PostgreSQL or SQLite)")
    return parsed.render_as_string(hide_password=False)


def connect(url: str) -> Engine:
    """The engine for ``url``, one per URL and process (its pool is shared by the threads)."""
    url = normalized_url(url)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        return engine


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # A commit need not wait for the disk: the index is rebuilt from the ledgers, and a projection
    # a crash of the database loses leaves its dossier behind, which catch-up finds.
    return create_engine(url, pool_pre_ping=True, connect_args={
        "connect_timeout": CONNECT_TIMEOUT, "options": "-c synchronous_commit=off"})


def dispose(url: str) -> None:
    """Close and forget the engine for ``url`` (a database about to be dropped)."""
    with _engines_lock:
        engine = _engines.pop(normalized_url(url), None)
    if engine is not None:
        engine.dispose()


def migrate(url: str) -> Engine:
    """Bring the database at ``url`` to the current schema (Alembic); returns its engine."""
    engine = connect(url)
    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return engine


def revision(engine: Engine) -> str | None:
    """The schema revision the database is at; None for a database the index never used."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
