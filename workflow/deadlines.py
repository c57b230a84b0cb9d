"""Open deadlines across dossiers: what is due, overdue or still to come on a given day."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from storage.base import DocumentStore

from .state import Deadline
from .tracker import Tracker

UPCOMING_DAYS = 30


@dataclass(frozen=True)
class DeadlineStatus:
    dossier_id: str
    deadline: Deadline
    status: str  # "overdue", "due" or "upcoming"
    days_left: int


def dossier_ids(store: DocumentStore) -> list[str]:
    ids = {key.split("/")[1] for key in store.list("dossiers/") if key.count("/") >= 3 and "/events/" in key}
    return sorted(ids)


def classify(deadline: Deadline, on: dt.date) -> tuple[str, int]:
    due = dt.date.fromisoformat(deadline.due)
    days_left = (due - on).days
    if days_left < 0:
        return "overdue", days_left
    opens = dt.date.fromisoformat(deadline.opens) if deadline.opens else due - dt.timedelta(days=UPCOMING_DAYS)
    return ("due" if on >= opens else "upcoming"), days_left


def open_deadlines(tracker: Tracker, store: DocumentStore, on: dt.date) -> list[DeadlineStatus]:
    found = []
    for dossier_id in dossier_ids(store):
        for deadline in tracker.state(dossier_id).deadlines:
            status, days_left = classify(deadline, on)
            found.append(DeadlineStatus(dossier_id, deadline, status, days_left))
    return sorted(found, key=lambda d: (d.deadline.due, d.dossier_id))
