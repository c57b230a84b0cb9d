"""The standard benchmark workload: the six documents of a registration dossier with realistic
data, the preparation pack made 20 pages long.

Each document goes into a dossier of its own whose earlier steps are recorded in the ledger as
stubs, so that every job may run at once, in any order, as in a busy service.
"""

from __future__ import annotations

import copy
from typing import Any

from kmop.demo import example_applicant
from kmop.jobs import DocumentJob
from kmop.scenario import Fact, dossier_steps
from workflow.tracker import Tracker

KINDS = ("sworn_statement", "quote", "preparation_pack", "audit_report", "commission_decision",
         "registration_certificate")
PACK_DOSSIERS = 830  # project dossiers listed in the pack: 20 A4 pages


def _steps(dossier_id: str) -> list[Any]:
    applicant = copy.deepcopy(example_applicant())
    applicant["dossier_id"] = dossier_id
    applicant["application"]["first_time"] = False
    return dossier_steps(applicant, "positive")


def _stub(tracker: Tracker, step: Any) -> None:
    if isinstance(step, Fact):
        tracker.record_fact(step.dossier_id, step.name, step.role, step.data, step.idempotency_key)
    else:
        tracker.record_document(step.dossier_id, step.kind, step.role, step.data, step.idempotency_key,
                                {"kind": step.kind, "step": step.document_kind.step,
                                 "key": f"dossiers/{step.dossier_id}/stub/{step.kind}.pdf", "sha256": "0" * 64,
                                 "size": 0})


def job_for(kind: str, dossier_id: str, tracker: Tracker | None = None) -> dict[str, Any]:
    """The job making ``kind`` in dossier ``dossier_id``; with a tracker, its earlier steps are
    recorded first (as stubs) so that the job is the one expected next."""
    steps = _steps(dossier_id)
    index = next(i for i, s in enumerate(steps) if isinstance(s, DocumentJob) and s.kind == kind)
    if tracker is not None:
        for step in steps[:index]:
            _stub(tracker, step)
    job = steps[index].to_message()
    if kind == "preparation_pack":
        job["data"]["known_dossiers"] = [
            {"reference": f"KMOP-2025-{100000 + i}", "client": f"Klant {i} BV", "service": "advies",
             "started_on": "2025-03-17"} for i in range(PACK_DOSSIERS)]
    return job


def workload(run: str, rounds: int, tracker: Tracker | None = None) -> list[dict[str, Any]]:
    """``rounds`` times the six documents, each in its own prepared dossier."""
    return [job_for(kind, f"BENCH-{run}-{r:03d}-{i}", tracker) for r in range(rounds) for i, kind in enumerate(KINDS)]
