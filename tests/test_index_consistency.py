"""The index against its ledgers: whatever crashes interrupt the projections, a catch-up makes
the index equal, row for row, to one rebuilt from the ledgers (on SQLite and PostgreSQL)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

import index.observer
import index.projection
from index import migrate
from index.projection import catch_up, lag, rebuild
from index.schema import deadlines, dossiers, events
from storage.local import LocalFolderStore

from .index_fixtures import index_url, indexed_tracker, pg_database, record, rows, steps_of

__all__ = ["index_url", "pg_database"]  # fixtures

DOSSIERS = [("P-1", "positive"), ("C-1", "conditional"), ("N-1", "negative")]
#: What happens to an append's projection: it runs; the process dies before it starts; the
#: database connection is lost between its steps (after the event's row, before the dossier's).
CRASHES = ("none", "before", "between")


class Crash(Exception):
    pass


@given(operations=st.lists(st.tuples(st.integers(0, len(DOSSIERS) - 1), st.sampled_from(CRASHES)),
                           min_size=1, max_size=30))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_catch_up_makes_the_index_equal_a_rebuild(index_url: str, operations: list[tuple[int, str]]) -> None:
    engine = migrate(index_url)
    with engine.begin() as connection:
        for table in (deadlines, dossiers, events):
            connection.execute(delete(table))
    store = LocalFolderStore(Path(tempfile.mkdtemp(prefix="kmop-index-prop-")))
    tracker = indexed_tracker(store, index_url)
    steps = [steps_of(dossier_id, scenario, f"{dossier_id} BV", "0403.170.701", n + 1)
             for n, (dossier_id, scenario) in enumerate(DOSSIERS)]
    done = [0] * len(DOSSIERS)
    real_project, real_write = index.observer.project, index.projection._write_dossier

    def crash_before(*args: Any) -> int:
        raise Crash("died before the projection")

    def crash_between(*args: Any) -> None:
        raise Crash("connection lost between the event's row and the dossier's")

    try:
        for which, crash in operations:
            if done[which] == len(steps[which]):
                continue
            index.observer.project = crash_before if crash == "before" else real_project
            index.projection._write_dossier = crash_between if crash == "between" else real_write
            record(tracker, steps[which][done[which]])
            done[which] += 1
    finally:
        index.observer.project, index.projection._write_dossier = real_project, real_write

    appended = sum(done)
    assert len(tracker.history(DOSSIERS[0][0])) + len(tracker.history(DOSSIERS[1][0])) \
        + len(tracker.history(DOSSIERS[2][0])) == appended  # no crash of the index lost an append
    catch_up(engine, tracker.ledger, store)
    assert lag(engine, store).current
    caught_up = rows(engine)
    assert len(caught_up["index_events"]) == appended
    rebuild(engine, tracker.ledger, store)
    assert caught_up == rows(engine)


def test_a_dropped_index_rebuilt_gives_the_same_answers(tmp_path: Path, index_url: str) -> None:
    from index import queries

    store = LocalFolderStore(tmp_path / "store")
    tracker = indexed_tracker(store, index_url)
    for n, (dossier_id, scenario) in enumerate(DOSSIERS):
        for step in steps_of(dossier_id, scenario, f"{dossier_id} BV", "0403.170.701", n + 1)[:9]:
            record(tracker, step)
    engine = migrate(index_url)
    kept = rows(engine)
    with engine.begin() as connection:
        for table in (deadlines, dossiers, events):
            connection.execute(delete(table))
    with engine.connect() as connection:
        assert queries.counts(connection, "phase") == []
    assert rebuild(engine, tracker.ledger, store) == len(DOSSIERS)
    assert rows(engine) == kept
