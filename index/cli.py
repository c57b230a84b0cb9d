"""``kmop index rebuild|catch-up|status`` and the index's side of ``kmop deadlines`` and ``kmop health``."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from kmop.errors import KmopError

# The database modules are imported where used: every ``kmop`` command builds this parser.

EXIT_OK = 0
EXIT_BEHIND = 1


class IndexDisabled(KmopError):
    """The command needs the dossier index, and ``KMOP_INDEX_URL`` turns it off."""


class IndexUnavailable(KmopError):
    """The dossier index's database cannot be reached; the message says where and why."""


def _configured() -> tuple[Any, Any, Any]:
    from kmop.cli_ops import configured
    from kmop.settings import load_settings

    settings = load_settings()
    store, tracker = configured()
    return settings, store, tracker


def index_engine(settings: Any, store: Any, tracker: Any) -> Any:
    """The configured index, brought to the current schema; a database the index never used is
    built from the ledgers first, so that its first answer is not an empty one."""
    if not settings.index_url:
        raise IndexDisabled("KMOP_INDEX_URL is empty: the dossier index is turned off")
    from .database import connect, migrate, revision
    from .projection import rebuild

    from sqlalchemy.exc import OperationalError

    try:
        engine = connect(settings.index_url)
        fresh = revision(engine) is None
        migrate(settings.index_url)
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise IndexUnavailable(f"KMOP_INDEX_URL: the index at {where} cannot be reached ({exc.orig or exc}); "
                               "set KMOP_INDEX_URL empty to read the ledgers instead") from None
    if fresh:
        rebuild(engine, tracker.ledger, store)
    return engine


def _rebuild(args: argparse.Namespace) -> int:
    from .projection import rebuild

    settings, store, tracker = _configured()
    engine = index_engine(settings, store, tracker)
    started = time.perf_counter()
    count = rebuild(engine, tracker.ledger, store)
    print(f"index rebuilt: {count} dossiers in {time.perf_counter() - started:.1f} s")
    return EXIT_OK


def _catch_up(args: argparse.Namespace) -> int:
    from .projection import catch_up

    settings, store, tracker = _configured()
    found = catch_up(index_engine(settings, store, tracker), tracker.ledger, store)
    print(f"index caught up: {found.events} events of {found.dossiers} dossiers projected")
    return EXIT_OK


def summary(engine: Any, store: Any) -> str:
    from sqlalchemy import func, select

    from .projection import lag
    from .schema import dossiers, events

    behind = lag(engine, store)
    with engine.connect() as connection:
        dossier_count = connection.execute(select(func.count()).select_from(dossiers)).scalar_one()
        event_count = connection.execute(select(func.count()).select_from(events)).scalar_one()
    state = "current" if behind.current else f"{behind.events} events of {behind.dossiers} dossiers behind"
    return f"{dossier_count} dossiers, {event_count} events; {state}"


def _status(args: argparse.Namespace) -> int:
    from .projection import lag

    settings, store, tracker = _configured()
    engine = index_engine(settings, store, tracker)
    print(f"index {engine.url.render_as_string(hide_password=True)}: {summary(engine, store)}")
    return EXIT_OK if lag(engine, store).current else EXIT_BEHIND


def deadlines_from_index(settings: Any, store: Any, tracker: Any, on: dt.date, status: str | None) -> list[dict[str, Any]]:
    """Every open deadline by status on ``on`` as the index has them, page after page."""
    from .queries import open_deadlines

    engine = index_engine(settings, store, tracker)
    found: list[dict[str, Any]] = []
    cursor = None
    with engine.connect() as connection:
        while True:
            page = open_deadlines(connection, on, status, cursor=cursor, limit=500)
            found.extend(page.items)
            if page.cursor is None:
                return found
            cursor = page.cursor


def add_commands(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser("index", help="the dossier index (KMOP_INDEX_URL): rebuild, catch up, status")
    actions = index.add_subparsers(dest="index_command", required=True)
    actions.add_parser("rebuild", help="empty the index and project every ledger again").set_defaults(handler=_rebuild)
    actions.add_parser("catch-up", help="project the ledger events the index lacks").set_defaults(handler=_catch_up)
    actions.add_parser("status", help="how many dossiers and events the index holds, and how far behind it is "
                                      "(exit 1 when behind)").set_defaults(handler=_status)


def health_check(settings: Any, timeout: float = 3.0) -> Any:
    """The ``index`` line of ``kmop health``: the database answers, and how far behind it is.

    Being behind is reported, not failed: the pipeline runs on, and catch-up closes the gap.
    Measuring the lag lists the bucket's keys; where that takes longer than ``timeout`` (a large
    bucket) the line says so instead of holding up the health check."""
    import threading

    from kmop.observability import _timed_check

    def probe() -> str:
        from sqlalchemy import func, select

        from kmop.cli_ops import configured

        from .database import migrate
        from .schema import dossiers

        engine = migrate(settings.index_url)
        with engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(dossiers)).scalar_one()
        store, _ = configured()
        measured: list[str] = []
        worker = threading.Thread(target=lambda: measured.append(summary(engine, store)), daemon=True)
        worker.start()
        worker.join(timeout)
        return measured[0] if measured else \
            f"{count} dossiers; lag not measured within {timeout:g} s (kmop index status measures it)"

    return _timed_check("index", probe)
