"""Finds jobs that are neither done nor visibly failed, and hands them back to the queue.

A job is *done* when its idempotency key is in its dossier's ledger, *failed* when a dead
letter records it (with the reason), and *stuck* when it is neither and was submitted more
than ``older_than`` ago: its message was lost, or it died between storing and recording.
Resuming re-enqueues the job as it was submitted; the pipeline's idempotency makes that safe
(a document stored but not recorded is found by the next attempt and recorded).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from storage.base import DocumentStore
from workflow.tracker import Tracker

from .dead_letters import list_dead_letters
from .outbox import JobRecord, job_records


@dataclass(frozen=True)
class SweepEntry:
    record: JobRecord
    status: str  # "stuck" or "failed"
    reason: str


def sweep(store: DocumentStore, tracker: Tracker, older_than: dt.timedelta,
          now: dt.datetime | None = None,
          recorded: Callable[[list[str]], dict[str, set[str]]] | None = None) -> list[SweepEntry]:
    """``recorded`` gives the idempotency keys recorded in each of the dossiers named (the
    dossier index, ``index.queries.recorded_keys``): a job found there is done without reading
    its dossier's ledger; one not found there is looked up in the ledger (an index may be behind)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    failures: dict[tuple[str, str], str] = {}
    for letter in list_dead_letters(store):
        args = letter.get("args") or [{}]
        job = args[0] if isinstance(args[0], dict) else {}
        failures[(str(job.get("dossier_id")), str(job.get("idempotency_key")))] = (
            f"{letter['error_type']}: {letter['reason']}")
    done: dict[str, set[str]] = {}
    found = []
    records = job_records(store)
    indexed = recorded(sorted({r.dossier_id for r in records})) if recorded is not None and records else {}
    for record in records:
        if record.idempotency_key in indexed.get(record.dossier_id, ()):
            continue
        if record.dossier_id not in done:
            done[record.dossier_id] = {e.idempotency_key for e in tracker.history(record.dossier_id)}
        if record.idempotency_key in done[record.dossier_id]:
            continue
        failure = failures.get((record.dossier_id, record.idempotency_key))
        if failure is not None:
            found.append(SweepEntry(record, "failed", failure))
            continue
        age = now - dt.datetime.fromisoformat(record.submitted_at)
        if age >= older_than:
            found.append(SweepEntry(record, "stuck", f"submitted {int(age.total_seconds())} s ago, not recorded"))
    return found
