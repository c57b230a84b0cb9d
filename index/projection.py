"""Projecting ledger events into the index, and catching the index up with the ledgers.

Each event is projected in one transaction: its row is inserted unless there (by dossier and
sequence number, so a repeated projection changes nothing), then the dossier's row and its open
deadlines are derived again from the dossier's projected events and written only forward (a
row already at a later event is left alone). The dossier row depends on the projected events
only, never on the order they came in, so an index caught up after gaps equals one rebuilt.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.base import DocumentStore
from workflow.deadlines import UPCOMING_DAYS
from workflow.ledger import Event, Ledger
from workflow.state import DossierState
from workflow.tracker import expected_next

from .schema import deadlines, dossiers, events

_EVENT_KEY = re.compile(r"^dossiers/([^/]+)/events/(\d{8})\.json$")
PARTIES = ("provider_name", "enterprise_number", "audit_firm")
#: Ledgers a rebuild reads side by side.
READERS = 8


# The statements of a projection, built once per database kind and run with parameters: a
# statement built anew for each event costs more of the worker's CPU than the database's work.

@functools.cache
def _statements(dialect_name: str) -> dict[str, Any]:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    upsert = dialect.insert(dossiers)
    dossier_id = bindparam("dossier_id")
    return {
        "event": dialect.insert(events).on_conflict_do_nothing(index_elements=["dossier_id", "seq"]),
        "lock": select(dossiers.c.last_seq).where(dossiers.c.dossier_id == dossier_id).with_for_update(),
        "projected": select(events.c.seq, events.c.hash, events.c.at, *(events.c[name] for name in PARTIES))
        .where(events.c.dossier_id == dossier_id).order_by(events.c.seq),
        "state": select(events.c.state).where(events.c.dossier_id == dossier_id, events.c.state.is_not(None))
        .order_by(events.c.seq.desc()).limit(1),
        "dossier": upsert.on_conflict_do_update(
            index_elements=["dossier_id"],
            set_={column.name: upsert.excluded[column.name] for column in dossiers.c if column.name != "dossier_id"},
            where=dossiers.c.last_seq <= upsert.excluded.last_seq),
        "clear_deadlines": delete(deadlines).where(deadlines.c.dossier_id == dossier_id),
        "deadline": deadlines.insert(),
    }


def enterprise_digits(number: str | None) -> str | None:
    """An enterprise number as its digits (``0403.170.701`` and ``0403170701`` are one)."""
    if number is None:
        return None
    digits = re.sub(r"\D", "", number)
    return digits or None


def event_row(event: Event) -> dict[str, Any]:
    payload = event.payload
    named = payload.get("parties") if isinstance(payload.get("parties"), dict) else {}
    state = payload.get("state")
    return {
        "dossier_id": event.dossier_id, "seq": event.sequence, "hash": event.hash, "kind": event.type,
        "action": payload.get("action"), "at": event.at, "actor": event.actor,
        "document_key": payload.get("key"), "document_sha256": payload.get("sha256"),
        "provider_name": named.get("provider_name"),
        "enterprise_number": enterprise_digits(named.get("enterprise_number")),
        "audit_firm": named.get("audit_firm"),
        "state": None if state is None else json.dumps(state, sort_keys=True, ensure_ascii=False),
        "idempotency_key": event.idempotency_key,
    }


def project(engine: Engine, event: Event) -> int:
    """Project one event; returns how many events of its dossier are not projected (0: none)."""
    with engine.begin() as connection:
        return project_events(connection, event.dossier_id, [event])


def project_events(connection: Connection, dossier_id: str, batch: Iterable[Event]) -> int:
    """Project events of one dossier in the caller's transaction; returns the dossier's gap."""
    statements = _statements(connection.dialect.name)
    rows = [event_row(event) for event in batch]
    if rows:
        connection.execute(statements["event"], rows)
    key = {"dossier_id": dossier_id}
    # One projection of a dossier at a time (PostgreSQL; SQLite has one writer anyway), so that
    # the events read below include every event a concurrent projection committed.
    connection.execute(statements["lock"], key)
    projected = connection.execute(statements["projected"], key).all()
    if not projected:
        return 0
    state = connection.execute(statements["state"], key).scalar()
    _write_dossier(connection, statements, dossier_id, projected, state)
    return projected[-1].seq - len(projected)


def _write_dossier(connection: Connection, statements: dict[str, Any], dossier_id: str, projected: list[Any],
                   raw_state: str | None) -> None:
    last = projected[-1]
    state = DossierState() if raw_state is None else DossierState.from_dict(json.loads(raw_state))
    named = {name: next((row[i + 3] for row in reversed(projected) if row[i + 3] is not None), None)
             for i, name in enumerate(PARTIES)}
    following = expected_next(state)
    row = {
        "dossier_id": dossier_id, "phase": state.phase.value, "cycle": state.cycle.value,
        "outcome": state.outcome, "next_role": following[0].role.value if following else None,
        **named, "provider_name_folded": named["provider_name"].casefold() if named["provider_name"] else None,
        "registration_number": state.registration_number, "valid_until": state.valid_until,
        "decision_date": state.decision_date, "opened_at": projected[0].at, "updated_at": last.at,
        "last_seq": last.seq, "last_hash": last.hash,
    }
    if connection.execute(statements["dossier"], row).rowcount == 0:
        return  # the row is at a later event already
    connection.execute(statements["clear_deadlines"], {"dossier_id": dossier_id})
    if state.deadlines:
        connection.execute(statements["deadline"], [
            {"dossier_id": dossier_id, "name": d.name, "due": d.due, "opens": d.opens,
             "opens_effective": d.opens or (dt.date.fromisoformat(d.due) - dt.timedelta(days=UPCOMING_DAYS)).isoformat(),
             "description": d.description}
            for d in state.deadlines
        ])


# --- the index against the ledgers ----------------------------------------------------------

@dataclass(frozen=True)
class Lag:
    """How far the index is behind the ledgers: dossiers with events not projected, and how many."""

    dossiers: int
    events: int
    behind: dict[str, int]  # dossier id -> events of its ledger not in the index

    @property
    def current(self) -> bool:
        return self.events == 0


def ledger_heads(store: DocumentStore) -> dict[str, int]:
    """Each dossier's number of events, from one listing of the ledgers' keys (no event read)."""
    heads: dict[str, int] = {}
    for key in store.list("dossiers/"):
        match = _EVENT_KEY.match(key)
        if match:
            heads[match[1]] = max(heads.get(match[1], 0), int(match[2]))
    return heads


def projected_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(
            select(events.c.dossier_id, func.count()).group_by(events.c.dossier_id)).all())


def lag(engine: Engine, store: DocumentStore) -> Lag:
    """Compare the index with the ledgers: one listing of the store, one query of the index."""
    counts = projected_counts(engine)
    behind = {dossier_id: last - counts.get(dossier_id, 0)
              for dossier_id, last in ledger_heads(store).items() if counts.get(dossier_id, 0) < last}
    from kmop.observability import INDEX_LAG_EVENTS

    result = Lag(len(behind), sum(behind.values()), behind)
    INDEX_LAG_EVENTS.set(result.events)
    return result


def catch_up_dossier(engine: Engine, ledger: Ledger, dossier_id: str) -> int:
    """Project the dossier's events the index lacks; returns how many were projected.

    An index whose events do not match the ledger's (a ledger restored from a backup) loses the
    dossier's rows, which are projected again from the ledger."""
    history = ledger.history(dossier_id)
    with engine.begin() as connection:
        known = dict(connection.execute(
            select(events.c.seq, events.c.hash).where(events.c.dossier_id == dossier_id)).all())
        if any(event.hash != known[event.sequence] for event in history if event.sequence in known) \
                or any(seq > len(history) for seq in known):
            for table in (deadlines, dossiers, events):
                connection.execute(delete(table).where(table.c.dossier_id == dossier_id))
            known = {}
        missing = [event for event in history if event.sequence not in known]
        if missing:
            project_events(connection, dossier_id, missing)
    return len(missing)


def catch_up(engine: Engine, ledger: Ledger, store: DocumentStore) -> Lag:
    """Project what the index lacks of every ledger; returns the lag found before."""
    found = lag(engine, store)
    for dossier_id in sorted(found.behind):
        catch_up_dossier(engine, ledger, dossier_id)
    from kmop.observability import INDEX_LAG_EVENTS

    INDEX_LAG_EVENTS.set(0)
    return found


def rebuild(engine: Engine, ledger: Ledger, store: DocumentStore) -> int:
    """Empty the index and project every ledger again; returns the number of dossiers."""
    with engine.begin() as connection:
        for table in (deadlines, dossiers, events):
            connection.execute(delete(table))
    heads = sorted(ledger_heads(store))
    # Ledgers are read a few at a time (each read waits on the store); projected one by one.
    with ThreadPoolExecutor(READERS, thread_name_prefix="index-rebuild") as readers:
        for dossier_id, history in zip(heads, readers.map(ledger.history, heads)):
            with engine.begin() as connection:
                project_events(connection, dossier_id, history)
    from kmop.observability import INDEX_LAG_EVENTS

    INDEX_LAG_EVENTS.set(0)
    return len(heads)
