"""Dossier index benchmark: how long each question of ``index.queries`` takes as the number of
dossiers grows, on PostgreSQL and SQLite. Prints figures measured in one run on this machine.

    python -m bench.index [--sizes 1000,10000,100000] [--repeat 60] [--databases postgresql,sqlite]
                          [--ledgers 1000] [--appends 300]

Each size is seeded straight into a fresh database (not through the ledgers): dossiers in every
phase and outcome, about a dozen events each, deadlines and ends of validity spread over five
years, twenty audit firms. Every question is asked ``--repeat`` times with varied parameters
(the first page, 50 rows); p50 and p95 are printed per size, with the ratio of the largest
size's p95 to the smallest's: a question whose cost follows its answer, not the number of
dossiers, stays near 1. PostgreSQL: 127.0.0.1:5432 (``KMOP_BENCH_PG_URL`` names another
server's maintenance database), a database of its own created and dropped here.

``--ledgers N`` (0: skipped) also makes N dossiers through the real tracker on moto's S3 server
(started here, loopback), each a random number of steps into one of the three scenarios, and
measures beside each other: today's ledger scan (``workflow.deadlines.open_deadlines``, every
dossier's ledger read by a fresh process's ledger), a rebuild of the index from those ledgers
on each database (with the time per 10,000 dossiers extrapolated, and labelled so), and the same
question asked of the index.

``--appends N`` (0: skipped) times N appends through the tracker on a local folder with the
index off and on (each database), in alternating rounds, and prints the wall and CPU time each
append gains from its projection: what the index adds to each document of the pipeline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text

from index import migrate, queries
from index.database import dispose
from index.schema import deadlines, dossiers, events

BASE = dt.date(2027, 1, 1)
FIRMS = [f"Auditkantoor {n:02d} BV" for n in range(20)]
#: phase -> (weight, outcome, who acts next, deadline it carries)
PHASES: dict[str, tuple[int, str | None, str | None, str | None]] = {
    "awaiting_application": (5, None, "applicant", None),
    "submitted": (6, None, "audit_firm", None),
    "quoted": (5, None, "applicant", None),
    "quote_accepted": (5, None, "audit_firm", None),
    "prepared": (5, None, "auditor", None),
    "visited": (5, None, "auditor", None),
    "reported": (5, None, "commission", None),
    "decided_positive": (3, "positive", "agency", "agency_certificate"),
    "decided_conditional": (2, "conditional", "agency", "agency_certificate"),
    "decided_negative": (3, "negative", "audit_firm", "additional_audit"),
    "registered": (45, "positive", None, None),
    "registered_conditional": (6, "conditional", "audit_firm", "follow_up_audit"),
    "lapsed": (2, "negative", None, None),
    "rejected": (3, "negative", None, None),
}
EVENTS_PER_DOSSIER = 12


def _day(offset: int) -> str:
    return (BASE + dt.timedelta(days=offset)).isoformat()


def _rows(count: int, rng: random.Random) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]]:
    names, weights = list(PHASES), [PHASES[p][0] for p in PHASES]
    for n in range(count):
        dossier_id = f"B-{n:07d}"
        phase = rng.choices(names, weights)[0]
        _, outcome, next_role, deadline = PHASES[phase]
        opened = rng.randrange(-5 * 365, 0)
        registered = phase in ("registered", "registered_conditional")
        provider = f"{rng.choice(['Alfa', 'Beta', 'Gamma', 'Delta', 'Omega', 'Sigma'])} Advies {n} BV"
        at = [f"{_day(opened + 7 * i)}T10:00:00.000+00:00" for i in range(EVENTS_PER_DOSSIER)]
        row = {
            "dossier_id": dossier_id, "phase": phase, "cycle": "initial", "outcome": outcome, "next_role": next_role,
            "audit_firm": rng.choice(FIRMS) if phase not in ("awaiting_application", "submitted") else None,
            "enterprise_number": f"0{rng.randrange(200_000_000, 999_999_999)}", "provider_name": provider,
            "provider_name_folded": provider.casefold(),
            "registration_number": f"DV.A{n:07d}" if registered else None,
            "valid_until": _day(rng.randrange(0, 5 * 365)) if registered else None,
            "decision_date": _day(opened + 70) if outcome else None,
            "opened_at": at[0], "updated_at": at[-1], "last_seq": EVENTS_PER_DOSSIER, "last_hash": "f" * 64,
        }
        event_rows = [{"dossier_id": dossier_id, "seq": i + 1, "hash": f"{n:032x}{i:032x}", "kind": "document_stored",
                       "action": "quote", "at": at[i], "actor": "audit_firm", "document_key": None,
                       "document_sha256": None, "provider_name": provider if i == 1 else None,
                       "enterprise_number": None, "audit_firm": None, "state": None}
                      for i in range(EVENTS_PER_DOSSIER)]
        deadline_rows = []
        if deadline is not None:
            due = rng.randrange(-60, 5 * 365)
            opens = due - 180 if deadline == "follow_up_audit" else None
            deadline_rows.append({"dossier_id": dossier_id, "name": deadline, "due": _day(due),
                                  "opens": None if opens is None else _day(opens),
                                  "opens_effective": _day(opens if opens is not None else due - 30),
                                  "description": deadline.replace("_", " ")})
        yield row, event_rows, deadline_rows


def seed(engine: Engine, count: int, seed_value: int = 27) -> float:
    started = time.perf_counter()
    rng = random.Random(seed_value)
    batch: dict[str, list[dict[str, Any]]] = {"d": [], "e": [], "l": []}

    def flush(connection: Connection) -> None:
        for key, table in (("d", dossiers), ("e", events), ("l", deadlines)):
            if batch[key]:
                connection.execute(table.insert(), batch[key])
                batch[key] = []

    with engine.begin() as connection:
        for row, event_rows, deadline_rows in _rows(count, rng):
            batch["d"].append(row)
            batch["e"].extend(event_rows)
            batch["l"].extend(deadline_rows)
            if len(batch["e"]) >= 20_000:
                flush(connection)
        flush(connection)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    return time.perf_counter() - started


def questions(count: int, rng: random.Random) -> dict[str, Callable[[Connection], Any]]:
    def on() -> dt.date:
        return BASE + dt.timedelta(days=rng.randrange(0, 5 * 365))

    def some(n_max: int) -> int:
        return rng.randrange(0, n_max)

    return {
        "deadlines overdue": lambda c: queries.open_deadlines(c, on(), "overdue"),
        "deadlines due": lambda c: queries.open_deadlines(c, on(), "due"),
        "deadlines upcoming": lambda c: queries.open_deadlines(c, on(), "upcoming"),
        "deadlines all": lambda c: queries.open_deadlines(c, on()),
        "registrations ending (180 d)": lambda c: queries.expiring_registrations(c, on()),
        "dossiers in phase": lambda c: queries.dossiers_in_phase(c, rng.choice(list(PHASES))),
        "worklist per role": lambda c: queries.worklist(c, rng.choice(["applicant", "audit_firm", "auditor",
                                                                        "commission", "agency"])),
        "worklist per role and firm": lambda c: queries.worklist(c, "audit_firm", rng.choice(FIRMS)),
        "search dossier id": lambda c: queries.search(c, f"B-{some(count):07d}"),
        "search registration number": lambda c: queries.search(c, f"DV.A{some(count):07d}"),
        "search enterprise number": lambda c: queries.search(c, f"0{rng.randrange(200_000_000, 999_999_999)}"),
        "search name prefix": lambda c: queries.search(c, f"{rng.choice(['alfa', 'omega'])} advies {some(count)}"),
        "counts per phase": lambda c: queries.counts(c, "phase"),
        "counts per outcome": lambda c: queries.counts(c, "outcome"),
        "counts per month": lambda c: queries.counts(c, "month"),
    }


def measure(engine: Engine, count: int, repeat: int) -> dict[str, tuple[float, float]]:
    rng = random.Random(count)
    found: dict[str, tuple[float, float]] = {}
    with engine.connect() as connection:
        for name, ask in questions(count, rng).items():
            ask(connection)  # warm the plan and the cache
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                ask(connection)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            found[name] = (statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))])
    return found


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="kmop-bench-index-") as folder:
            url = f"sqlite:///{Path(folder) / 'index.sqlite'}"
            yield url
            dispose(url)
        return
    admin_url = os.environ.get("KMOP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"kmop_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose(url)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def ledger_comparison(count: int, kinds: list[str]) -> None:
    """The ledger scan of today against the index, on ``count`` dossiers made through the tracker."""
    import dataclasses

    from index.projection import rebuild
    from kmop.demo import example_applicant
    from kmop.jobs import DocumentJob
    from kmop.scenario import Fact, dossier_steps
    from storage.s3 import S3Store
    from testing.s3server import MotoServer
    from workflow.deadlines import open_deadlines as scan
    from workflow.ledger import Ledger
    from workflow.tracker import Tracker

    rng = random.Random(count)
    scenarios = {name: dossier_steps(example_applicant(), name) for name in ("positive", "conditional", "negative")}
    with MotoServer() as server:
        store = S3Store.from_settings(endpoint_url=server.url, bucket=f"kmop-bench-{uuid.uuid4().hex[:8]}",
                                      region="us-east-1", access_key="testing", secret_key="testing")
        store.ensure_bucket()
        tracker = Tracker(Ledger(store))
        started = time.perf_counter()
        events_made = 0
        for n in range(count):
            steps = scenarios[rng.choice(list(scenarios))]
            for step in steps[: rng.randrange(1, len(steps) + 1)]:
                step = dataclasses.replace(step, dossier_id=f"L-{n:06d}")
                if isinstance(step, Fact):
                    tracker.record_fact(step.dossier_id, step.name, step.role, step.data, step.idempotency_key)
                else:
                    assert isinstance(step, DocumentJob)
                    data = step.data
                    if step.kind == "registration_certificate":
                        data = {**data, "registration_number": f"DV.A{n + 1:06d}"}
                    tracker.record_document(step.dossier_id, step.kind, step.role, data, step.idempotency_key,
                                            {"kind": step.kind, "step": step.document_kind.step, "key": f"k/{n}",
                                             "sha256": "0" * 64, "size": 1})
                events_made += 1
        print(f"\nledgers: {count} dossiers, {events_made} events made through the tracker on moto's S3 "
              f"server (loopback) in {time.perf_counter() - started:.0f} s", flush=True)
        on = dt.date.today()
        started = time.perf_counter()
        found = scan(Tracker(Ledger(store, cached_dossiers=0)), store, on)
        scanned = time.perf_counter() - started
        print(f"ledger scan (kmop deadlines without the index): {scanned * 1000:.0f} ms for {count} dossiers, "
              f"{scanned * 1000 / count:.1f} ms a dossier; {len(found)} open deadlines")
        for kind in kinds:
            with database(kind) as url:
                engine = migrate(url)
                started = time.perf_counter()
                rebuild(engine, Ledger(store, cached_dossiers=0), store)
                rebuilt = time.perf_counter() - started
                with engine.connect() as connection:
                    started = time.perf_counter()
                    pages = 0
                    cursor = None
                    while True:
                        page = queries.open_deadlines(connection, on, cursor=cursor, limit=500)
                        pages += 1
                        if page.cursor is None:
                            break
                        cursor = page.cursor
                    asked = time.perf_counter() - started
            print(f"{kind}: rebuild from the ledgers {rebuilt:.1f} s for {count} dossiers "
                  f"(extrapolated: {rebuilt * 10_000 / count:.0f} s per 10,000); the same deadlines from the "
                  f"index {asked * 1000:.1f} ms ({pages} page(s) of 500)")


def _append_round(count: int, url: str | None, round_id: str) -> tuple[float, float]:
    """Seconds of wall and of this process's CPU for ``count`` appends (whole dossiers)."""
    import dataclasses

    from index.observer import attach
    from kmop.demo import example_applicant
    from kmop.jobs import DocumentJob
    from kmop.scenario import Fact, dossier_steps
    from storage.local import LocalFolderStore
    from workflow.ledger import Ledger
    from workflow.tracker import Tracker

    steps = _steps_cache or _steps_cache.extend(dossier_steps(example_applicant(), "positive")) or _steps_cache
    with tempfile.TemporaryDirectory(prefix="kmop-bench-appends-") as folder:
        ledger = Ledger(LocalFolderStore(Path(folder)))
        attach(ledger, url)
        tracker = Tracker(ledger)
        made = 0
        wall, cpu = time.perf_counter(), time.process_time()
        n = 0
        while made < count:
            for step in steps:
                if made == count:
                    break
                step = dataclasses.replace(step, dossier_id=f"A-{round_id}-{n:05d}")
                if isinstance(step, Fact):
                    tracker.record_fact(step.dossier_id, step.name, step.role, step.data, step.idempotency_key)
                else:
                    assert isinstance(step, DocumentJob)
                    data = step.data
                    if step.kind == "registration_certificate":
                        data = {**data, "registration_number": f"DV.A{n + 1:06d}"}
                    tracker.record_document(step.dossier_id, step.kind, step.role, data, step.idempotency_key,
                                            {"kind": step.kind, "step": step.document_kind.step, "key": f"k/{n}",
                                             "sha256": "0" * 64, "size": 1})
                made += 1
            n += 1
        return time.perf_counter() - wall, time.process_time() - cpu


_steps_cache: list[Any] = []


def append_overhead(count: int, kinds: list[str], rounds: int = 3) -> None:
    """What a projection adds to each append: rounds of the index off and on, alternating."""
    print(f"\nappends: {count} a round through the tracker on a local folder, {rounds} rounds each, alternating")
    for kind in kinds:
        with database(kind) as url:
            migrate(url)
            _append_round(20, url, "warm")
            off: list[tuple[float, float]] = []
            on: list[tuple[float, float]] = []
            for r in range(rounds):
                off.append(_append_round(count, None, f"off{r}"))
                on.append(_append_round(count, url, f"on{r}"))
            per = [((b[0] - a[0]) * 1000 / count, (b[1] - a[1]) * 1000 / count) for a, b in zip(off, on)]
            base = statistics.median(a[0] * 1000 / count for a in off)
            print(f"{kind}: an append takes {base:.1f} ms without the index; the projection adds "
                  f"{statistics.median(p[0] for p in per):.1f} ms wall, {statistics.median(p[1] for p in per):.1f} ms "
                  f"of this process's CPU (medians of {rounds} pairs: "
                  f"{', '.join(f'{p[0]:.1f}' for p in per)} ms wall)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--ledgers", type=int, default=1000, help="dossiers made through the tracker on "
                        "loopback S3 for the ledger scan and the rebuild (0: skip)")
    parser.add_argument("--appends", type=int, default=300, help="appends a round for the overhead of the "
                        "projection (0: skip)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.platform()}")
    for kind in args.databases.split(","):
        results: dict[int, dict[str, tuple[float, float]]] = {}
        for size in sizes:
            with database(kind) as url:
                engine = migrate(url)
                seconds = seed(engine, size)
                print(f"{kind}: seeded {size} dossiers ({size * EVENTS_PER_DOSSIER} events) in {seconds:.1f} s",
                      flush=True)
                results[size] = measure(engine, size, args.repeat)
        print(f"\n{kind}: milliseconds per question, p50 / p95 ({args.repeat} asks, first page of 50)")
        header = "".join(f"{size:>20,}" for size in sizes)
        print(f"{'question':<30}{header}{'p95 ratio':>12}")
        for name in results[sizes[0]]:
            cells = "".join(f"{results[s][name][0]:>10.2f} /{results[s][name][1]:>7.2f}" for s in sizes)
            ratio = results[sizes[-1]][name][1] / max(results[sizes[0]][name][1], 1e-9)
            print(f"{name:<30}{cells}{ratio:>12.1f}")
        print()
    if args.ledgers:
        ledger_comparison(args.ledgers, args.databases.split(","))
    if args.appends:
        append_overhead(args.appends, args.databases.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
