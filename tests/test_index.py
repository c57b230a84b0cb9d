"""The dossier index (``index``): projection, catch-up and the questions it answers, on SQLite
and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import index.observer
from index import migrate, queries
from index.cli import deadlines_from_index
from index.database import dispose
from index.projection import catch_up, lag, project, rebuild
from kmop.errors import InvalidJob
from kmop.observability import INDEX_PROJECTION_FAILURES
from storage.base import DocumentStore
from storage.local import LocalFolderStore
from workflow.deadlines import open_deadlines
from workflow.tracker import Tracker

from .index_fixtures import (PG_HOST, PG_PORT, TcpRelay, index_url, indexed_tracker, pg_database, pg_url, record,
                             rows, steps_of)

__all__ = ["index_url", "pg_database"]  # fixtures


def _upto(steps: list[Any], action: str, occurrence: int = 0) -> list[Any]:
    names = [getattr(s, "kind", None) or s.name for s in steps]
    at = [i for i, name in enumerate(names) if name == action][occurrence]
    return steps[: at + 1]


#: dossier id -> (scenario, how far, provider, enterprise number, audit firm)
SEEDED = {
    "D-REG": ("positive", None, "Alfa Advies BV", "0403.170.701", None),
    "D-DEC": ("positive", "commission_decision", "Beta Begeleiding NV", "0202.239.951", None),
    "D-COND": ("conditional", "registration_certificate", "Gamma Groei BV", "0417.497.106", None),
    "D-NEG": ("negative", "commission_decision", "Delta Digitaal BV", "0426.184.947", None),
    "D-SUB": ("positive", "sworn_statement", "Alfa Adviseurs CommV", "0830.406.383", None),
    "D-FIRM": ("positive", "quote_acceptance", "Epsilon Export BV", "0451.406.617", "Andere Audit NV"),
}


def seed(tracker: Tracker) -> None:
    for number, (dossier_id, (scenario, until, provider, enterprise, firm)) in enumerate(SEEDED.items(), start=1):
        steps = steps_of(dossier_id, scenario, provider, enterprise, number, firm)
        for step in (steps if until is None else _upto(steps, until)):
            record(tracker, step)


@pytest.fixture
def store(tmp_path: Path) -> LocalFolderStore:
    return LocalFolderStore(tmp_path / "store")


@pytest.fixture
def seeded(store: LocalFolderStore, index_url: str) -> tuple[Tracker, Engine]:
    engine = migrate(index_url)
    tracker = indexed_tracker(store, index_url)
    seed(tracker)
    return tracker, engine


def _all(question: Any, connection: Any, *args: Any, limit: int = 50, **kwargs: Any) -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        page = question(connection, *args, cursor=cursor, limit=limit, **kwargs)
        found.extend(page.items)
        if page.cursor is None:
            return found
        cursor = page.cursor


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["dossier_id"] for item in items]


def _scan(tracker: Tracker, store: DocumentStore, on: dt.date) -> list[tuple[Any, ...]]:
    return sorted((d.dossier_id, d.deadline.name, d.deadline.due, d.status, d.days_left)
                  for d in open_deadlines(tracker, store, on))


def test_every_append_is_projected_and_a_repeat_changes_nothing(seeded: tuple[Tracker, Engine],
                                                                 store: LocalFolderStore) -> None:
    tracker, engine = seeded
    before = rows(engine)
    assert len(before["index_events"]) == sum(len(tracker.history(d)) for d in SEEDED)
    assert lag(engine, store).current
    for dossier_id in SEEDED:
        for event in tracker.history(dossier_id):
            project(engine, event)  # a redelivered projection
        for step in steps_of(dossier_id, *SEEDED[dossier_id][:1], *SEEDED[dossier_id][2:4], 1)[:1]:
            record(tracker, step)  # a redelivered job: the ledger finds its event, the index is told again
    assert rows(engine) == before


def test_out_of_order_projection_ends_where_a_rebuild_does(store: LocalFolderStore, index_url: str) -> None:
    engine = migrate(index_url)
    tracker = indexed_tracker(store, None)  # the index learns nothing by itself here
    seed(tracker)
    for dossier_id in SEEDED:
        for event in reversed(tracker.history(dossier_id)):
            project(engine, event)
    reversed_rows = rows(engine)
    rebuild(engine, tracker.ledger, store)
    assert reversed_rows == rows(engine)


def test_deadlines_answer_as_the_ledger_scan_does(seeded: tuple[Tracker, Engine], store: LocalFolderStore) -> None:
    tracker, engine = seeded
    decision = dt.date.fromisoformat(tracker.state("D-DEC").decision_date)
    days = [decision, decision + dt.timedelta(days=20), decision + dt.timedelta(days=43),
            decision + dt.timedelta(days=200), decision + dt.timedelta(days=400)]
    with engine.connect() as connection:
        for on in days:
            everything = _all(queries.open_deadlines, connection, on, limit=1)
            assert sorted((d["dossier_id"], d["name"], d["due"], d["status"], d["days_left"]) for d in everything) \
                == _scan(tracker, store, on)
            for status in queries.DEADLINE_STATUSES:
                assert [d for d in everything if d["status"] == status] == \
                    _all(queries.open_deadlines, connection, on, status, limit=2)
        timer = _all(queries.open_deadlines, connection, decision + dt.timedelta(days=43), "overdue")
    assert ("D-DEC", "agency_certificate") in {(d["dossier_id"], d["name"]) for d in timer}  # the 6 weeks ran out
    with engine.connect() as connection:
        assert {d["dossier_id"] for d in _all(queries.open_deadlines, connection, decision)} == \
            {"D-DEC", "D-COND", "D-NEG"}


def test_worklists_phases_search_and_counts(seeded: tuple[Tracker, Engine]) -> None:
    tracker, engine = seeded
    with engine.connect() as c:
        assert _ids(_all(queries.worklist, c, "audit_firm", limit=1)) == ["D-COND", "D-FIRM", "D-NEG", "D-SUB"]
        assert _ids(_all(queries.worklist, c, "audit_firm", "Andere Audit NV")) == ["D-FIRM"]
        assert _ids(_all(queries.worklist, c, "audit_firm", "CertUp BV")) == ["D-COND", "D-NEG"]
        assert _ids(_all(queries.worklist, c, "agency")) == ["D-DEC"]
        assert _ids(_all(queries.dossiers_in_phase, c, "registered")) == ["D-REG"]
        assert _ids(_all(queries.dossiers_in_phase, c, "registered_conditional")) == ["D-COND"]
        assert _ids(_all(queries.search, c, "alfa ADV", limit=1)) == ["D-REG", "D-SUB"]
        assert _ids(_all(queries.search, c, "0426184947")) == ["D-NEG"]
        assert _ids(_all(queries.search, c, "0426.184.947")) == ["D-NEG"]
        assert _ids(_all(queries.search, c, tracker.state("D-COND").registration_number)) == ["D-COND"]
        assert _ids(_all(queries.search, c, "D-FIRM")) == ["D-FIRM"]
        assert _all(queries.search, c, "Alfa_") == []  # a wildcard in the term is a character
        assert dict(queries.counts(c, "phase")) == {
            "registered": 1, "decided_positive": 1, "registered_conditional": 1, "decided_negative": 1,
            "submitted": 1, "quote_accepted": 1}
        assert dict(queries.counts(c, "outcome")) == {None: 2, "positive": 2, "conditional": 1, "negative": 1}
        assert sum(n for _, n in queries.counts(c, "month")) == len(SEEDED)
        valid_until = dt.date.fromisoformat(tracker.state("D-REG").valid_until)
        on = valid_until - dt.timedelta(days=10)
        ending = sorted((tracker.state(d).valid_until, d) for d in SEEDED
                        if tracker.state(d).valid_until and tracker.state(d).valid_until <= (on + dt.timedelta(days=30)).isoformat())
        assert ("D-REG" in _ids(_all(queries.expiring_registrations, c, on, 30, limit=1))
                and _ids(_all(queries.expiring_registrations, c, on, 30, limit=1)) == [d for _, d in ending])
        assert _all(queries.expiring_registrations, c, valid_until - dt.timedelta(days=4 * 365), 30) == []
        with pytest.raises(InvalidJob, match="cursor"):
            queries.worklist(c, "agency", cursor=queries.dossiers_in_phase(c, "registered", limit=1).cursor or "x")


def test_catch_up_after_a_crash_between_append_and_projection(
        store: LocalFolderStore, index_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = migrate(index_url)
    tracker = indexed_tracker(store, index_url)
    steps = steps_of("D-CRASH", "positive", "Zeta BV", "0403.170.701", 1)
    record(tracker, steps[0])
    failures = INDEX_PROJECTION_FAILURES._value.get()

    def crash(*args: Any) -> int:
        raise ConnectionError("the process died after the append")

    monkeypatch.setattr(index.observer, "project", crash)
    record(tracker, steps[1])  # appended; its projection lost
    monkeypatch.undo()
    assert len(tracker.history("D-CRASH")) == 2
    assert INDEX_PROJECTION_FAILURES._value.get() == failures + 1
    behind = lag(engine, store)
    assert (behind.dossiers, behind.events) == (1, 1)
    assert catch_up(engine, tracker.ledger, store).events == 1
    assert lag(engine, store).current
    caught_up = rows(engine)
    rebuild(engine, tracker.ledger, store)
    assert caught_up == rows(engine)


def test_the_next_event_of_a_dossier_catches_it_up(
        store: LocalFolderStore, index_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = migrate(index_url)
    tracker = indexed_tracker(store, index_url)
    steps = steps_of("D-GAP", "positive", "Eta BV", "0403.170.701", 1)
    record(tracker, steps[0])
    monkeypatch.setattr(index.observer, "project", lambda *args: (_ for _ in ()).throw(ConnectionError("down")))
    record(tracker, steps[1])
    monkeypatch.undo()
    record(tracker, steps[2])
    assert lag(engine, store).current
    with engine.connect() as c:
        assert _ids(_all(queries.dossiers_in_phase, c, "quoted")) == ["D-GAP"]


def test_postgresql_unreachable_the_appends_go_on_and_catch_up_fills_the_index(
        store: LocalFolderStore, pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable = pg_url(pg_database.rsplit("/", 1)[1], port=1)  # nothing listens there
    attempts = []
    real_migrate = index.observer.migrate
    monkeypatch.setattr(index.observer, "migrate", lambda url: attempts.append(url) or real_migrate(url))
    tracker = indexed_tracker(store, unreachable)
    failures = INDEX_PROJECTION_FAILURES._value.get()
    steps = steps_of("D-DOWN", "conditional", "Theta BV", "0403.170.701", 1)
    for step in _upto(steps, "commission_decision"):
        record(tracker, step)
    assert tracker.state("D-DOWN").phase.value == "decided_conditional"
    appended = len(tracker.history("D-DOWN"))
    assert INDEX_PROJECTION_FAILURES._value.get() == failures + appended
    assert len(attempts) == 1  # the appends after the first did not wait for the database again
    engine = migrate(pg_database)
    assert lag(engine, store).events == len(tracker.history("D-DOWN"))
    catch_up(engine, tracker.ledger, store)
    assert lag(engine, store).current
    with engine.connect() as c:
        assert _ids(_all(queries.dossiers_in_phase, c, "decided_conditional")) == ["D-DOWN"]


def test_postgresql_gone_mid_run_the_appends_go_on_and_catch_up_fills_the_index(
        store: LocalFolderStore, pg_database: str) -> None:
    relay = TcpRelay((PG_HOST, PG_PORT)).start()
    url = pg_url(pg_database.rsplit("/", 1)[1], port=relay.port)
    tracker = indexed_tracker(store, url)
    steps = steps_of("D-MID", "negative", "Lambda BV", "0403.170.701", 1)
    for step in steps[:4]:
        record(tracker, step)
    engine = migrate(pg_database)
    assert lag(engine, store).current
    relay.cut()  # PostgreSQL goes away mid-run
    failures = INDEX_PROJECTION_FAILURES._value.get()
    for step in _upto(steps, "commission_decision")[4:]:
        record(tracker, step)
    assert tracker.state("D-MID").phase.value == "decided_negative"  # the appends went on
    assert INDEX_PROJECTION_FAILURES._value.get() > failures
    assert lag(engine, store).events == len(tracker.history("D-MID")) - 4
    relay.start()  # back, on the same port
    try:
        catch_up(migrate(url), tracker.ledger, store)
        assert lag(engine, store).current
        caught_up = rows(engine)
        rebuild(engine, tracker.ledger, store)
        assert caught_up == rows(engine)
    finally:
        relay.cut()
        dispose(url)


def test_the_index_on_the_s3_store(s3_store: DocumentStore, index_url: str) -> None:
    engine = migrate(index_url)
    tracker = indexed_tracker(s3_store, index_url)
    steps = steps_of("D-S3", "negative", "Iota BV", "0403.170.701", 1)
    for step in _upto(steps, "commission_decision"):
        record(tracker, step)
    assert lag(engine, s3_store).current
    due = dt.date.fromisoformat(tracker.state("D-S3").deadlines[0].due)
    with engine.connect() as c:
        for on in (due - dt.timedelta(days=60), due, due + dt.timedelta(days=1)):
            assert sorted((d["dossier_id"], d["name"], d["due"], d["status"], d["days_left"])
                          for d in _all(queries.open_deadlines, c, on)) == _scan(tracker, s3_store, on)


def test_kmop_deadlines_reads_the_index_as_it_read_the_ledgers(
        seeded: tuple[Tracker, Engine], store: LocalFolderStore, index_url: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from kmop.cli import main

    tracker, _ = seeded
    on = dt.date.fromisoformat(tracker.state("D-DEC").decision_date) + dt.timedelta(days=50)
    monkeypatch.setenv("KMOP_BROKER", "stub")
    monkeypatch.setenv("KMOP_STORAGE", "local")
    monkeypatch.setenv("KMOP_LOCAL_STORAGE_DIR", str(store.root))
    outputs = {}
    for url in (index_url, ""):
        monkeypatch.setenv("KMOP_INDEX_URL", url)
        assert main(["deadlines", "--on", on.isoformat()]) == 0
        outputs[url] = capsys.readouterr().out
    assert outputs[index_url] == outputs[""] and "overdue" in outputs[""]
    monkeypatch.setenv("KMOP_INDEX_URL", index_url)
    assert main(["index", "status"]) == 0
    assert "current" in capsys.readouterr().out
    record(indexed_tracker(store, None), steps_of("D-LATE", "positive", "Kappa BV", "0403.170.701", 9)[0])
    assert main(["index", "status"]) == 1  # behind by the event nobody projected
    from index.cli import health_check
    from kmop.settings import load_settings

    assert health_check(load_settings(), timeout=30).detail.endswith("1 events of 1 dossiers behind")
    assert main(["index", "catch-up"]) == 0
    assert main(["index", "status"]) == 0
    settings_like = type("S", (), {"index_url": index_url})()
    assert deadlines_from_index(settings_like, store, tracker, on, "overdue")


class CountingTracker(Tracker):
    """A tracker that counts the ledgers it reads."""

    def __init__(self, tracker: Tracker) -> None:
        super().__init__(tracker.ledger)
        self.reads: list[str] = []

    def history(self, dossier_id: str) -> list[Any]:
        self.reads.append(dossier_id)
        return super().history(dossier_id)


def test_the_sweep_finds_done_jobs_in_the_index_without_reading_their_ledgers(
        store: LocalFolderStore, index_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from index.queries import recorded_keys
    from kmop.jobs import DocumentJob
    from workers.outbox import record_job
    from workers.sweep import sweep

    engine = migrate(index_url)
    tracker = indexed_tracker(store, index_url)
    long_ago = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for n in range(3):
        steps = steps_of(f"D-JOB{n}", "positive", f"Job {n} BV", "0403.170.701", n + 1)
        for step in steps[:3]:
            if isinstance(step, DocumentJob):
                record_job(store, step, long_ago)
            if n == 2 and step is steps[2]:
                monkeypatch.setattr(index.observer, "project", lambda *a: (_ for _ in ()).throw(ConnectionError()))
            record(tracker, step)
        monkeypatch.undo()
    lost = steps_of("D-JOB0", "positive", "Job 0 BV", "0403.170.701", 1)[3]
    record_job(store, lost, long_ago)  # submitted, never recorded

    def recorded(dossier_ids: list[str]) -> dict[str, set[str]]:
        with engine.connect() as connection:
            return recorded_keys(connection, dossier_ids)

    counting = CountingTracker(tracker)
    with_index = sweep(store, counting, dt.timedelta(seconds=60), recorded=recorded)
    assert [(e.status, e.record.idempotency_key) for e in with_index] == [("stuck", lost.idempotency_key)]
    # read: the dossier of the lost job, and the one whose last projection failed (the index is behind)
    assert sorted(counting.reads) == ["D-JOB0", "D-JOB2"]
    without = sweep(store, CountingTracker(tracker), dt.timedelta(seconds=60))
    assert [(e.status, e.record.idempotency_key) for e in without] == [("stuck", lost.idempotency_key)]


def test_an_index_at_the_first_schema_is_migrated_and_caught_up(store: LocalFolderStore, index_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from index.database import MIGRATIONS, connect

    tracker = indexed_tracker(store, None)
    for step in steps_of("D-OLD", "positive", "Oud BV", "0403.170.701", 1)[:3]:
        record(tracker, step)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with connect(index_url).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text("INSERT INTO index_events (dossier_id, seq, hash, kind, at, actor) "
                                "VALUES ('D-OLD', 1, 'h', 'k', 'at', 'applicant')"))
    engine = migrate(index_url)  # events projected without their idempotency keys are dropped
    assert rows(engine)["index_events"] == []
    catch_up(engine, tracker.ledger, store)
    with engine.connect() as connection:
        keys = queries.recorded_keys(connection, ["D-OLD"])["D-OLD"]
    assert keys == {event.idempotency_key for event in tracker.history("D-OLD")}


def test_the_migrations_make_the_schema_the_code_declares(index_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from index.schema import metadata

    engine = migrate(index_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_kmop_deadlines_names_an_unreachable_index(store: LocalFolderStore, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from kmop.cli import main

    for name, value in (("KMOP_BROKER", "stub"), ("KMOP_STORAGE", "local"), ("KMOP_LOCAL_STORAGE_DIR", str(store.root)),
                        ("KMOP_INDEX_URL", f"postgresql://{PG_HOST}:1/nothing")):
        monkeypatch.setenv(name, value)
    assert main(["deadlines"]) == 2
    error = capsys.readouterr().err
    assert "KMOP_INDEX_URL" in error and "cannot be reached" in error and ":1/nothing" in error
