"""The questions the index answers across dossiers, each a page at a time.

Every list is ordered by a key that ends in the row's identity and paged by that key (keyset
pagination): the opaque ``cursor`` of a page names the last row given, and the next page starts
after it, so a page costs what it returns however many dossiers there are, and rows added
meanwhile are neither skipped nor repeated. A cursor is only valid for the question it came from.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, func, select, tuple_, union

from kmop.errors import InvalidJob

from .projection import enterprise_digits
from .schema import deadlines, dossiers, events

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
DEADLINE_STATUSES = ("overdue", "due", "upcoming")
#: How long before a registration ends it shows as coming due for renewal.
RENEWAL_WINDOW_DAYS = 180

_DOSSIER_COLUMNS = (dossiers.c.dossier_id, dossiers.c.phase, dossiers.c.cycle, dossiers.c.outcome,
                    dossiers.c.next_role, dossiers.c.audit_firm, dossiers.c.enterprise_number,
                    dossiers.c.provider_name, dossiers.c.registration_number, dossiers.c.valid_until,
                    dossiers.c.updated_at, dossiers.c.last_seq)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    cursor: str | None  # give it back for the next page; None: this was the last


def _encode(question: str, key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps([question, key]).encode()).decode().rstrip("=")


def _decode(question: str, cursor: str | None, width: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        name, key = raw
        if name != question or not isinstance(key, list) or len(key) != width:
            raise ValueError
    except ValueError:
        raise InvalidJob("cursor", f"is not a cursor of this {question} list") from None
    return key


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidJob("limit", f"{limit} is outside 1..{MAX_LIMIT}")
    return limit


def _page(connection: Connection, question: str, query: Select[Any], order: list[ColumnElement[Any]],
          cursor: str | None, limit: int, shape: Any = dict) -> Page:
    after = _decode(question, cursor, len(order))
    if after is not None:
        query = query.where(tuple_(*order) > tuple_(*after))
    rows = connection.execute(query.order_by(*order).limit(_limit(limit) + 1)).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode(question, [rows[-1][column.key] for column in order]) if more and rows else None
    return Page([shape(row) for row in rows], next_cursor)


def _day(on: dt.date) -> str:
    return on.isoformat()


def deadline_status(row: Any, on: dt.date) -> tuple[str, int]:
    """The status of an open deadline on ``on`` as ``workflow.deadlines.classify`` gives it."""
    days_left = (dt.date.fromisoformat(row["due"]) - on).days
    if days_left < 0:
        return "overdue", days_left
    return ("due" if row["opens_effective"] <= _day(on) else "upcoming"), days_left


def open_deadlines(connection: Connection, on: dt.date, status: str | None = None, *,
                   cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> Page:
    """Open deadlines (the agency's 6-week timer among them) by status on ``on``, soonest first."""
    day = _day(on)
    conditions = {
        None: [],
        "overdue": [deadlines.c.due < day],
        "due": [deadlines.c.due >= day, deadlines.c.opens_effective <= day],
        "upcoming": [deadlines.c.due >= day, deadlines.c.opens_effective > day],
    }
    if status not in conditions:
        raise InvalidJob("status", f"{status!r} is not one of {', '.join(DEADLINE_STATUSES)}")
    query = select(deadlines).where(*conditions[status])

    def shape(row: Any) -> dict[str, Any]:
        found, days_left = deadline_status(row, on)
        return {"dossier_id": row["dossier_id"], "name": row["name"], "opens": row["opens"], "due": row["due"],
                "status": found, "days_left": days_left, "description": row["description"]}

    return _page(connection, f"deadlines:{status}:{day}", query,
                 [deadlines.c.due, deadlines.c.dossier_id, deadlines.c.name], cursor, limit, shape)


def expiring_registrations(connection: Connection, on: dt.date, within_days: int = RENEWAL_WINDOW_DAYS, *,
                           cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> Page:
    """Registered dossiers whose five years end within ``within_days`` of ``on`` (or have ended
    since, without a renewal), the first to end first."""
    until = _day(on + dt.timedelta(days=within_days))
    query = select(*_DOSSIER_COLUMNS).where(dossiers.c.valid_until.is_not(None), dossiers.c.valid_until <= until)
    return _page(connection, f"expiring:{until}", query, [dossiers.c.valid_until, dossiers.c.dossier_id],
                 cursor, limit)


def dossiers_in_phase(connection: Connection, phase: str, *, cursor: str | None = None,
                      limit: int = DEFAULT_LIMIT) -> Page:
    query = select(*_DOSSIER_COLUMNS).where(dossiers.c.phase == phase)
    return _page(connection, f"phase:{phase}", query, [dossiers.c.dossier_id], cursor, limit)


def worklist(connection: Connection, role: str, audit_firm: str | None = None, *, cursor: str | None = None,
             limit: int = DEFAULT_LIMIT) -> Page:
    """The dossiers where ``role`` acts next; for an audit firm's people, only that firm's."""
    conditions = [dossiers.c.next_role == role]
    if audit_firm is not None:
        conditions.append(dossiers.c.audit_firm == audit_firm)
    query = select(*_DOSSIER_COLUMNS).where(*conditions)
    return _page(connection, f"worklist:{role}:{audit_firm}", query, [dossiers.c.dossier_id], cursor, limit)


def search(connection: Connection, term: str, *, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> Page:
    """Dossiers whose id, registration number or enterprise number is ``term``, or whose
    provider's name starts with it (case-blind).

    Each way of matching is looked up in its own index and the matches merged (a union), so the
    cost follows the matches, not the number of dossiers."""
    term = term.strip()
    if not term:
        raise InvalidJob("term", "is empty")
    question = f"search:{term}"
    after = _decode(question, cursor, 1)
    folded = term.casefold()
    matches: list[ColumnElement[bool]] = [
        dossiers.c.dossier_id == term,
        dossiers.c.registration_number == term,
        and_(dossiers.c.provider_name_folded >= folded, dossiers.c.provider_name_folded < folded + "\U0010ffff"),
    ]
    digits = enterprise_digits(term)
    if digits is not None and len(digits) == 10:
        matches.append(dossiers.c.enterprise_number == digits)
    size = _limit(limit)
    branches = []
    for match in matches:
        branch = select(*_DOSSIER_COLUMNS).where(match)
        if after is not None:
            branch = branch.where(dossiers.c.dossier_id > after[0])
        branches.append(branch.order_by(dossiers.c.dossier_id).limit(size + 1).subquery().select())
    merged = union(*branches).subquery()
    rows = connection.execute(select(merged).order_by(merged.c.dossier_id).limit(size + 1)).mappings().all()
    more = len(rows) > size
    rows = rows[:size]
    return Page([dict(row) for row in rows], _encode(question, [rows[-1]["dossier_id"]]) if more and rows else None)


def recorded_keys(connection: Connection, dossier_ids: list[str]) -> dict[str, set[str]]:
    """The idempotency keys recorded in each of these dossiers (the jobs that are done)."""
    found: dict[str, set[str]] = {dossier_id: set() for dossier_id in dossier_ids}
    unique = sorted(found)
    for start in range(0, len(unique), 500):
        rows = connection.execute(select(events.c.dossier_id, events.c.idempotency_key)
                                  .where(events.c.dossier_id.in_(unique[start:start + 500])))
        for dossier_id, key in rows:
            found[dossier_id].add(key)
    return found


def counts(connection: Connection, by: str) -> list[tuple[str | None, int]]:
    """How many dossiers per phase, per outcome, or per month they were opened (``YYYY-MM``)."""
    keys = {"phase": dossiers.c.phase, "outcome": dossiers.c.outcome,
            "month": func.substr(dossiers.c.opened_at, 1, 7)}
    if by not in keys:
        raise InvalidJob("by", f"{by!r} is not one of {', '.join(keys)}")
    key = keys[by].label("key")
    rows = connection.execute(select(key, func.count().label("n")).group_by(key).order_by(key)).all()
    return [(row.key, row.n) for row in rows]


__all__ = ["DEADLINE_STATUSES", "Page", "counts", "dossiers_in_phase", "expiring_registrations",
           "open_deadlines", "recorded_keys", "search", "worklist"]
